// MulT/fairseq TransformerEncoder (spec §1.11). Shape legend in transformer.h.
#include "models/transformer.h"

#include <ATen/record_function.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "models/compat.h"
#include "models/kernels.h"
#include "models/ops.h"

namespace dmdbench::models {

using torch::Tensor;

// ---------------------------------------------------------------------------------------------------------------
// Positions and masks

Tensor sinusoidal_table(int64_t num_embeddings, int64_t dim) {
  // Same float32 ops as fairseq's get_embedding, so the table matches the reference bit for bit.
  const int64_t half = dim / 2;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat);
  const double step = std::log(10000.0) / static_cast<double>(half - 1);
  Tensor freq = torch::exp(torch::arange(half, opts) * -step);                          // [half]
  Tensor angle = torch::arange(num_embeddings, opts).unsqueeze(1) * freq.unsqueeze(0);  // [num, half]
  Tensor table = torch::cat({torch::sin(angle), torch::cos(angle)}, 1);                 // sines, then cosines
  if (dim % 2 == 1) table = torch::cat({table, torch::zeros({num_embeddings, 1}, opts)}, 1);
  if (num_embeddings > 0) table[0].zero_();  // padding_idx 0
  return table;
}

Tensor position_indices(const Tensor& x_in, PositionLayout layout) {
  TORCH_CHECK(x_in.dim() == 3, "position_indices expects [T,N,d], got ", x_in.sizes());
  const int64_t T = x_in.size(0), N = x_in.size(1);
  const Tensor keep = x_in.select(2, 0).ne(0);  // [T,N]
  const Tensor steps =
      torch::arange(1, T + 1, torch::TensorOptions().dtype(torch::kLong).device(x_in.device()));
  const Tensor logical = steps.unsqueeze(1).expand({T, N});  // t+1
  if (layout == PositionLayout::BatchMajor) return logical.masked_fill(keep.logical_not(), 0);
  // Batch-major list of the kept positions, dealt to the kept slots in time-major order.
  const Tensor dealt = logical.t().contiguous().masked_select(keep.t().contiguous());        // n-major
  return torch::zeros({T, N}, logical.options()).masked_scatter_(keep.contiguous(), dealt);  // t-major slots
}

Tensor sinusoidal_positions(const Tensor& x_in, PositionLayout layout) {
  const int64_t T = x_in.size(0), N = x_in.size(1), d = x_in.size(2);
  Tensor table = sinusoidal_table(T + 1, d).to(x_in.options());
  return table.index_select(0, position_indices(x_in, layout).reshape({-1})).view({T, N, d});
}

Tensor future_mask(int64_t lq, int64_t lk) {
  const int64_t offset = 1 + std::abs(lk - lq);
  Tensor i = torch::arange(lq, torch::kLong).unsqueeze(1);
  Tensor j = torch::arange(lk, torch::kLong).unsqueeze(0);
  Tensor mask = torch::zeros({lq, lk}, torch::kFloat);
  return mask.masked_fill_((j - i) >= offset, -std::numeric_limits<float>::infinity());
}

// ---------------------------------------------------------------------------------------------------------------
// Attention core

namespace {

kernels::SeqView seq_view(const Tensor& t) {
  return {compat::const_float_ptr(t), t.stride(0), t.stride(1)};
}

kernels::AttentionProblem make_problem(const Tensor& q, const Tensor& k, int64_t heads, bool band, double p) {
  kernels::AttentionProblem pb;
  pb.tgt_len = q.size(0);
  pb.src_len = k.size(0);
  pb.batch = q.size(1);
  pb.heads = heads;
  pb.head_dim = q.size(2) / heads;
  pb.scaling = static_cast<float>(std::pow(static_cast<double>(pb.head_dim), -0.5));
  pb.band_offset = band ? std::abs(pb.src_len - pb.tgt_len) : -1;
  pb.dropout_p = static_cast<float>(p);
  return pb;
}

// softmax((q*scaling) k^T + mask) -> dropout -> @ v as one autograd node; backward regenerates the dropout
// mask from the saved seed and uses the saved (pre-dropout) probabilities.
struct FusedAttentionFunction : public torch::autograd::Function<FusedAttentionFunction> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& q, const Tensor& k,
                        const Tensor& v, int64_t heads, bool band, double p, bool save, bool recompute) {
    kernels::AttentionProblem pb = make_problem(q, k, heads, band, p);
    if (p > 0) pb.seed = compat::draw_seed();
    pb.recompute = recompute || kernels::recompute_pays(pb);
    Tensor out = torch::empty({pb.tgt_len, pb.batch, q.size(2)}, q.options());
    Tensor probs;
    if (save) {
      probs = torch::empty({kernels::probs_size(pb)}, q.options());
    }
    RECORD_FUNCTION(band ? "dmdbench::attention_band" : "dmdbench::attention",
                    std::vector<c10::IValue>{q, k});
    kernels::attention_forward(pb, seq_view(q), seq_view(k), seq_view(v), out.data_ptr<float>(),
                               save ? probs.data_ptr<float>() : nullptr);
    if (save) {
      ctx->save_for_backward({q, k, v, probs});
      ctx->saved_data["heads"] = heads;
      ctx->saved_data["band"] = band;
      ctx->saved_data["p"] = p;
      ctx->saved_data["seed"] = static_cast<int64_t>(pb.seed);
      ctx->saved_data["recompute"] = pb.recompute;
    }
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    TORCH_CHECK(saved.size() == 4,
                "fused attention: backward without saved tensors (forward ran without grad)");
    const Tensor &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    Tensor go = grads[0];
    if (go.stride(2) != 1) go = go.contiguous();
    kernels::AttentionProblem pb =
        make_problem(q, k, ctx->saved_data["heads"].toInt(), ctx->saved_data["band"].toBool(),
                     ctx->saved_data["p"].toDouble());
    pb.seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    pb.recompute = ctx->saved_data["recompute"].toBool();
    Tensor dq = torch::empty({pb.tgt_len, pb.batch, q.size(2)}, q.options());
    Tensor dk = torch::empty({pb.src_len, pb.batch, k.size(2)}, k.options());
    Tensor dv = torch::empty({pb.src_len, pb.batch, v.size(2)}, v.options());
    RECORD_FUNCTION(
        pb.band_offset >= 0 ? "dmdbench::attention_band_backward" : "dmdbench::attention_backward",
        std::vector<c10::IValue>{q, k});
    kernels::attention_backward(pb, seq_view(q), seq_view(k), seq_view(v), seq_view(go),
                                compat::const_float_ptr(probs), dq.data_ptr<float>(), dk.data_ptr<float>(),
                                dv.data_ptr<float>());
    return {dq, dk, dv, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

bool fused_supported(const Tensor& q, const Tensor& k, const Tensor& v) {
  if (compat::autocast_enabled(c10::DeviceType::CPU)) return false;  // LibTorch's ops do the autocast casting
  for (const Tensor* t : {&q, &k, &v}) {
    if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat || t->dim() != 3) return false;
  }
  return true;
}

Tensor unit_last_stride(const Tensor& t) {
  return t.stride(2) == 1 ? t : t.contiguous();
}

Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, bool band,
                           double p) {
  const int64_t T = q.size(0), N = q.size(1), d = q.size(2), S = k.size(0), E = d / heads;
  const double scaling = std::pow(static_cast<double>(E), -0.5);
  Tensor qh = (q * scaling).reshape({T, N * heads, E}).transpose(0, 1);  // [N*H, T, e]
  Tensor kh = k.reshape({S, N * heads, E}).transpose(0, 1);              // [N*H, S, e]
  Tensor vh = v.reshape({S, N * heads, E}).transpose(0, 1);              // [N*H, S, e]
  Tensor scores = band ? torch::baddbmm(future_mask(T, S).to(q.options()), qh, kh.transpose(1, 2))
                       : torch::bmm(qh, kh.transpose(1, 2));  // [N*H, T, S]
  Tensor probs = torch::softmax(scores, -1);
  if (p > 0) probs = torch::dropout(probs, p, /*train=*/true);
  return torch::bmm(probs, vh).transpose(0, 1).reshape({T, N, d});  // [T, N, d]
}

}  // namespace

Tensor attention_core(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, bool band,
                      double dropout_p, bool training, AttentionImpl impl) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "attention expects [L,N,d] tensors");
  TORCH_CHECK(k.sizes() == v.sizes(), "attention: key ", k.sizes(), " and value ", v.sizes(), " differ");
  TORCH_CHECK(q.size(1) == k.size(1) && q.size(2) == k.size(2), "attention: query ", q.sizes(), " vs key ",
              k.sizes());
  TORCH_CHECK(heads > 0 && q.size(2) % heads == 0, "attention: embed_dim ", q.size(2), " not divisible by ",
              heads);
  const double p = training ? dropout_p : 0.0;
  const bool fused = impl == AttentionImpl::Fused || impl == AttentionImpl::FusedRecompute ||
                     (impl == AttentionImpl::Auto && fused_supported(q, k, v));
  if (!fused) return attention_reference(q, k, v, heads, band, p);
  TORCH_CHECK(fused_supported(q, k, v), "fused attention needs float32 CPU tensors");
  const bool save =
      torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  return FusedAttentionFunction::apply(unit_last_stride(q), unit_last_stride(k), unit_last_stride(v), heads,
                                       band, p, save, impl == AttentionImpl::FusedRecompute);
}

// ---------------------------------------------------------------------------------------------------------------
// MultiheadAttention

MultiheadAttentionImpl::MultiheadAttentionImpl(int64_t embed_dim, int64_t heads, double attn_dropout)
    : embed_dim_(embed_dim), heads_(heads), attn_dropout_(attn_dropout) {
  TORCH_CHECK(heads > 0 && embed_dim % heads == 0, "embed_dim ", embed_dim, " must be divisible by heads ",
              heads);
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * embed_dim, embed_dim}));
  in_proj_bias = register_parameter("in_proj_bias", torch::empty({3 * embed_dim}));
  out_proj = register_module("out_proj", torch::nn::Linear(embed_dim, embed_dim));
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(in_proj_weight);  // over the whole [3d,d] matrix
  torch::nn::init::xavier_uniform_(out_proj->weight);
  in_proj_bias.zero_();
  out_proj->bias.zero_();
}

Tensor MultiheadAttentionImpl::forward_self(const Tensor& x, bool band, bool query_last_only) {
  const int64_t d = embed_dim_;
  Tensor q, k, v;
  if (!query_last_only) {
    auto qkv = ops::linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);  // 3 x [T,N,d] views
    q = qkv[0], k = qkv[1], v = qkv[2];
  } else {
    const int64_t T = x.size(0);
    q = ops::linear(x.narrow(0, T - 1, 1), in_proj_weight, in_proj_bias, 0, d);  // [1,N,d]
    auto kv = ops::linear(x, in_proj_weight, in_proj_bias, d, 2 * d).chunk(2, -1);
    k = kv[0], v = kv[1];
  }
  return ops::linear(attention_core(q, k, v, heads_, band, attn_dropout_, is_training(), impl_),
                     out_proj->weight, out_proj->bias);
}

Tensor MultiheadAttentionImpl::forward_cross(const Tensor& query, const Tensor& key, const Tensor& value,
                                             bool kv_same, bool band) {
  const int64_t d = embed_dim_;
  Tensor q = ops::linear(query, in_proj_weight, in_proj_bias, 0, d);  // [T,N,d]
  Tensor k, v;
  if (kv_same) {
    auto kv = ops::linear(key, in_proj_weight, in_proj_bias, d, 2 * d).chunk(2, -1);
    k = kv[0], v = kv[1];
  } else {
    k = ops::linear(key, in_proj_weight, in_proj_bias, d, d);
    v = ops::linear(value, in_proj_weight, in_proj_bias, 2 * d, d);
  }
  return ops::linear(attention_core(q, k, v, heads_, band, attn_dropout_, is_training(), impl_),
                     out_proj->weight, out_proj->bias);
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder layer

namespace {

torch::nn::Linear xavier_linear(int64_t in, int64_t out) {
  torch::nn::Linear m(in, out);
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(m->weight);
  m->bias.zero_();
  return m;
}

Tensor maybe_dropout(const Tensor& x, double p, bool training) {
  return ops::dropout(x, p, training);
}

Tensor norm(const torch::nn::LayerNorm& ln, const Tensor& x) {
  return ops::layer_norm(x, ln->weight, ln->bias, ln->options.eps());
}

}  // namespace

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(int64_t embed_dim, int64_t heads,
                                                         double attn_dropout, double relu_dropout,
                                                         double res_dropout, bool attn_mask)
    : relu_dropout_(relu_dropout), res_dropout_(res_dropout), attn_mask_(attn_mask) {
  self_attn = register_module("self_attn", MultiheadAttention(embed_dim, heads, attn_dropout));
  fc1 = register_module("fc1", xavier_linear(embed_dim, 4 * embed_dim));
  fc2 = register_module("fc2", xavier_linear(4 * embed_dim, embed_dim));
  ln0_ = torch::nn::LayerNorm(torch::nn::LayerNormOptions({embed_dim}));
  ln1_ = torch::nn::LayerNorm(torch::nn::LayerNormOptions({embed_dim}));
  layer_norms = register_module("layer_norms", torch::nn::ModuleList(ln0_, ln1_));
}

Tensor TransformerEncoderLayerImpl::forward(const Tensor& x, const Tensor& x_k, const Tensor& x_v,
                                            bool kv_same, bool last_only) {
  const int64_t T = x.size(0);
  Tensor residual = last_only ? x.narrow(0, T - 1, 1) : x;  // [T|1, N, d]
  Tensor attn;
  if (!x_k.defined()) {
    attn = self_attn->forward_self(norm(ln0_, x), attn_mask_, last_only);
  } else {
    // Keys and values go through the same LN0 as the query. With last_only the single query row (index T-1)
    // sees every key, which the band mask for lengths (1, S) also gives.
    Tensor yk = norm(ln0_, x_k);
    Tensor yv = kv_same ? yk : norm(ln0_, x_v);
    attn = self_attn->forward_cross(norm(ln0_, residual), yk, yv, kv_same, attn_mask_);
  }
  Tensor h = residual + maybe_dropout(attn, res_dropout_, is_training());
  Tensor y = ops::linear_relu(norm(ln1_, h), fc1->weight, fc1->bias);
  y = ops::linear(maybe_dropout(y, relu_dropout_, is_training()), fc2->weight, fc2->bias);
  return h + maybe_dropout(y, res_dropout_, is_training());
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder

namespace {

// fairseq's SinusoidalPositionalEmbedding only to carry its `_float_tensor` buffer (state_dict
// compatibility); the table itself is not a parameter and is cached by the encoder.
struct SinusoidalPositionalEmbeddingImpl : torch::nn::Module {
  SinusoidalPositionalEmbeddingImpl() { register_buffer("_float_tensor", torch::zeros({1})); }
};

}  // namespace

TransformerEncoderImpl::TransformerEncoderImpl(const TransformerEncoderOptions& opt) : opt_(opt) {
  // Registration order gives the reference's state_dict order: version, embed_positions, layers, layer_norm.
  register_buffer("version", torch::full({1}, 2.0f));
  register_module("embed_positions", std::make_shared<SinusoidalPositionalEmbeddingImpl>());
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < opt.layers; ++i) {
    TransformerEncoderLayer layer(opt.embed_dim, opt.heads, opt.attn_dropout, opt.relu_dropout,
                                  opt.res_dropout, opt.attn_mask);
    layers->push_back(layer);
    layer_refs_.push_back(layer);
  }
  layer_norm =
      register_module("layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({opt.embed_dim})));
}

void TransformerEncoderImpl::set_attention_impl(AttentionImpl impl) {
  for (auto& layer : layer_refs_) layer->self_attn->set_attention_impl(impl);
}

Tensor TransformerEncoderImpl::embed(const Tensor& x_in) const {
  TORCH_CHECK(x_in.dim() == 3 && x_in.size(2) == opt_.embed_dim, "transformer encoder expects [T,N,",
              opt_.embed_dim, "], got ", x_in.sizes());
  const double scale = std::sqrt(static_cast<double>(opt_.embed_dim));
  if (!opt_.position_embedding) return x_in * scale;
  const int64_t T = x_in.size(0);
  if (!pe_table_.defined() || pe_table_.size(0) < T + 1 || pe_table_.device() != x_in.device() ||
      pe_table_.scalar_type() != x_in.scalar_type()) {
    const int64_t rows = std::max<int64_t>(T + 1, pe_table_.defined() ? pe_table_.size(0) : 0);
    pe_table_ = sinusoidal_table(rows, opt_.embed_dim).to(x_in.options());
  }
  Tensor pe = pe_table_.index_select(0, position_indices(x_in, opt_.position_layout).reshape({-1}));
  return x_in * scale + pe.view(x_in.sizes());  // sqrt(d)*x + PE
}

Tensor TransformerEncoderImpl::forward(const Tensor& x_in, const Tensor& x_in_k, const Tensor& x_in_v,
                                       bool last_only) {
  const bool training = is_training();
  Tensor x = maybe_dropout(embed(x_in), opt_.embed_dropout, training);  // [T,N,d]
  Tensor xk, xv;
  bool kv_same = false;
  if (x_in_k.defined() || x_in_v.defined()) {
    TORCH_CHECK(x_in_k.defined() && x_in_v.defined(), "crossmodal encoder needs both key and value");
    const bool same_input = x_in_k.is_same(x_in_v);
    Tensor ek = embed(x_in_k);
    Tensor ev = same_input ? ek : embed(x_in_v);
    if (same_input && !(training && opt_.embed_dropout > 0)) {
      xk = xv = ek;
      kv_same = true;
    } else {  // separate dropout masks for keys and values, as the reference draws them
      xk = maybe_dropout(ek, opt_.embed_dropout, training);
      xv = maybe_dropout(ev, opt_.embed_dropout, training);
    }
  }
  const size_t L = layer_refs_.size();
  for (size_t i = 0; i < L; ++i) x = layer_refs_[i]->forward(x, xk, xv, kv_same, last_only && i + 1 == L);
  if (last_only && L == 0) x = x.narrow(0, x.size(0) - 1, 1);
  x = ops::layer_norm(x, layer_norm->weight, layer_norm->bias, layer_norm->options.eps());
  return last_only ? x.squeeze(0) : x;
}

int add_crossmodal_job(jobs::Graph& g, const TransformerEncoder& enc, int query, int key_value) {
  return g.add({query, key_value}, 1, [e = enc.ptr()](const std::vector<Tensor>& in) -> std::vector<Tensor> {
    return {e->forward(in[0], in[1], in[1])};
  });
}

int add_last_step_job(jobs::Graph& g, const TransformerEncoder& enc, std::vector<int> slots) {
  return g.add(std::move(slots), 1, [e = enc.ptr()](const std::vector<Tensor>& in) -> std::vector<Tensor> {
    return {e->forward(in.size() == 1 ? in[0] : torch::cat(in, 2), {}, {}, /*last_only=*/true)};
  });
}

}  // namespace dmdbench::models
