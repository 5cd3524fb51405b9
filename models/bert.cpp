// BertModel (spec §1.2.1). Shape legend in bert.h.
#include "models/bert.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "models/ops.h"

namespace dmdbench::models {

using torch::Tensor;

namespace {

std::string shape_str(const Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

void require(bool ok, const std::string& sentence) {
  if (!ok) throw std::invalid_argument(sentence);
}

// A plain container module, so that parameter names get transformers' dotted paths.
std::shared_ptr<torch::nn::Module> container(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::nn::Linear linear(torch::nn::Module& parent, const std::string& name, int64_t in, int64_t out) {
  return parent.register_module(name, torch::nn::Linear(in, out));
}

torch::nn::LayerNorm layer_norm(torch::nn::Module& parent, int64_t H, double eps) {
  return parent.register_module("LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({H}).eps(eps)));
}

}  // namespace

void BertConfig::validate() const {
  auto positive = [](int64_t v, const char* key) {
    require(v > 0, std::string("bert config ") + key + " must be positive, got " + std::to_string(v));
  };
  positive(hidden, "hidden_size");
  positive(layers, "num_hidden_layers");
  positive(heads, "num_attention_heads");
  positive(intermediate, "intermediate_size");
  positive(vocab, "vocab_size");
  positive(max_positions, "max_position_embeddings");
  positive(type_vocab, "type_vocab_size");
  require(hidden % heads == 0, "bert config hidden_size " + std::to_string(hidden) +
                                   " is not a multiple of num_attention_heads " + std::to_string(heads));
  require(pad_token_id < vocab, "bert config pad_token_id " + std::to_string(pad_token_id) +
                                    " is outside the vocabulary of " + std::to_string(vocab));
  require(eps > 0, "bert config layer_norm_eps must be positive");
  for (auto [p, key] : {std::pair<double, const char*>{hidden_dropout, "hidden_dropout_prob"},
                        {attention_dropout, "attention_probs_dropout_prob"}})
    require(p >= 0 && p < 1,
            std::string("bert config ") + key + " must lie in [0, 1), got " + std::to_string(p));
  require(initializer_range >= 0, "bert config initializer_range must not be negative");
}

BertImpl::BertImpl(const BertConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  const int64_t H = cfg_.hidden;
  // embeddings.*: own buffer position_ids first in the state dict (own tensors precede children's), as in
  // transformers < 4.31.
  auto emb = container(*this, "embeddings");
  auto word_opts = torch::nn::EmbeddingOptions(cfg_.vocab, H);
  if (cfg_.pad_token_id >= 0) word_opts.padding_idx(cfg_.pad_token_id);
  word_embeddings = emb->register_module("word_embeddings", torch::nn::Embedding(word_opts));
  position_embeddings =
      emb->register_module("position_embeddings", torch::nn::Embedding(cfg_.max_positions, H));
  token_type_embeddings =
      emb->register_module("token_type_embeddings", torch::nn::Embedding(cfg_.type_vocab, H));
  embeddings_norm = layer_norm(*emb, H, cfg_.eps);
  position_ids =
      emb->register_buffer("position_ids", torch::arange(cfg_.max_positions, torch::kLong).unsqueeze(0));

  // encoder.layer.<i>.*
  auto encoder = container(*this, "encoder");
  auto list = encoder->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg_.layers; ++i) {
    auto block = std::make_shared<torch::nn::Module>();
    list->push_back(block);
    Layer m;
    auto attention = container(*block, "attention");
    auto self = container(*attention, "self");
    m.query = linear(*self, "query", H, H);
    m.key = linear(*self, "key", H, H);
    m.value = linear(*self, "value", H, H);
    auto attention_output = container(*attention, "output");
    m.attention_dense = linear(*attention_output, "dense", H, H);
    m.attention_norm = layer_norm(*attention_output, H, cfg_.eps);
    auto intermediate = container(*block, "intermediate");
    m.intermediate_dense = linear(*intermediate, "dense", H, cfg_.intermediate);
    auto output = container(*block, "output");
    m.output_dense = linear(*output, "dense", cfg_.intermediate, H);
    m.output_norm = layer_norm(*output, H, cfg_.eps);
    layer.push_back(m);
  }

  // pooler.dense
  auto pooler = container(*this, "pooler");
  pooler_dense = linear(*pooler, "dense", H, H);
  reset_parameters();
}

void BertImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (auto& p : named_parameters()) {
    Tensor t = p.value();
    if (p.key().find("LayerNorm.") != std::string::npos && ends_with(p.key(), ".weight")) {
      t.fill_(1.0);
    } else if (ends_with(p.key(), ".bias")) {
      t.zero_();  // Linear and LayerNorm biases
    } else {
      t.normal_(0.0, cfg_.initializer_range);  // Linear and Embedding weights
    }
  }
  if (cfg_.pad_token_id >= 0) word_embeddings->weight[cfg_.pad_token_id].zero_();
  position_ids.copy_(torch::arange(cfg_.max_positions, torch::kLong).unsqueeze(0));
}

Tensor BertImpl::layer_forward(const Layer& m, const Tensor& x, const Tensor& mask_add, int64_t N,
                               int64_t L) {
  const int64_t H = cfg_.hidden, h = cfg_.heads, e = H / h;
  const bool train = is_training();
  // attention.self: one packed product for q, k and v (weights concatenated; the backward splits the
  // gradient).
  const Tensor w_qkv = torch::cat({m.query->weight, m.key->weight, m.value->weight});  // [3H,H]
  const Tensor b_qkv = torch::cat({m.query->bias, m.key->bias, m.value->bias});        // [3H]
  const Tensor qkv = ops::linear(x, w_qkv, b_qkv)                                      // [N*L,3H]
                         .view({N, L, 3, h, e})
                         .permute({2, 0, 3, 1, 4})  // [3,N,h,L,e]
                         .contiguous()
                         .view({3, N * h, L, e});  // [3,N*h,L,e]
  // unbind, not three selects: its backward stacks the three gradients in one copy (a select's backward would
  // allocate a zero [3,N*h,L,e] tensor for each and add them up)
  const auto parts = qkv.unbind(0);
  const Tensor &q = parts[0], &k = parts[1], &v = parts[2];  // [N*h,L,e] each
  // scores = q k^T / sqrt(e) + mask, in transformers' order of operations.
  Tensor scores = torch::bmm(q, k.transpose(1, 2))  // [N*h,L,L]
                      .div_(std::sqrt(static_cast<double>(e)))
                      .add_(mask_add);  // + [N*h,1,L] over queries
  Tensor probs = ops::dropout(torch::softmax(scores, -1), cfg_.attention_dropout, train);  // [N*h,L,L]
  const Tensor context = torch::bmm(probs, v)                                              // [N*h,L,e]
                             .view({N, h, L, e})
                             .permute({0, 2, 1, 3})  // [N,L,h,e]
                             .reshape({N * L, H});   // [N*L,H], heads concatenated
  // attention.output: dense -> dropout -> LayerNorm(. + layer input)
  Tensor a = ops::dropout(ops::linear(context, m.attention_dense->weight, m.attention_dense->bias),
                          cfg_.hidden_dropout, train);                                     // [N*L,H]
  a = ops::layer_norm(a + x, m.attention_norm->weight, m.attention_norm->bias, cfg_.eps);  // [N*L,H]
  // intermediate: dense -> exact GELU; output: dense -> dropout -> LayerNorm(. + attention output)
  const Tensor i =
      torch::gelu(ops::linear(a, m.intermediate_dense->weight, m.intermediate_dense->bias));  // [N*L,I]
  Tensor o = ops::dropout(ops::linear(i, m.output_dense->weight, m.output_dense->bias), cfg_.hidden_dropout,
                          train);                                                       // [N*L,H]
  return ops::layer_norm(o + a, m.output_norm->weight, m.output_norm->bias, cfg_.eps);  // [N*L,H]
}

BertOutput BertImpl::forward(const Tensor& input_ids, const Tensor& attention_mask,
                             const Tensor& token_type_ids) {
  require(input_ids.defined() && input_ids.dim() == 2,
          "bert input_ids must be [N,L], got " + (input_ids.defined() ? shape_str(input_ids) : "undefined"));
  const int64_t N = input_ids.size(0), L = input_ids.size(1), H = cfg_.hidden, h = cfg_.heads;
  require(attention_mask.defined() && attention_mask.sizes() == input_ids.sizes(),
          "bert attention_mask must have the shape of input_ids " + shape_str(input_ids) + ", got " +
              (attention_mask.defined() ? shape_str(attention_mask) : "undefined"));
  require(token_type_ids.defined() && token_type_ids.sizes() == input_ids.sizes(),
          "bert token_type_ids must have the shape of input_ids " + shape_str(input_ids) + ", got " +
              (token_type_ids.defined() ? shape_str(token_type_ids) : "undefined"));
  require(L <= cfg_.max_positions, "bert input of " + std::to_string(L) + " tokens is longer than " +
                                       std::to_string(cfg_.max_positions) + " positions");
  require(input_ids.scalar_type() == torch::kLong && token_type_ids.scalar_type() == torch::kLong,
          "bert input_ids and token_type_ids must be int64");
  // Range checks on the CPU only: on a GPU they would be a host sync (and break CUDA-graph capture).
  if (input_ids.device().is_cpu() && input_ids.numel() > 0) {
    const int64_t lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
    require(lo >= 0 && hi < cfg_.vocab, "bert token id " + std::to_string(lo < 0 ? lo : hi) +
                                            " is outside the vocabulary of " + std::to_string(cfg_.vocab));
    const int64_t tlo = token_type_ids.min().item<int64_t>(), thi = token_type_ids.max().item<int64_t>();
    require(tlo >= 0 && thi < cfg_.type_vocab, "bert token type id " + std::to_string(tlo < 0 ? tlo : thi) +
                                                   " is outside the " + std::to_string(cfg_.type_vocab) +
                                                   " token types");
  }
  const bool train = is_training();

  // embeddings: word + token type, then + position (transformers' order), LayerNorm, dropout.
  const Tensor word = torch::embedding(word_embeddings->weight, input_ids, cfg_.pad_token_id);     // [N,L,H]
  const Tensor type = torch::embedding(token_type_embeddings->weight, token_type_ids);             // [N,L,H]
  const Tensor pos = torch::embedding(position_embeddings->weight, position_ids.narrow(1, 0, L));  // [1,L,H]
  Tensor x = ops::layer_norm((word + type) + pos, embeddings_norm->weight, embeddings_norm->bias, cfg_.eps)
                 .view({N * L, H});                 // [N*L,H]
  x = ops::dropout(x, cfg_.hidden_dropout, train);  // [N*L,H]

  // extended mask (1 - mask) * -10000, per (n, head) and key: [N,L] -> [N*h,1,L]
  const Tensor mask = attention_mask.to(x.scalar_type());
  const Tensor mask_add =
      ((1.0 - mask) * -10000.0).view({N, 1, 1, L}).expand({N, h, 1, L}).reshape({N * h, 1, L});

  for (const Layer& m : layer) x = layer_forward(m, x, mask_add, N, L);  // [N*L,H]

  BertOutput out;
  out.last_hidden_state = x.view({N, L, H});  // [N,L,H]
  out.pooler_output = torch::tanh(ops::linear(out.last_hidden_state.select(1, 0), pooler_dense->weight,
                                              pooler_dense->bias));  // [N,H]
  return out;
}

}  // namespace dmdbench::models
