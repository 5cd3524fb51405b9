// BERT as Hugging Face transformers' BertModel 4.x computes it (spec §1.2.1): eager attention, absolute
// positions, the additive -10000 padding mask, exact (erf) GELU, post-norm layers and a tanh pooler.
//
// Shape legend: N = batch, L = sequence length (<= max_positions), H = hidden size, h = heads,
// e = H / h (head size), I = intermediate size, V = vocabulary size. Activations run as [N*L, H] rows so
// every Linear is one large matrix product; attention runs batched over (n, head) as [N*h, L, e].
//
// Parameter and buffer names equal transformers' own (no `bert.` prefix): embeddings.{word,position,
// token_type}_embeddings.weight, embeddings.LayerNorm.{weight,bias}, embeddings.position_ids (buffer, [1,
// max_positions] int64), encoder.layer.<i>.attention.self.{query,key,value}.{weight,bias},
// encoder.layer.<i>.attention.output.dense.*, encoder.layer.<i>.attention.output.LayerNorm.*,
// encoder.layer.<i>.intermediate.dense.*, encoder.layer.<i>.output.dense.*,
// encoder.layer.<i>.output.LayerNorm.*, pooler.dense.*.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace dmdbench::models {

// The architecture keys of a transformers BertConfig; the defaults are bert-base-uncased's.
struct BertConfig {
  int64_t hidden = 768;             // hidden_size
  int64_t layers = 12;              // num_hidden_layers
  int64_t heads = 12;               // num_attention_heads
  int64_t intermediate = 3072;      // intermediate_size
  int64_t vocab = 30522;            // vocab_size
  int64_t max_positions = 512;      // max_position_embeddings
  int64_t type_vocab = 2;           // type_vocab_size
  double eps = 1e-12;               // layer_norm_eps
  double hidden_dropout = 0.1;      // hidden_dropout_prob
  double attention_dropout = 0.1;   // attention_probs_dropout_prob
  int64_t pad_token_id = 0;         // padding_idx of word_embeddings; < 0: none (config "pad_token_id": null)
  double initializer_range = 0.02;  // std of the normal initialiser (used only when no weights are loaded)

  // Throws std::invalid_argument (one sentence naming the field) for sizes that cannot build a model.
  void validate() const;
};

struct BertOutput {
  torch::Tensor last_hidden_state;  // [N,L,H]
  torch::Tensor pooler_output;      // [N,H] = tanh(dense(last_hidden_state[:, 0]))
};

class BertImpl : public torch::nn::Module {
 public:
  explicit BertImpl(const BertConfig& cfg);

  // input_ids int64 [N,L] (0 <= id < V), attention_mask [N,L] (1 = attend, 0 = padding; any dtype, used as
  // float), token_type_ids int64 [N,L] (0 <= t < type_vocab). Dropout is active in train mode only.
  BertOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                     const torch::Tensor& token_type_ids);

  // transformers' _init_weights: Linear and Embedding weights ~ N(0, initializer_range), biases 0, the
  // padding row 0, LayerNorm 1/0. The constructor calls it; position_ids is reset to 0..max_positions-1.
  void reset_parameters();

  const BertConfig& config() const { return cfg_; }

  // One encoder layer's modules (registered under encoder.layer.<i>); public for tests and for the loader.
  struct Layer {
    torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};  // attention.self.*
    torch::nn::Linear attention_dense{nullptr};                      // attention.output.dense
    torch::nn::LayerNorm attention_norm{nullptr};                    // attention.output.LayerNorm
    torch::nn::Linear intermediate_dense{nullptr};                   // intermediate.dense
    torch::nn::Linear output_dense{nullptr};                         // output.dense
    torch::nn::LayerNorm output_norm{nullptr};                       // output.LayerNorm
  };

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm embeddings_norm{nullptr};  // embeddings.LayerNorm
  torch::Tensor position_ids;                     // embeddings.position_ids [1, max_positions] int64
  std::vector<Layer> layer;                       // encoder.layer.<i>
  torch::nn::Linear pooler_dense{nullptr};        // pooler.dense

 private:
  // [N*L, H] -> [N*L, H]: one post-norm encoder layer; mask_add [N*h, 1, L] is the additive key mask.
  torch::Tensor layer_forward(const Layer& m, const torch::Tensor& x, const torch::Tensor& mask_add,
                              int64_t N, int64_t L);
  BertConfig cfg_;
};
TORCH_MODULE(Bert);

}  // namespace dmdbench::models
