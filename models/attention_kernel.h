// Fused multi-head attention core on the CPU (float32), without LibTorch types: the hot inner part of the
// MulT/fairseq MultiheadAttention (spec §1.11) after the in-projection and before out_proj.
//
// Shape legend: T = query length, S = key/value length, N = batch, H = heads, e = head_dim, d = H*e.
// q is [T,N,d], k and v are [S,N,d], all sequence-first with unit stride along d (any other strides). Head h of
// batch element n reads columns h*e .. h*e+e-1, so (n,h) -> batch index n*H + h, as the reference's
// view(T, N*H, e) does. Per (n,h) and query row i:
//   s_j = (scaling * q_i) . k_j  + mask_ij,   mask_ij = -inf iff band_offset >= 0 and j - i >= 1 + band_offset
//   p   = softmax(s),  p~ = dropout(p),  out_i = sum_j p~_j v_j.
// Dropout uses a counter-based hash of (seed, n*H+h, i, j), so backward regenerates the same mask.
#pragma once

#include <cstdint>

namespace dmdbench::models::kernels {

struct SeqView {  // [L, N, d] float tensor with unit stride along d
  const float* data;
  int64_t stride_t, stride_n;
};

struct AttentionProblem {
  int64_t tgt_len = 0, src_len = 0, batch = 0, heads = 1, head_dim = 1;
  float scaling = 1.0f;        // multiplies q (after its bias), head_dim^-0.5 in the reference
  int64_t band_offset = -1;    // < 0: no mask; else key j is visible to query i iff j < i + 1 + band_offset
  float dropout_p = 0.0f;      // dropout on the probabilities (0 = none)
  uint64_t seed = 0;           // dropout mask seed
};

// Row length of the saved probabilities: src_len rounded up to a multiple of 8.
int64_t padded_src_len(int64_t src_len);

// out: [T,N,d] contiguous. probs: [N*H, T, padded_src_len] (softmax before dropout, zero where masked) or
// nullptr when no backward will follow.
void attention_forward(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, float* out, float* probs);

// grad_out: [T,N,d] (unit stride along d). grad_q [T,N,d], grad_k and grad_v [S,N,d]: contiguous, overwritten.
void attention_backward(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, SeqView grad_out,
                        const float* probs, float* grad_q, float* grad_k, float* grad_v);

// The dropout keep decision the kernel uses for element (b = n*H + h, i, j); exposed for tests.
bool attention_dropout_keep(const AttentionProblem& pb, int64_t b, int64_t i, int64_t j);

}  // namespace dmdbench::models::kernels
