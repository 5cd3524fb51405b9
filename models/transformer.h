// The MulT/fairseq TransformerEncoder that DMD and MulT use (spec §1.11), with the reference's parameter
// names: <enc>.version, <enc>.embed_positions._float_tensor, <enc>.layers.<i>.self_attn.{in_proj_weight,
// in_proj_bias, out_proj.weight, out_proj.bias}, <enc>.layers.<i>.fc1/fc2,
// <enc>.layers.<i>.layer_norms.{0,1}, <enc>.layer_norm.
//
// Shape legend: T = query length, S = key/value length, N = batch, d = embed_dim, H = heads, e = d/H.
// Tensors are sequence-first, [T, N, d], as in the reference.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "models/jobs.h"

namespace dmdbench::models {

// fairseq's sinusoidal table [num_embeddings, dim]: row p = [sin(p*w_0..w_{h-1}), cos(p*w_0..w_{h-1})] with
// h = dim/2, w_i = exp(-i*ln(10000)/(h-1)); a zero column appended for odd dim; row 0 (padding) all zeros.
torch::Tensor sinusoidal_table(int64_t num_embeddings, int64_t dim);

// How the reference holds an encoder input in memory; it decides the position indices (spec §1.11 and a quirk
// the golden files show). fairseq's make_positions writes the positions with masked_scatter_ into a clone of
// x_in.transpose(0,1)[:,:,0], and PyTorch's CPU masked_scatter_ fills the slots in memory order, while the
// positions it takes come in logical (batch-major) order.
//  - BatchMajor: the input is a view of a batch-major buffer (DMD's c_m/s_m and MulT's projections, permuted
//    conv outputs): index t+1 where x_in[t,n,0] != 0, else 0 (zero PE).
//  - TimeMajor: the input is a contiguous [T,N,d] tensor (the memory encoders' concatenated input): the list
//    [t+1 for each n, for each non-padded t] is dealt to the non-padded (t,n) slots in time-major order, so
//    positions are scrambled across the batch. Padded slots (channel 0 == 0) still get index 0.
enum class PositionLayout { BatchMajor, TimeMajor };

// Position indices [T,N] (int64, 0 = padding) for x_in [T,N,d].
torch::Tensor position_indices(const torch::Tensor& x_in, PositionLayout layout = PositionLayout::BatchMajor);

// The positional embedding the encoder adds to x_in [T,N,d]: rows of sinusoidal_table at position_indices.
// Returns [T,N,d].
torch::Tensor sinusoidal_positions(const torch::Tensor& x_in,
                                   PositionLayout layout = PositionLayout::BatchMajor);

// Float attention mask [Lq, Lk]: -inf where j - i >= 1 + |Lk - Lq|, else 0 (buffered_future_mask).
torch::Tensor future_mask(int64_t lq, int64_t lk);

// Which implementation computes softmax(q k^T + mask) v inside the attention.
enum class AttentionImpl {
  Auto,   // as Fused for float32 CPU tensors, ATen otherwise
  Fused,  // fused CPU kernel (float32 CPU only); the backward recomputes the probabilities when saving them
          // would take more than kernels::kSavedProbsLimitBytes (long unaligned sequences)
  FusedRecompute,  // the fused kernel, always recomputing the probabilities in the backward (tests)
  Reference,       // baddbmm + softmax + dropout + bmm, like the reference
};

// The attention core after the in-projection: q [T,N,d] (not yet scaled), k and v [S,N,d]; returns [T,N,d]
// before out_proj. band: apply the future mask of future_mask(T, S). Dropout on the probabilities when
// training and dropout_p > 0.
torch::Tensor attention_core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             int64_t heads, bool band, double dropout_p, bool training,
                             AttentionImpl impl = AttentionImpl::Auto);

// fairseq-style multi-head attention with a packed in-projection.
class MultiheadAttentionImpl : public torch::nn::Module {
 public:
  MultiheadAttentionImpl(int64_t embed_dim, int64_t heads, double attn_dropout);
  // Self-attention: q, k and v all from x [T,N,d] (one fused projection). If query_last_only, only the last
  // query row is computed (it sees every key), giving [1,N,d].
  torch::Tensor forward_self(const torch::Tensor& x, bool band, bool query_last_only = false);
  // Crossmodal: query [T,N,d], key [S,N,d], value [S,N,d]; pass kv_same when key and value are the same
  // tensor (one fused k/v projection).
  torch::Tensor forward_cross(const torch::Tensor& query, const torch::Tensor& key,
                              const torch::Tensor& value, bool kv_same, bool band);

  int64_t embed_dim() const { return embed_dim_; }
  int64_t heads() const { return heads_; }
  double attn_dropout() const { return attn_dropout_; }
  void set_attention_impl(AttentionImpl impl) { impl_ = impl; }

  torch::Tensor in_proj_weight, in_proj_bias;  // [3d,d], [3d]
  torch::nn::Linear out_proj{nullptr};

 private:
  int64_t embed_dim_, heads_;
  double attn_dropout_;
  AttentionImpl impl_ = AttentionImpl::Auto;
};
TORCH_MODULE(MultiheadAttention);

struct TransformerEncoderOptions {
  int64_t embed_dim = 30, heads = 6, layers = 4;
  double attn_dropout = 0.0, relu_dropout = 0.0, res_dropout = 0.0, embed_dropout = 0.0;
  bool attn_mask = false;
  bool position_embedding = true;  // MMSA's current MulT has it off; the buffer is registered either way
  PositionLayout position_layout = PositionLayout::BatchMajor;  // of every input of this encoder
};

// Pre-norm layer: x += drop(MHA(LN0(x), LN0(k), LN0(v))); x += drop(fc2(drop(relu(fc1(LN1(x)))))).
class TransformerEncoderLayerImpl : public torch::nn::Module {
 public:
  TransformerEncoderLayerImpl(int64_t embed_dim, int64_t heads, double attn_dropout, double relu_dropout,
                              double res_dropout, bool attn_mask);
  // x [T,N,d]; x_k/x_v [S,N,d] or undefined (self-attention). last_only: compute only the last row ->
  // [1,N,d].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& x_k, const torch::Tensor& x_v,
                        bool kv_same, bool last_only);

  MultiheadAttention self_attn{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::ModuleList layer_norms{nullptr};

 private:
  torch::nn::LayerNorm ln0_{nullptr}, ln1_{nullptr};  // the two entries of layer_norms
  double relu_dropout_, res_dropout_;
  bool attn_mask_;
};
TORCH_MODULE(TransformerEncoderLayer);

class TransformerEncoderImpl : public torch::nn::Module {
 public:
  explicit TransformerEncoderImpl(const TransformerEncoderOptions& opt);
  // Self-attention mode: x_in [T,N,d] -> [T,N,d]. Crossmodal mode: query x_in [T,N,d], key x_in_k and value
  // x_in_v [S,N,d] -> [T,N,d]. last_only returns just the last time step, [N,d] (same values as out[-1]).
  torch::Tensor forward(const torch::Tensor& x_in, const torch::Tensor& x_in_k = {},
                        const torch::Tensor& x_in_v = {}, bool last_only = false);

  const TransformerEncoderOptions& options() const { return opt_; }
  void set_attention_impl(AttentionImpl impl);  // for every layer

  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};

 private:
  torch::Tensor embed(const torch::Tensor& x_in) const;  // sqrt(d)*x + PE, before dropout
  TransformerEncoderOptions opt_;
  mutable torch::Tensor pe_table_;  // cached sinusoidal_table rows, grown on demand
  std::vector<TransformerEncoderLayer> layer_refs_;
};
TORCH_MODULE(TransformerEncoder);

// An encoder as a job of g (jobs.h). Crossmodal: query slot [T,N,d], key = value slot [S,N,d] -> [T,N,d].
// Last step: the slots (one, or several joined along the features) [T,N,d'] -> the last time step [N,d'].
// Each returns the job's output slot.
int add_crossmodal_job(jobs::Graph& g, const TransformerEncoder& enc, int query, int key_value);
int add_last_step_job(jobs::Graph& g, const TransformerEncoder& enc, std::vector<int> slots);

}  // namespace dmdbench::models
