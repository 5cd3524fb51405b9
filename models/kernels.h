// CPU float32 kernels for the hot parts of the model, without LibTorch types: the fused multi-head attention
// core of the MulT/fairseq MultiheadAttention (spec §1.11, after the in-projection and before out_proj),
// LayerNorm forward/backward, and counter-based dropout masks.
//
// Shape legend: T = query length, S = key/value length, N = batch, H = heads, e = head_dim, d = H*e.
// q is [T,N,d], k and v are [S,N,d], all sequence-first with unit stride along d (any other strides). Head h
// of batch element n reads columns h*e .. h*e+e-1, so (n,h) -> batch index n*H + h, as the reference's
// view(T, N*H, e) does. Per (n,h) and query row i:
//   s_j = (scaling * q_i) . k_j  + mask_ij,   mask_ij = -inf iff band_offset >= 0 and j - i >= 1 +
//   band_offset p   = softmax(s),  p~ = dropout(p),  out_i = sum_j p~_j v_j.
// Dropout uses a counter-based hash of (seed, n*H+h, i, j), so backward regenerates the same mask.
#pragma once

#include <cstdint>
#include <functional>

namespace dmdbench::models::kernels {

struct SeqView {  // [L, N, d] float tensor with unit stride along d
  const float* data;
  int64_t stride_t, stride_n;
};

struct AttentionProblem {
  int64_t tgt_len = 0, src_len = 0, batch = 0, heads = 1, head_dim = 1;
  float scaling = 1.0f;      // multiplies q (after its bias), head_dim^-0.5 in the reference
  int64_t band_offset = -1;  // < 0: no mask; else key j is visible to query i iff j < i + 1 + band_offset
  float dropout_p = 0.0f;    // dropout on the probabilities (0 = none)
  uint64_t seed = 0;         // dropout mask seed
  // What the forward keeps for the backward. false: the probabilities (softmax before dropout), laid out
  // [N*H][ceil(T/8)][S][8] (blocks of 8 query rows, rows last): O(T*S) memory. true: each row's max score and
  // 1/sum, [N*H][ceil(T/8)][2][8]: O(T) memory; the backward recomputes a block's probabilities from q and k
  // (one more q.k product per block), bit-identical to the forward's.
  bool recompute = false;
};

// Number of floats the forward saves for the backward (see AttentionProblem::recompute).
int64_t probs_size(const AttentionProblem& pb);

// Saved probabilities above this size are recomputed in the backward instead (the long unaligned sequences:
// MOSI vision 500 x 500 at batch 16 would keep 160 MB per attention call).
inline constexpr int64_t kSavedProbsLimitBytes = int64_t{16} << 20;
// Whether pb's saved probabilities would exceed kSavedProbsLimitBytes.
bool recompute_pays(const AttentionProblem& pb);

// The kernels split a job over LibTorch's OpenMP pool (when it has more than one thread) from this many
// operations on: waking a passive pool's thread takes tens of microseconds on a VM. Each split writes
// disjoint outputs or sums in the one-thread order, so results do not depend on the thread count.
inline constexpr int64_t kSplitWork = int64_t{1} << 20;

// out: [T,N,d] contiguous. probs: probs_size(pb) floats, or nullptr when no backward will follow.
void attention_forward(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, float* out, float* probs);

// grad_out: [T,N,d] (unit stride along d). grad_q [T,N,d], grad_k and grad_v [S,N,d]: contiguous,
// overwritten.
void attention_backward(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, SeqView grad_out,
                        const float* probs, float* grad_q, float* grad_k, float* grad_v);

// Where the CPU has AVX-512 and the probabilities are recomputed (AttentionProblem::recompute, the long
// sequences), the attention runs two blocks of 8 query rows at once in 16 lanes (head dims 5, 8, 10, 16),
// with the 8-lane kernel's results bit for bit. Whether it may (AVX-512 here and not turned off), and a
// switch to turn it off and on (tests and benchmarks compare the two).
bool attention_wide_rows();
void set_attention_wide_rows(bool on);

// The dropout keep decision the kernel uses for element (b = n*H + h, i, j); exposed for tests.
bool attention_dropout_keep(const AttentionProblem& pb, int64_t b, int64_t i, int64_t j);

// LayerNorm over the last dimension of a row-major [R, D] array: y = (x - mean) * rstd * gamma + beta with
// the biased variance, rstd = 1/sqrt(var + eps). mean and rstd ([R]) are saved for the backward.
void layer_norm_forward(int64_t R, int64_t D, const float* x, const float* gamma, const float* beta,
                        float eps, float* y, float* mean, float* rstd);
// dx [R,D] (overwritten); dgamma and dbeta [D] are overwritten with the sums over rows.
void layer_norm_backward(int64_t R, int64_t D, const float* x, const float* gamma, const float* mean,
                         const float* rstd, const float* dy, float* dx, float* dgamma, float* dbeta);

// Dropout multipliers: out[i] = 1/(1-p) if element i is kept, else 0, from a counter-based hash of (seed, i);
// each element is kept with probability 1-p.
void dropout_mask(int64_t n, float p, uint64_t seed, float* out);
// out[i] = x[i] * dropout_mask's out[i], in one pass (x and out may be the same array).
void dropout_multiply(int64_t n, float p, uint64_t seed, const float* x, float* out);

// One Adam update of n values in place (p, exp_avg m, exp_avg_sq v), LibTorch's rule:
// g' = g + wd*p; m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
struct AdamStep {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  double bias_correction1 = 1, bias_correction2 = 1;  // 1 - beta^step
};
void adam_update(const AdamStep& s, int64_t n, float* p, const float* g, float* m, float* v);

// out[c] = sum over rows r of x[r*D + c] for a row-major [R, D] array, rows added in order (the bias gradient
// of a linear layer). out [D] is overwritten.
void column_sum(int64_t R, int64_t D, const float* x, float* out);

// Fills the R rows of a row-major [R, D] array with the same D values (the bias before a GEMM with beta = 1).
void fill_rows(int64_t R, int64_t D, const float* row, float* out);

// x[i] = min(max(x[i], lo), hi) in place (clip_grad_value_).
void clamp(int64_t n, float lo, float hi, float* x);

// Calls work(thread) once on each of `threads` threads of the OpenMP pool (LibTorch's intra-op pool), the
// calling thread being thread 0; returns when all have returned. work must not throw.
void on_threads(int threads, const std::function<void(int)>& work);

}  // namespace dmdbench::models::kernels
