// Fused attention core, CPU float32 (see attention_kernel.h). Plain loops over padded rows of 8 floats, written
// so that the compiler vectorises them; on x86-64 with GCC an AVX2/FMA clone is picked at load time.
#include "models/attention_kernel.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DMD_KERNEL_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DMD_KERNEL_CLONES
#endif

#if defined(__GNUC__)
#define DMD_INLINE inline __attribute__((always_inline))
#else
#define DMD_INLINE inline
#endif

namespace dmdbench::models::kernels {
namespace {

constexpr int64_t kLanes = 8;

// exp(x) for x <= 0 (Cephes expf: range reduction by ln2 and a degree-6 polynomial, ~1 ulp), clamped at -87.
DMD_INLINE float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float t = x * 1.44269504088896341f + 0.5f;
  int32_t n = static_cast<int32_t>(t);  // truncation; fix up to floor for negative t
  n -= static_cast<int32_t>(static_cast<float>(n) > t);
  const float fn = static_cast<float>(n);
  float r = x - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

DMD_INLINE uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

struct DropoutRule {
  bool active = false;
  bool drop_all = false;
  uint32_t threshold = 0, seed_lo = 0, seed_hi = 0;
  float scale = 1.0f;  // 1/(1-p) for kept elements
};

DropoutRule dropout_rule(const AttentionProblem& pb) {
  DropoutRule r;
  if (!(pb.dropout_p > 0.0f)) return r;
  r.active = true;
  if (pb.dropout_p >= 1.0f) {
    r.drop_all = true;
    return r;
  }
  r.threshold = static_cast<uint32_t>(static_cast<double>(pb.dropout_p) * 4294967296.0);
  r.seed_lo = static_cast<uint32_t>(pb.seed);
  r.seed_hi = static_cast<uint32_t>(pb.seed >> 32);
  r.scale = 1.0f / (1.0f - pb.dropout_p);
  return r;
}

DMD_INLINE bool keep_element(const DropoutRule& r, uint32_t idx) {
  return mix32(mix32(idx ^ r.seed_lo) + r.seed_hi) >= r.threshold;
}

// mult[j] = keep(b,i,j) ? 1/(1-p) : 0 for j < n (n a multiple of 8).
DMD_INLINE void dropout_multipliers(const DropoutRule& r, uint32_t row_base, float* mult, int64_t n) {
  if (r.drop_all) {
    for (int64_t j = 0; j < n; ++j) mult[j] = 0.0f;
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    mult[j] = keep_element(r, row_base + static_cast<uint32_t>(j)) ? r.scale : 0.0f;
  }
}

DMD_INLINE float dot8(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t j = 0; j < n; j += kLanes) {
    for (int64_t u = 0; u < kLanes; ++u) acc[u] += a[j + u] * b[j + u];
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

DMD_INLINE float sum8(const float* a, int64_t n) {
  float acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t j = 0; j < n; j += kLanes) {
    for (int64_t u = 0; u < kLanes; ++u) acc[u] += a[j + u];
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

DMD_INLINE float max8(const float* a, int64_t n) {
  float m[kLanes];
  for (int64_t u = 0; u < kLanes; ++u) m[u] = a[u];
  for (int64_t j = kLanes; j < n; j += kLanes) {
    for (int64_t u = 0; u < kLanes; ++u) m[u] = a[j + u] > m[u] ? a[j + u] : m[u];
  }
  float r = m[0];
  for (int64_t u = 1; u < kLanes; ++u) r = m[u] > r ? m[u] : r;
  return r;
}

DMD_INLINE int64_t visible_keys(const AttentionProblem& pb, int64_t i) {
  if (pb.band_offset < 0) return pb.src_len;
  return std::min(pb.src_len, i + 1 + pb.band_offset);
}

// Gather head h of batch element n of x ([L,N,d]) transposed into xt[e*Sp + j] (zero for j >= L).
DMD_INLINE void gather_transposed(SeqView x, int64_t L, int64_t Sp, int64_t n, int64_t col, int64_t E, float* xt) {
  for (int64_t e = 0; e < E; ++e) {
    float* row = xt + e * Sp;
    const float* src = x.data + n * x.stride_n + col + e;
    for (int64_t j = 0; j < L; ++j) row[j] = src[j * x.stride_t];
    for (int64_t j = L; j < Sp; ++j) row[j] = 0.0f;
  }
}

DMD_KERNEL_CLONES
void forward_impl(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, float* out, float* probs) {
  const int64_t T = pb.tgt_len, S = pb.src_len, N = pb.batch, H = pb.heads, E = pb.head_dim, d = H * E;
  const int64_t Sp = padded_src_len(S);
  const DropoutRule drop = dropout_rule(pb);
  std::vector<float> work(static_cast<size_t>((2 * E + 3) * Sp + E));
  float* kT = work.data();
  float* vT = kT + E * Sp;
  float* s = vT + E * Sp;
  float* mult = s + Sp;
  float* pd = mult + Sp;
  float* qs = pd + Sp;  // scaled query row
  const float lowest = std::numeric_limits<float>::lowest();

  for (int64_t b = 0; b < N * H; ++b) {
    const int64_t n = b / H, col = (b % H) * E;
    gather_transposed(k, S, Sp, n, col, E, kT);
    gather_transposed(v, S, Sp, n, col, E, vT);
    for (int64_t i = 0; i < T; ++i) {
      const int64_t lim = visible_keys(pb, i);
      const int64_t L8 = padded_src_len(lim);  // columns touched; the rest of the row is masked out
      const float* qi = q.data + i * q.stride_t + n * q.stride_n + col;
      for (int64_t e = 0; e < E; ++e) qs[e] = qi[e] * pb.scaling;
      for (int64_t j = 0; j < L8; j += kLanes) {  // s_j = q~_i . k_j, 8 keys at a time in registers
        float acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t e = 0; e < E; ++e) {
          const float qe = qs[e];
          const float* kr = kT + e * Sp + j;
          for (int64_t u = 0; u < kLanes; ++u) acc[u] += qe * kr[u];
        }
        for (int64_t u = 0; u < kLanes; ++u) s[j + u] = acc[u];
      }
      for (int64_t j = lim; j < L8; ++j) s[j] = lowest;
      const float mx = max8(s, L8);
      for (int64_t j = 0; j < L8; ++j) s[j] = exp_nonpositive(s[j] - mx);
      for (int64_t j = lim; j < L8; ++j) s[j] = 0.0f;
      const float inv = 1.0f / sum8(s, L8);
      for (int64_t j = 0; j < L8; ++j) s[j] *= inv;
      if (probs != nullptr) {
        float* row = probs + (b * T + i) * Sp;
        std::memcpy(row, s, sizeof(float) * static_cast<size_t>(L8));
        for (int64_t j = L8; j < Sp; ++j) row[j] = 0.0f;
      }
      const float* pv = s;
      if (drop.active) {
        dropout_multipliers(drop, static_cast<uint32_t>((b * T + i) * S), mult, L8);
        for (int64_t j = 0; j < L8; ++j) pd[j] = s[j] * mult[j];
        pv = pd;
      }
      float* oi = out + (i * N + n) * d + col;
      for (int64_t e = 0; e < E; ++e) oi[e] = dot8(pv, vT + e * Sp, L8);
    }
  }
}

DMD_KERNEL_CLONES
void backward_impl(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, SeqView go, const float* probs,
                   float* grad_q, float* grad_k, float* grad_v) {
  const int64_t T = pb.tgt_len, S = pb.src_len, N = pb.batch, H = pb.heads, E = pb.head_dim, d = H * E;
  const int64_t Sp = padded_src_len(S);
  const DropoutRule drop = dropout_rule(pb);
  std::vector<float> work(static_cast<size_t>((4 * E + 4) * Sp));
  float* kT = work.data();
  float* vT = kT + E * Sp;
  float* dkT = vT + E * Sp;
  float* dvT = dkT + E * Sp;
  float* mult = dvT + E * Sp;
  float* pd = mult + Sp;
  float* dp = pd + Sp;
  float* ds = dp + Sp;

  for (int64_t b = 0; b < N * H; ++b) {
    const int64_t n = b / H, col = (b % H) * E;
    gather_transposed(k, S, Sp, n, col, E, kT);
    gather_transposed(v, S, Sp, n, col, E, vT);
    for (int64_t j = 0; j < 2 * E * Sp; ++j) dkT[j] = 0.0f;  // dkT and dvT are adjacent
    for (int64_t i = 0; i < T; ++i) {
      const int64_t L8 = padded_src_len(visible_keys(pb, i));  // probabilities are zero beyond
      const float* p = probs + (b * T + i) * Sp;
      const float* gi = go.data + i * go.stride_t + n * go.stride_n + col;
      const float* qi = q.data + i * q.stride_t + n * q.stride_n + col;
      const float* pv = p;
      if (drop.active) {
        dropout_multipliers(drop, static_cast<uint32_t>((b * T + i) * S), mult, L8);
        for (int64_t j = 0; j < L8; ++j) pd[j] = p[j] * mult[j];
        pv = pd;
      }
      // grad wrt v: dv_j += p~_j * go_i ; grad wrt p~: dp_j = go_i . v_j
      for (int64_t j = 0; j < L8; ++j) dp[j] = 0.0f;
      for (int64_t e = 0; e < E; ++e) {
        const float ge = gi[e];
        float* dvr = dvT + e * Sp;
        const float* vr = vT + e * Sp;
        for (int64_t j = 0; j < L8; ++j) {
          dvr[j] += pv[j] * ge;
          dp[j] += ge * vr[j];
        }
      }
      if (drop.active) {
        for (int64_t j = 0; j < L8; ++j) dp[j] *= mult[j];
      }
      // softmax backward: ds_j = p_j (dp_j - sum_k p_k dp_k)
      const float rd = dot8(p, dp, L8);
      for (int64_t j = 0; j < L8; ++j) ds[j] = p[j] * (dp[j] - rd);
      // scores = (scaling q_i) . k_j
      float* gqi = grad_q + (i * N + n) * d + col;
      for (int64_t e = 0; e < E; ++e) {
        const float* kr = kT + e * Sp;
        gqi[e] = dot8(ds, kr, L8) * pb.scaling;
        const float qe = qi[e] * pb.scaling;
        float* dkr = dkT + e * Sp;
        for (int64_t j = 0; j < L8; ++j) dkr[j] += ds[j] * qe;
      }
    }
    for (int64_t j = 0; j < S; ++j) {
      float* gk = grad_k + (j * N + n) * d + col;
      float* gv = grad_v + (j * N + n) * d + col;
      for (int64_t e = 0; e < E; ++e) {
        gk[e] = dkT[e * Sp + j];
        gv[e] = dvT[e * Sp + j];
      }
    }
  }
}

}  // namespace

int64_t padded_src_len(int64_t src_len) { return (src_len + kLanes - 1) / kLanes * kLanes; }

void attention_forward(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, float* out, float* probs) {
  forward_impl(pb, q, k, v, out, probs);
}

void attention_backward(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, SeqView grad_out,
                        const float* probs, float* grad_q, float* grad_k, float* grad_v) {
  backward_impl(pb, q, k, v, grad_out, probs, grad_q, grad_k, grad_v);
}

bool attention_dropout_keep(const AttentionProblem& pb, int64_t b, int64_t i, int64_t j) {
  const DropoutRule r = dropout_rule(pb);
  if (!r.active) return true;
  if (r.drop_all) return false;
  return keep_element(r, static_cast<uint32_t>((b * pb.tgt_len + i) * pb.src_len + j));
}

}  // namespace dmdbench::models::kernels
