// CPU float32 kernels (see kernels.h). The attention core:
//
// Layout: for each (n, head) the kernel works on blocks of 8 query rows held in the 8 lanes of a vector, so
// the softmax over keys and the products with k and v are lane-wise (no horizontal reductions in the inner
// loops):
//   Q^T [e][T8] (scaled, zero rows past T), K and V row-major [S][e], scores/probabilities [j][8] per row
//   block.
// Saved probabilities use the same layout: [batch*heads][row block][S][8].
// Plain loops over 8 lanes that the compiler vectorises; on x86-64 with GCC an AVX2/FMA clone is chosen at
// load time. Head dims 5, 8, 10, 16 are compiled with a fixed size (registers), others with a runtime size.
// Where the CPU has AVX-512, those head dims run two row blocks at once in 16 lanes ("wide rows") where the
// probabilities are recomputed (long sequences), with the same results bit for bit (see forward_pair, wide).
#include "models/kernels.h"

#include <omp.h>

// GCC on x86-64: function clones, target attributes and the x86 builtins (the FMA builtin that fma8 uses).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DMD_X86_GCC 1
#include <immintrin.h>
#else
#define DMD_X86_GCC 0
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "models/cpu_features.h"

#if DMD_X86_GCC
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
constexpr int64_t kMaxStaticE = 16;

// 8 float lanes (one per query row of a block) with GCC/Clang vector extensions; on targets without 256-bit
// registers the compiler splits each operation in two.
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef float v8f_unaligned __attribute__((vector_size(32), aligned(4)));
// 16 lanes: two row blocks at once where the CPU has AVX-512 (the attention's wide rows, below).
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef float v16f_unaligned __attribute__((vector_size(64), aligned(4)));

DMD_INLINE v8f load8(const float* p) {
  return *reinterpret_cast<const v8f_unaligned*>(p);
}
DMD_INLINE void store8(float* p, v8f x) {
  *reinterpret_cast<v8f_unaligned*>(p) = x;
}
DMD_INLINE v16f load16(const float* p) {
  return *reinterpret_cast<const v16f_unaligned*>(p);
}
DMD_INLINE void store16(float* p, v16f x) {
  *reinterpret_cast<v16f_unaligned*>(p) = x;
}
DMD_INLINE v8f lo8(v16f x) {
  return __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7);
}
DMD_INLINE v8f hi8(v16f x) {
  return __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
}
DMD_INLINE v16f join16(v8f lo, v8f hi) {
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
DMD_INLINE v16f splat16(float x) {
  return v16f{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
}
DMD_INLINE v8f splat(float x) {
  return v8f{x, x, x, x, x, x, x, x};
}
DMD_INLINE v8f vmax(v8f a, v8f b) {
  return a > b ? a : b;
}

DMD_INLINE float hsum8(v8f x) {
  return ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]));
}

// The lane sums of 8 consecutive vectors v[0..7] (at p, p+8, ...) as one vector: r[i] = sum of the lanes of
// v[i].
DMD_INLINE v8f lane_sums8(const float* p) {
  typedef int32_t v8m __attribute__((vector_size(32)));
  const v8m even = {0, 8, 2, 10, 4, 12, 6, 14}, odd = {1, 9, 3, 11, 5, 13, 7, 15};
  const v8m lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
  const v8m lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
  v8f s[4];
  for (int k = 0; k < 4; ++k) {
    const v8f a = load8(p + (2 * k) * kLanes), b = load8(p + (2 * k + 1) * kLanes);
    s[k] = __builtin_shuffle(a, b, even) + __builtin_shuffle(a, b, odd);
  }
  const v8f s0123 = __builtin_shuffle(s[0], s[1], lo2) + __builtin_shuffle(s[0], s[1], hi2);
  const v8f s4567 = __builtin_shuffle(s[2], s[3], lo2) + __builtin_shuffle(s[2], s[3], hi2);
  return __builtin_shuffle(s0123, s4567, lo4) + __builtin_shuffle(s0123, s4567, hi4);
}

// exp(x) for x <= 0 (Cephes expf: range reduction by ln2, degree-6 polynomial, ~1 ulp); 0 below -87.3 (where
// expf underflows), so -inf (a masked score) gives exactly 0. V: v8f or v16f, the same operations per lane.
template <class V>
DMD_INLINE V exp_nonpositive(V x) {
  using VI = decltype(x < x);
  const V lowest = V{} + -87.3f, zero = V{};
  const VI under = x < lowest;
  x = under ? lowest : x;
  const V t = x * 1.44269504088896341f + 0.5f;
  VI n = __builtin_convertvector(t, VI);     // truncation; fix up to floor for negative t
  n += (__builtin_convertvector(n, V) > t);  // true lanes are -1
  const V fn = __builtin_convertvector(n, V);
  V r = x - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  V y = zero + 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const V scale = reinterpret_cast<V>((n + 127) << 23);
  return under ? zero : y * scale;
}

DMD_INLINE uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

template <class VU>
DMD_INLINE VU mix32(VU x) {
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
  return mix32((idx ^ r.seed_lo) + r.seed_hi) >= r.threshold;
}

// Dropout multipliers of key j for the 8 rows i0..i0+7 of batch b: element index (b*T + i)*S + j.
DMD_INLINE v8f lane_multipliers(const DropoutRule& r, const AttentionProblem& pb, int64_t b, int64_t i0,
                                int64_t j) {
  if (r.drop_all) return splat(0.0f);
  const uint32_t base = static_cast<uint32_t>((b * pb.tgt_len + i0) * pb.src_len + j);
  const uint32_t st = static_cast<uint32_t>(pb.src_len);
  const v8u idx = v8u{0, 1, 2, 3, 4, 5, 6, 7} * st + base;
  const v8u h = mix32((idx ^ r.seed_lo) + r.seed_hi);
  return h >= r.threshold ? splat(r.scale) : splat(0.0f);
}

// Keys visible to query row i (all of them without the band).
DMD_INLINE int64_t visible_keys(const AttentionProblem& pb, int64_t i) {
  if (pb.band_offset < 0) return pb.src_len;
  return std::min(pb.src_len, i + 1 + pb.band_offset);
}

struct Dims {
  int64_t T, S, N, H, E, d, T8, blocks;
};

Dims dims_of(const AttentionProblem& pb) {
  Dims m;
  m.T = pb.tgt_len, m.S = pb.src_len, m.N = pb.batch, m.H = pb.heads, m.E = pb.head_dim;
  m.d = m.H * m.E;
  m.blocks = (m.T + kLanes - 1) / kLanes;
  m.T8 = m.blocks * kLanes;
  return m;
}

// Whether `items` independent pieces of about `cost` operations each are worth splitting (kSplitWork;
// LibTorch's OpenMP pool, one thread after torch::set_num_threads(1)).
bool split_pays(int64_t items, int64_t cost) {
  return items > 1 && items * cost >= kSplitWork && omp_get_max_threads() > 1;
}

// Head (n, col..col+E) of a [L,N,d] view, row-major [L][E].
DMD_INLINE void gather_rows(SeqView x, int64_t L, int64_t n, int64_t col, int64_t E, float* dst) {
  for (int64_t j = 0; j < L; ++j) {
    const float* src = x.data + j * x.stride_t + n * x.stride_n + col;
    for (int64_t e = 0; e < E; ++e) dst[j * E + e] = src[e];
  }
}

// Head of a [T,N,d] view transposed to [E][T8] times `scale`, zero rows past T.
DMD_INLINE void gather_transposed(SeqView x, int64_t T, int64_t T8, int64_t n, int64_t col, int64_t E,
                                  float scale, float* dst) {
  for (int64_t e = 0; e < E; ++e) {
    float* row = dst + e * T8;
    const float* src = x.data + n * x.stride_n + col + e;
    for (int64_t i = 0; i < T; ++i) row[i] = src[i * x.stride_t] * scale;
    for (int64_t i = T; i < T8; ++i) row[i] = 0.0f;
  }
}

// Scores s_j = q~_rows . k_j of the 8 query rows i0..i0+7 against keys 0..jmax-1 into sc [jmax][8], -inf
// where the band hides key j; returns each row's max. The forward and the recomputing backward both call it,
// so the backward's probabilities are bit-identical to the forward's.
template <int kE>
DMD_INLINE v8f block_scores(const AttentionProblem& pb, const Dims& m, const float* qT, const float* kr,
                            int64_t i0, int64_t jmax, float* sc) {
  constexpr int kR = kE > 0 ? kE : kMaxStaticE;  // register block size (unused when kE == 0)
  const int64_t E = kE > 0 ? kE : m.E;
  const v8f neg_inf = splat(-std::numeric_limits<float>::infinity());
  const v8i row = v8i{0, 1, 2, 3, 4, 5, 6, 7} + static_cast<int32_t>(i0);
  v8f qb[kR];
  if (kE > 0) {
    for (int64_t e = 0; e < E; ++e) qb[e] = load8(qT + e * m.T8 + i0);
  }
  v8f mx = neg_inf;
  for (int64_t j = 0; j < jmax; ++j) {
    v8f s = splat(0.0f);
    for (int64_t e = 0; e < E; ++e) s += (kE > 0 ? qb[e] : load8(qT + e * m.T8 + i0)) * kr[j * E + e];
    if (pb.band_offset >= 0) s = row >= static_cast<int32_t>(j - pb.band_offset) ? s : neg_inf;
    store8(sc + j * kLanes, s);
    mx = vmax(mx, s);
  }
  return mx;
}

// ---------------------------------------------------------------------------------------------------------------
// Wide rows: two row blocks (16 query rows) in the 16 lanes of an AVX-512 vector. Every lane does what it
// does in its own 8-lane block (the same operations in the same order: scores, max, exp, sums, products), so
// the results are the 8-lane kernel's bit for bit; only the per-block bookkeeping is shared. The band lets
// the upper block see more keys than the lower one (keys jlo..jmax-1): there the lower lanes' scores are
// -inf, their probabilities exactly 0, and their sums are left as they are (masked), as if the loop had
// stopped at jlo. The dk and dv partial sums stay in 8 lanes, added to by the lower block and then by the
// upper one at each key, the order of the 8-lane kernel's blocks.

DMD_INLINE v16f lane_multipliers16(const DropoutRule& r, const AttentionProblem& pb, int64_t b, int64_t i0,
                                   int64_t j) {
  if (r.drop_all) return splat16(0.0f);
  const uint32_t base = static_cast<uint32_t>((b * pb.tgt_len + i0) * pb.src_len + j);
  const uint32_t st = static_cast<uint32_t>(pb.src_len);
  const v16u idx = v16u{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} * st + base;
  const v16u h = mix32((idx ^ r.seed_lo) + r.seed_hi);
  return h >= r.threshold ? splat16(r.scale) : splat16(0.0f);
}

// Scores of rows i0..i0+15 against keys 0..jmax-1 into sc [jmax][16] (-inf where the band hides key j), as
// block_scores computes them; returns each row's max.
template <int kE>
DMD_INLINE v16f pair_scores(const AttentionProblem& pb, const Dims& m, const float* qT, const float* kr,
                            int64_t i0, int64_t jmax, float* sc) {
  const v16f neg_inf = splat16(-std::numeric_limits<float>::infinity());
  const v16i row = v16i{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} + static_cast<int32_t>(i0);
  v16f qb[kE];
  for (int64_t e = 0; e < kE; ++e) qb[e] = load16(qT + e * m.T8 + i0);
  v16f mx = neg_inf;
  for (int64_t j = 0; j < jmax; ++j) {
    v16f s = splat16(0.0f);
    for (int64_t e = 0; e < kE; ++e) s += qb[e] * kr[j * kE + e];
    if (pb.band_offset >= 0) s = row >= static_cast<int32_t>(j - pb.band_offset) ? s : neg_inf;
    store16(sc + j * 16, s);
    mx = mx > s ? mx : s;
  }
  return mx;
}

// a * b + c rounded once, on 8 lanes, as the 8-lane kernel's contracted `c + a * b` computes it. Written out
// because here a and b are halves of 16-lane values, whose two products the compiler would otherwise merge
// into one 16-lane product (then added without contraction). Only in the AVX-512 functions below.
DMD_INLINE v8f fma8(v8f a, v8f b, v8f c) {
#if DMD_X86_GCC
  return __builtin_ia32_vfmaddps256(a, b, c);
#else
  return c + a * b;  // elsewhere the wide rows are never chosen (wide() is false)
#endif
}

// The lanes of the upper block (8..15).
DMD_INLINE v16i upper_lanes() {
  return v16i{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} >= 8;
}

// Forward of the row blocks blk and blk+1 of one (n, head); sc: [S][16] scratch.
template <int kE>
DMD_INLINE void forward_pair(const AttentionProblem& pb, const Dims& m, const DropoutRule& drop, int64_t b,
                             int64_t blk, const float* qT, const float* kr, const float* vr, float* sc,
                             float* out, float* probs) {
  const int64_t n = b / m.H, col = (b % m.H) * kE, i0 = blk * kLanes;
  const int64_t jlo = visible_keys(pb, std::min(i0 + kLanes - 1, m.T - 1));
  const int64_t jmax = visible_keys(pb, std::min(i0 + 2 * kLanes - 1, m.T - 1));
  const v16f mx = pair_scores<kE>(pb, m, qT, kr, i0, jmax, sc);
  v16f sum = splat16(0.0f);
  for (int64_t j = 0; j < jmax; ++j) {
    const v16f p = exp_nonpositive(load16(sc + j * 16) - mx);
    store16(sc + j * 16, p);
    sum += p;  // the lower lanes add 0 from jlo on
  }
  const v16f inv = 1.0f / sum;
  if (probs != nullptr) {  // each block's max and 1/sum for the recomputing backward (wide rows recompute)
    float* st = probs + (b * m.blocks + blk) * 2 * kLanes;  // [2 blocks][max, 1/sum][8]
    store8(st, lo8(mx)), store8(st + kLanes, lo8(inv)), store8(st + 2 * kLanes, hi8(mx));
    store8(st + 3 * kLanes, hi8(inv));
  }
  for (int64_t j = 0; j < jmax; ++j) store16(sc + j * 16, load16(sc + j * 16) * inv);
  const v16i upper = upper_lanes();
  v16f ob[kE];
  for (int64_t e = 0; e < kE; ++e) ob[e] = splat16(0.0f);
  for (int64_t j = 0; j < jmax; ++j) {
    v16f p = load16(sc + j * 16);
    if (drop.active) p *= lane_multipliers16(drop, pb, b, i0, j);
    if (j < jlo) {
      for (int64_t e = 0; e < kE; ++e) ob[e] += p * vr[j * kE + e];
    } else {
      for (int64_t e = 0; e < kE; ++e) ob[e] = upper ? ob[e] + p * vr[j * kE + e] : ob[e];
    }
  }
  float o[kE][16];
  for (int64_t e = 0; e < kE; ++e) store16(o[e], ob[e]);
  const int64_t rows = std::min<int64_t>(16, m.T - i0);
  for (int64_t u = 0; u < rows; ++u) {
    float* dst = out + ((i0 + u) * m.N + n) * m.d + col;
    for (int64_t e = 0; e < kE; ++e) dst[e] = o[e][u];
  }
}

// Backward of the row blocks blk and blk+1 of one (n, head), as backward_head's two passes do it per block;
// pp and dp: [S][16] scratch.
template <int kE>
DMD_INLINE void backward_pair(const AttentionProblem& pb, const Dims& m, const DropoutRule& drop, int64_t b,
                              int64_t blk, const float* qT, const float* gT, const float* kr, const float* vr,
                              const float* probs, float* dk, float* dv, float* pp, float* dp, float* grad_q) {
  const int64_t n = b / m.H, col = (b % m.H) * kE, i0 = blk * kLanes;
  const int64_t jlo = visible_keys(pb, std::min(i0 + kLanes - 1, m.T - 1));
  const int64_t jmax = visible_keys(pb, std::min(i0 + 2 * kLanes - 1, m.T - 1));
  // The pair's probabilities, recomputed into pp from each block's saved max and 1/sum (wide rows recompute).
  const float* st = probs + (b * m.blocks + blk) * 2 * kLanes;
  const v16f mx = join16(load8(st), load8(st + 2 * kLanes));
  const v16f inv = join16(load8(st + kLanes), load8(st + 3 * kLanes));
  pair_scores<kE>(pb, m, qT, kr, i0, jmax, pp);
  for (int64_t j = 0; j < jmax; ++j) store16(pp + j * 16, exp_nonpositive(load16(pp + j * 16) - mx) * inv);
  auto prob = [&](int64_t j) { return load16(pp + j * 16); };
  const v16i upper = upper_lanes();
  // pass 1: dv_j += p~_j go (lower block, then upper); dp_j = (go . v_j) * mask; rowdot = sum_j p_j dp_j
  v16f gb[kE];
  v8f glo[kE], ghi[kE];
  for (int64_t e = 0; e < kE; ++e) {
    gb[e] = load16(gT + e * m.T8 + i0);
    glo[e] = lo8(gb[e]), ghi[e] = hi8(gb[e]);
  }
  v16f rowdot = splat16(0.0f);
  for (int64_t j = 0; j < jmax; ++j) {
    const v16f p = prob(j);
    v16f mult = splat16(1.0f), pd = p, g = splat16(0.0f);
    if (drop.active) {
      mult = lane_multipliers16(drop, pb, b, i0, j);
      pd = p * mult;
    }
    const v8f pdlo = lo8(pd), pdhi = hi8(pd);
    for (int64_t e = 0; e < kE; ++e) {
      float* dve = dv + (j * kE + e) * kLanes;
      if (j < jlo)
        store8(dve, fma8(pdhi, ghi[e], fma8(pdlo, glo[e], load8(dve))));
      else
        store8(dve, fma8(pdhi, ghi[e], load8(dve)));
      g += gb[e] * vr[j * kE + e];
    }
    if (drop.active) g *= mult;
    store16(dp + j * 16, g);
    rowdot = j < jlo ? rowdot + p * g : (upper ? rowdot + p * g : rowdot);
  }
  // pass 2: ds = p (dp - rowdot); dq_rows = sum_j ds_j k_j ; dk_j += ds_j q~_rows (lower block, then upper).
  // Large head dims go in two halves (registers), as in backward_head.
  constexpr int kC = kE > 8 ? (kE + 1) / 2 : kE;
  const int64_t rows = std::min<int64_t>(16, m.T - i0);
  for (int64_t e0 = 0; e0 < kE; e0 += kC) {
    const int64_t ne = std::min<int64_t>(kC, kE - e0);
    v16f gqb[kC];
    v8f qlo[kC], qhi[kC];
    for (int64_t c = 0; c < ne; ++c) {
      const v16f qb = load16(qT + (e0 + c) * m.T8 + i0);
      qlo[c] = lo8(qb), qhi[c] = hi8(qb);
      gqb[c] = splat16(0.0f);
    }
    for (int64_t j = 0; j < jmax; ++j) {
      const v16f ds = prob(j) * (load16(dp + j * 16) - rowdot);
      const v8f dslo = lo8(ds), dshi = hi8(ds);
      for (int64_t c = 0; c < ne; ++c) {
        const int64_t e = e0 + c;
        const float ke = kr[j * kE + e];
        float* dke = dk + (j * kE + e) * kLanes;
        if (j < jlo) {
          gqb[c] += ds * ke;
          store8(dke, fma8(dshi, qhi[c], fma8(dslo, qlo[c], load8(dke))));
        } else {
          gqb[c] = upper ? gqb[c] + ds * ke : gqb[c];
          store8(dke, fma8(dshi, qhi[c], load8(dke)));
        }
      }
    }
    float gqo[kC][16];
    for (int64_t c = 0; c < ne; ++c) store16(gqo[c], gqb[c]);
    for (int64_t u = 0; u < rows; ++u) {
      float* dst = grad_q + ((i0 + u) * m.N + n) * m.d + col + e0;
      for (int64_t c = 0; c < ne; ++c) dst[c] = gqo[c][u] * pb.scaling;
    }
  }
}

// One (n, head): forward over all row blocks. kE > 0 fixes the head dim at compile time; kWide: pairs of
// blocks in 16 lanes (forward_pair), the last block alone when their number is odd.
template <int kE, bool kWide>
DMD_INLINE void forward_head(const AttentionProblem& pb, const Dims& m, const DropoutRule& drop, int64_t b,
                             SeqView q, SeqView k, SeqView v, float* out, float* probs, float* work) {
  constexpr int kR = kE > 0 ? kE : kMaxStaticE;  // register block size (unused when kE == 0)
  const int64_t E = kE > 0 ? kE : m.E;
  const int64_t n = b / m.H, col = (b % m.H) * E;
  float* qT = work;                // [E][T8]
  float* kr = qT + E * m.T8;       // [S][E]
  float* vr = kr + m.S * E;        // [S][E]
  float* sc = vr + m.S * E;        // [S][8] scores -> probabilities
  float* acc = sc + m.S * kLanes;  // [E][8] (runtime-E path)
  float* sc16 = acc + E * kLanes;  // [S][16] (kWide)
  gather_transposed(q, m.T, m.T8, n, col, E, pb.scaling, qT);
  gather_rows(k, m.S, n, col, E, kr);
  gather_rows(v, m.S, n, col, E, vr);

  for (int64_t blk = 0; blk < m.blocks; ++blk) {
    if constexpr (kWide && kE > 0) {
      if (blk + 1 < m.blocks) {
        forward_pair<kE>(pb, m, drop, b, blk, qT, kr, vr, sc16, out, probs);
        ++blk;
        continue;
      }
    }
    const int64_t i0 = blk * kLanes;
    const int64_t jmax = visible_keys(pb, std::min(i0 + kLanes - 1, m.T - 1));
    const v8f mx = block_scores<kE>(pb, m, qT, kr, i0, jmax, sc);
    // softmax over keys, per row
    v8f sum = splat(0.0f);
    for (int64_t j = 0; j < jmax; ++j) {
      const v8f p = exp_nonpositive(load8(sc + j * kLanes) - mx);
      store8(sc + j * kLanes, p);
      sum += p;
    }
    const v8f inv = 1.0f / sum;
    float* P = sc;
    if (probs != nullptr && pb.recompute) {  // the rows' max and 1/sum: [N*H][blocks][2][8]
      store8(probs + (b * m.blocks + blk) * 2 * kLanes, mx);
      store8(probs + (b * m.blocks + blk) * 2 * kLanes + kLanes, inv);
    } else if (probs != nullptr) {
      P = probs + (b * m.blocks + blk) * m.S * kLanes;
    }
    for (int64_t j = 0; j < jmax; ++j) store8(P + j * kLanes, load8(sc + j * kLanes) * inv);
    // out_rows = sum_j dropout(p_j) v_j
    v8f ob[kR];
    for (int64_t e = 0; e < E; ++e) {
      if (kE > 0)
        ob[e] = splat(0.0f);
      else
        store8(acc + e * kLanes, splat(0.0f));
    }
    for (int64_t j = 0; j < jmax; ++j) {
      v8f p = load8(P + j * kLanes);
      if (drop.active) p *= lane_multipliers(drop, pb, b, i0, j);
      for (int64_t e = 0; e < E; ++e) {
        if (kE > 0)
          ob[e] += p * vr[j * E + e];
        else
          store8(acc + e * kLanes, load8(acc + e * kLanes) + p * vr[j * E + e]);
      }
    }
    float o[kR > 0 ? kR : 1][kLanes];
    const int64_t rows = std::min(kLanes, m.T - i0);
    for (int64_t e = 0; e < E; ++e) {
      if (kE > 0) store8(o[e], ob[e]);
    }
    for (int64_t u = 0; u < rows; ++u) {
      float* dst = out + ((i0 + u) * m.N + n) * m.d + col;
      for (int64_t e = 0; e < E; ++e) dst[e] = kE > 0 ? o[e][u] : acc[e * kLanes + u];
    }
  }
}

template <int kE, bool kWide>
DMD_INLINE void backward_head(const AttentionProblem& pb, const Dims& m, const DropoutRule& drop, int64_t b,
                              SeqView q, SeqView k, SeqView v, SeqView go, const float* probs, float* grad_q,
                              float* grad_k, float* grad_v, float* work) {
  constexpr int kR = kE > 0 ? kE : 1;
  const int64_t E = kE > 0 ? kE : m.E;
  const int64_t n = b / m.H, col = (b % m.H) * E;
  float* qT = work;                   // [E][T8] scaled q
  float* gT = qT + E * m.T8;          // [E][T8] grad_out
  float* kr = gT + E * m.T8;          // [S][E]
  float* vr = kr + m.S * E;           // [S][E]
  float* dk = vr + m.S * E;           // [S][E][8] per-lane partial sums
  float* dv = dk + m.S * E * kLanes;  // [S][E][8]
  float* dp = dv + m.S * E * kLanes;  // [S][8]
  float* gq = dp + m.S * kLanes;      // [E][8] (runtime-E path)
  float* pr = gq + E * kLanes;        // [S][8] recomputed probabilities (pb.recompute)
  float* pp16 = pr + m.S * kLanes;    // [S][16] a pair's probabilities (kWide)
  float* dp16 = kWide ? pp16 + m.S * 16 : nullptr;  // [S][16] a pair's dp (kWide)
  gather_transposed(q, m.T, m.T8, n, col, E, pb.scaling, qT);
  gather_transposed(go, m.T, m.T8, n, col, E, 1.0f, gT);
  gather_rows(k, m.S, n, col, E, kr);
  gather_rows(v, m.S, n, col, E, vr);
  std::memset(dk, 0, sizeof(float) * static_cast<size_t>(2 * m.S * E * kLanes));  // dk and dv are adjacent

  for (int64_t blk = 0; blk < m.blocks; ++blk) {
    if constexpr (kWide && kE > 0) {
      if (blk + 1 < m.blocks) {
        backward_pair<kE>(pb, m, drop, b, blk, qT, gT, kr, vr, probs, dk, dv, pp16, dp16, grad_q);
        ++blk;
        continue;
      }
    }
    const int64_t i0 = blk * kLanes;
    const int64_t jmax = visible_keys(pb, std::min(i0 + kLanes - 1, m.T - 1));
    const float* P = probs + (b * m.blocks + blk) * m.S * kLanes;
    if (pb.recompute) {  // p_j = exp(s_j - max) / sum, as the forward computed them
      const float* st = probs + (b * m.blocks + blk) * 2 * kLanes;
      const v8f mx = load8(st), inv = load8(st + kLanes);
      block_scores<kE>(pb, m, qT, kr, i0, jmax, pr);
      for (int64_t j = 0; j < jmax; ++j)
        store8(pr + j * kLanes, exp_nonpositive(load8(pr + j * kLanes) - mx) * inv);
      P = pr;
    }
    // pass 1: dv_j += p~_j go ; dp_j = (go . v_j) * mask ; rowdot = sum_j p_j dp_j
    v8f gb[kR];
    if (kE > 0) {
      for (int64_t e = 0; e < E; ++e) gb[e] = load8(gT + e * m.T8 + i0);
    }
    v8f rowdot = splat(0.0f);
    for (int64_t j = 0; j < jmax; ++j) {
      const v8f p = load8(P + j * kLanes);
      v8f mult = splat(1.0f), pd = p, g = splat(0.0f);
      if (drop.active) {
        mult = lane_multipliers(drop, pb, b, i0, j);
        pd = p * mult;
      }
      for (int64_t e = 0; e < E; ++e) {
        const v8f ge = kE > 0 ? gb[e] : load8(gT + e * m.T8 + i0);
        float* dve = dv + (j * E + e) * kLanes;
        store8(dve, load8(dve) + pd * ge);
        g += ge * vr[j * E + e];
      }
      if (drop.active) g *= mult;
      store8(dp + j * kLanes, g);
      rowdot += p * g;
    }
    // pass 2: ds = p (dp - rowdot); dq_rows = sum_j ds_j k_j ; dk_j += ds_j q~_rows. Large head dims go in
    // two halves so that the q block and the dq accumulators stay in registers.
    constexpr int kC = kE > 8 ? (kE + 1) / 2 : (kE > 0 ? kE : 1);
    const int64_t rows = std::min(kLanes, m.T - i0);
    const int64_t chunk = kE > 0 ? kC : E;
    for (int64_t e0 = 0; e0 < E; e0 += chunk) {
      const int64_t ne = std::min(chunk, E - e0);
      v8f qb[kC], gqb[kC];
      for (int64_t c = 0; c < ne; ++c) {
        if (kE > 0) {
          qb[c] = load8(qT + (e0 + c) * m.T8 + i0);
          gqb[c] = splat(0.0f);
        } else {
          store8(gq + (e0 + c) * kLanes, splat(0.0f));
        }
      }
      for (int64_t j = 0; j < jmax; ++j) {
        const v8f ds = load8(P + j * kLanes) * (load8(dp + j * kLanes) - rowdot);
        for (int64_t c = 0; c < ne; ++c) {
          const int64_t e = e0 + c;
          const float ke = kr[j * E + e];
          float* dke = dk + (j * E + e) * kLanes;
          if (kE > 0) {
            gqb[c] += ds * ke;
            store8(dke, load8(dke) + ds * qb[c]);
          } else {
            store8(gq + e * kLanes, load8(gq + e * kLanes) + ds * ke);
            store8(dke, load8(dke) + ds * load8(qT + e * m.T8 + i0));
          }
        }
      }
      float gqo[kC][kLanes];
      for (int64_t c = 0; c < ne; ++c) {
        if (kE > 0) store8(gqo[c], gqb[c]);
      }
      for (int64_t u = 0; u < rows; ++u) {
        float* dst = grad_q + ((i0 + u) * m.N + n) * m.d + col + e0;
        for (int64_t c = 0; c < ne; ++c) {
          dst[c] = (kE > 0 ? gqo[c][u] : gq[(e0 + c) * kLanes + u]) * pb.scaling;
        }
      }
    }
  }
  // Lane sums of the dk/dv partials, 8 (j,e) entries at a time, then scatter to [S,N,d].
  float* red = dp;  // [S*E] reuse (dp is free now); dp has S*8 >= S*E floats only when E <= 8
  std::vector<float> big;
  if (E > kLanes) {
    big.resize(static_cast<size_t>(m.S * E));
    red = big.data();
  }
  for (float* acc8 : {dk, dv}) {
    const int64_t total = m.S * E, total8 = total / kLanes * kLanes;
    for (int64_t x = 0; x < total8; x += kLanes) store8(red + x, lane_sums8(acc8 + x * kLanes));
    for (int64_t x = total8; x < total; ++x) red[x] = hsum8(load8(acc8 + x * kLanes));
    float* dst = acc8 == dk ? grad_k : grad_v;
    for (int64_t j = 0; j < m.S; ++j) {
      float* row = dst + (j * m.N + n) * m.d + col;
      for (int64_t e = 0; e < E; ++e) row[e] = red[j * E + e];
    }
  }
}

// The head dims with a fixed size, else the runtime-E path.
template <bool kWide>
DMD_INLINE void forward_one(const AttentionProblem& pb, const Dims& m, const DropoutRule& drop, int64_t b,
                            SeqView q, SeqView k, SeqView v, float* out, float* probs, float* work) {
  switch (m.E) {
    case 5:
      return forward_head<5, kWide>(pb, m, drop, b, q, k, v, out, probs, work);
    case 8:
      return forward_head<8, kWide>(pb, m, drop, b, q, k, v, out, probs, work);
    case 10:
      return forward_head<10, kWide>(pb, m, drop, b, q, k, v, out, probs, work);
    case 16:
      return forward_head<16, kWide>(pb, m, drop, b, q, k, v, out, probs, work);
    default:
      return forward_head<0, kWide>(pb, m, drop, b, q, k, v, out, probs, work);
  }
}

template <bool kWide>
DMD_INLINE void backward_one(const AttentionProblem& pb, const Dims& m, const DropoutRule& drop, int64_t b,
                             SeqView q, SeqView k, SeqView v, SeqView go, const float* probs, float* grad_q,
                             float* grad_k, float* grad_v, float* work) {
  switch (m.E) {
    case 5:
      return backward_head<5, kWide>(pb, m, drop, b, q, k, v, go, probs, grad_q, grad_k, grad_v, work);
    case 8:
      return backward_head<8, kWide>(pb, m, drop, b, q, k, v, go, probs, grad_q, grad_k, grad_v, work);
    case 10:
      return backward_head<10, kWide>(pb, m, drop, b, q, k, v, go, probs, grad_q, grad_k, grad_v, work);
    case 16:
      return backward_head<16, kWide>(pb, m, drop, b, q, k, v, go, probs, grad_q, grad_k, grad_v, work);
    default:
      return backward_head<0, kWide>(pb, m, drop, b, q, k, v, go, probs, grad_q, grad_k, grad_v, work);
  }
}

// Each thread's scratch (floats) for forward_head and backward_head; the wide rows' [S][16] buffers only
// where they run.
int64_t forward_work(const Dims& m, bool wide) {
  return m.E * m.T8 + 2 * m.S * m.E + m.S * kLanes + m.E * kLanes + (wide ? m.S * 16 : 0);
}
int64_t backward_work(const Dims& m, bool wide) {
  return 2 * m.E * m.T8 + 2 * m.S * m.E + 2 * m.S * m.E * kLanes + 2 * m.S * kLanes + m.E * kLanes +
         (wide ? 2 * m.S * 16 : 0);
}

// (n, head) pairs write disjoint outputs, so splitting them over threads gives the one-thread result.
DMD_KERNEL_CLONES
void forward_impl(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, float* out, float* probs) {
  const Dims m = dims_of(pb);
  const DropoutRule drop = dropout_rule(pb);
  const int64_t heads = m.N * m.H;
#pragma omp parallel if (split_pays(heads, m.T * m.S * m.E))
  {
    std::vector<float> work(static_cast<size_t>(forward_work(m, false)));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < heads; ++b) forward_one<false>(pb, m, drop, b, q, k, v, out, probs, work.data());
  }
}

DMD_KERNEL_CLONES
void backward_impl(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, SeqView go,
                   const float* probs, float* grad_q, float* grad_k, float* grad_v) {
  const Dims m = dims_of(pb);
  const DropoutRule drop = dropout_rule(pb);
  const int64_t heads = m.N * m.H;
#pragma omp parallel if (split_pays(heads, m.T * m.S * m.E))
  {
    std::vector<float> work(static_cast<size_t>(backward_work(m, false)));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < heads; ++b)
      backward_one<false>(pb, m, drop, b, q, k, v, go, probs, grad_q, grad_k, grad_v, work.data());
  }
}

#if DMD_X86_GCC
#define DMD_AVX512 __attribute__((target("arch=x86-64-v4")))
#else
#define DMD_AVX512
#endif

// The same with pairs of row blocks in 16 lanes, compiled for AVX-512 (called only where the CPU has it). The
// OpenMP region is written out in each entry point on purpose: GCC outlines it into a function that takes the
// target of the function it is written in (clones, or AVX-512 here), so a shared helper would compile the
// per-head loop for the default target.
DMD_AVX512
void forward_impl_wide(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, float* out,
                       float* probs) {
  const Dims m = dims_of(pb);
  const DropoutRule drop = dropout_rule(pb);
  const int64_t heads = m.N * m.H;
#pragma omp parallel if (split_pays(heads, m.T * m.S * m.E))
  {
    std::vector<float> work(static_cast<size_t>(forward_work(m, true)));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < heads; ++b) forward_one<true>(pb, m, drop, b, q, k, v, out, probs, work.data());
  }
}

DMD_AVX512
void backward_impl_wide(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, SeqView go,
                        const float* probs, float* grad_q, float* grad_k, float* grad_v) {
  const Dims m = dims_of(pb);
  const DropoutRule drop = dropout_rule(pb);
  const int64_t heads = m.N * m.H;
#pragma omp parallel if (split_pays(heads, m.T * m.S * m.E))
  {
    std::vector<float> work(static_cast<size_t>(backward_work(m, true)));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < heads; ++b)
      backward_one<true>(pb, m, drop, b, q, k, v, go, probs, grad_q, grad_k, grad_v, work.data());
  }
}

std::atomic<bool> g_wide_rows{true};

// Whether pb runs with wide rows: AVX-512 here, not turned off, a head dim with a fixed size, and
// probabilities that are recomputed rather than saved (the long, unaligned sequences). On the aligned
// sequences (saved probabilities) the wide forward ran at 1.0-0.93x the 8-lane kernel's time alone but made
// the MOSI and MOSEI training steps 3-4% slower (in-process A/B, 20 steps each), and the backward is bound by
// the probabilities' loads and the 8-lane dk/dv sums (0.9-1.0x). Recomputing, alone: forward 0.80-0.87x,
// backward 0.81-0.87x (50 x 50 and 150 x 150); a smoke training run on synthetic unaligned MOSI took 0.89x
// the time.
bool wide(const AttentionProblem& pb) {
  const int64_t E = pb.head_dim;
  return g_wide_rows.load(std::memory_order_relaxed) && DMD_X86_GCC && cpu::has_avx512() &&
         (E == 5 || E == 8 || E == 10 || E == 16) && pb.recompute;
}

// ---------------------------------------------------------------------------------------------------------------
// LayerNorm

DMD_KERNEL_CLONES
void layer_norm_forward_impl(int64_t R, int64_t D, const float* x, const float* gamma, const float* beta,
                             float eps, float* y, float* mean, float* rstd) {
  const int64_t D8 = D / kLanes * kLanes;
  const float inv_d = 1.0f / static_cast<float>(D);
#pragma omp parallel for schedule(static) if (split_pays(R, 4 * D))
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    v8f s = splat(0.0f);
    for (int64_t c = 0; c < D8; c += kLanes) s += load8(xr + c);
    float sum = hsum8(s);
    for (int64_t c = D8; c < D; ++c) sum += xr[c];
    const float mu = sum * inv_d;
    v8f q = splat(0.0f);
    for (int64_t c = 0; c < D8; c += kLanes) {
      const v8f dx = load8(xr + c) - mu;
      q += dx * dx;
    }
    float sq = hsum8(q);
    for (int64_t c = D8; c < D; ++c) sq += (xr[c] - mu) * (xr[c] - mu);
    const float rs = 1.0f / std::sqrt(sq * inv_d + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (int64_t c = 0; c < D8; c += kLanes)
      store8(yr + c, (load8(xr + c) - mu) * rs * load8(gamma + c) + load8(beta + c));
    for (int64_t c = D8; c < D; ++c) yr[c] = (xr[c] - mu) * rs * gamma[c] + beta[c];
  }
}

// One row of LayerNorm's backward: g = dy*gamma; dx = rstd * (g - mean(g) - xhat * mean(g*xhat)).
DMD_INLINE void layer_norm_dx_row(int64_t D, const float* xr, const float* gr, const float* gamma, float mu,
                                  float rs, float* dxr) {
  const int64_t D8 = D / kLanes * kLanes;
  const float inv_d = 1.0f / static_cast<float>(D);
  v8f sg = splat(0.0f), sgx = splat(0.0f);
  for (int64_t c = 0; c < D8; c += kLanes) {
    const v8f xh = (load8(xr + c) - mu) * rs;
    const v8f g = load8(gr + c) * load8(gamma + c);
    sg += g;
    sgx += g * xh;
  }
  float a = hsum8(sg), b = hsum8(sgx);
  for (int64_t c = D8; c < D; ++c) {
    const float xh = (xr[c] - mu) * rs;
    const float g = gr[c] * gamma[c];
    a += g;
    b += g * xh;
  }
  const float mg = a * inv_d, mgx = b * inv_d;
  for (int64_t c = 0; c < D8; c += kLanes) {
    const v8f xh = (load8(xr + c) - mu) * rs;
    store8(dxr + c, (load8(gr + c) * load8(gamma + c) - mg - xh * mgx) * rs);
  }
  for (int64_t c = D8; c < D; ++c) {
    const float xh = (xr[c] - mu) * rs;
    dxr[c] = (gr[c] * gamma[c] - mg - xh * mgx) * rs;
  }
}

// One thread: row by row, dx and the running sums dgamma += dy*xhat, dbeta += dy (in L1).
DMD_KERNEL_CLONES
void layer_norm_backward_impl(int64_t R, int64_t D, const float* x, const float* gamma, const float* mean,
                              const float* rstd, const float* dy, float* dx, float* dgamma, float* dbeta) {
  const int64_t D8 = D / kLanes * kLanes;
  std::memset(dgamma, 0, sizeof(float) * static_cast<size_t>(D));
  std::memset(dbeta, 0, sizeof(float) * static_cast<size_t>(D));
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * D;
    const float* gr = dy + r * D;
    const float mu = mean[r], rs = rstd[r];
    layer_norm_dx_row(D, xr, gr, gamma, mu, rs, dx + r * D);
    for (int64_t c = 0; c < D8; c += kLanes) {
      const v8f xh = (load8(xr + c) - mu) * rs;
      const v8f dyc = load8(gr + c);
      store8(dgamma + c, load8(dgamma + c) + dyc * xh);
      store8(dbeta + c, load8(dbeta + c) + dyc);
    }
    for (int64_t c = D8; c < D; ++c) {
      const float xh = (xr[c] - mu) * rs;
      dgamma[c] += gr[c] * xh;
      dbeta[c] += gr[c];
    }
  }
}

// The same backward split over threads (LibTorch's pool has more than one and the rows are many): dx row by
// row, then dgamma and dbeta column block by column block, each column summed over the rows in order with the
// serial loop's operations, so the results are the serial ones bit for bit.
DMD_KERNEL_CLONES
void layer_norm_backward_split(int64_t R, int64_t D, const float* x, const float* gamma, const float* mean,
                               const float* rstd, const float* dy, float* dx, float* dgamma, float* dbeta) {
  const int64_t D8 = D / kLanes * kLanes;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r)
      layer_norm_dx_row(D, x + r * D, dy + r * D, gamma, mean[r], rstd[r], dx + r * D);
    const int64_t blocks = D8 / kLanes + (D8 < D ? 1 : 0);  // column blocks of 8, then the tail
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t c = blk * kLanes;
      if (c < D8) {
        v8f dg = splat(0.0f), db = splat(0.0f);
        for (int64_t r = 0; r < R; ++r) {
          const v8f xh = (load8(x + r * D + c) - mean[r]) * rstd[r];
          const v8f dyc = load8(dy + r * D + c);
          dg = dg + dyc * xh;
          db = db + dyc;
        }
        store8(dgamma + c, dg);
        store8(dbeta + c, db);
      } else {
        for (int64_t cc = D8; cc < D; ++cc) dgamma[cc] = dbeta[cc] = 0.0f;
        for (int64_t r = 0; r < R; ++r) {
          const float* xr = x + r * D;
          const float* gr = dy + r * D;
          const float mu = mean[r], rs = rstd[r];
          for (int64_t cc = D8; cc < D; ++cc) {
            const float xh = (xr[cc] - mu) * rs;
            dgamma[cc] += gr[cc] * xh;
            dbeta[cc] += gr[cc];
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Dropout masks

// out[i] = m_i (x == nullptr) or x[i] * m_i, m_i the multiplier of element i: 1/(1-p) if kept, else 0.
DMD_KERNEL_CLONES
void dropout_impl(int64_t n, float p, uint64_t seed, const float* x, float* out) {
  AttentionProblem pb;
  pb.dropout_p = p;
  pb.seed = seed;
  const DropoutRule r = dropout_rule(pb);
  if (!r.active) {
    for (int64_t i = 0; i < n; ++i) out[i] = x != nullptr ? x[i] : 1.0f;
    return;
  }
  const int64_t n8 = n / kLanes * kLanes;
#pragma omp parallel for schedule(static) if (split_pays(n8 / kLanes, 64))
  for (int64_t i = 0; i < n8; i += kLanes) {
    v8f m = splat(0.0f);
    if (!r.drop_all) {
      const v8u idx = v8u{0, 1, 2, 3, 4, 5, 6, 7} + static_cast<uint32_t>(i);
      const v8u h = mix32((idx ^ r.seed_lo) + r.seed_hi);
      m = h >= r.threshold ? splat(r.scale) : splat(0.0f);
    }
    store8(out + i, x != nullptr ? load8(x + i) * m : m);
  }
  for (int64_t i = n8; i < n; ++i) {
    const float m = (!r.drop_all && keep_element(r, static_cast<uint32_t>(i))) ? r.scale : 0.0f;
    out[i] = x != nullptr ? x[i] * m : m;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Adam

DMD_KERNEL_CLONES
void adam_update_impl(const AdamStep& s, int64_t n, float* p, const float* g, float* m, float* v) {
  const float b1 = static_cast<float>(s.beta1), b2 = static_cast<float>(s.beta2);
  const float a1 = static_cast<float>(1 - s.beta1), a2 = static_cast<float>(1 - s.beta2);
  const float wd = static_cast<float>(s.weight_decay), eps = static_cast<float>(s.eps);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(s.bias_correction2));
  const float step = static_cast<float>(s.lr / s.bias_correction1);
  const int64_t n8 = n / kLanes * kLanes;
#pragma omp parallel for schedule(static) if (split_pays(n8 / kLanes, 64))
  for (int64_t i = 0; i < n8; i += kLanes) {
    v8f gi = load8(g + i);
    const v8f pi = load8(p + i);
    if (wd != 0.0f) gi += pi * wd;
    const v8f mi = load8(m + i) * b1 + gi * a1;
    const v8f vi = load8(v + i) * b2 + gi * gi * a2;
    v8f root;
    for (int u = 0; u < kLanes; ++u) root[u] = std::sqrt(vi[u]);
    store8(m + i, mi);
    store8(v + i, vi);
    store8(p + i, pi - step * mi / (root * inv_sqrt_bc2 + eps));
  }
  for (int64_t i = n8; i < n; ++i) {
    float gi = g[i];
    if (wd != 0.0f) gi += p[i] * wd;
    m[i] = m[i] * b1 + gi * a1;
    v[i] = v[i] * b2 + gi * gi * a2;
    p[i] -= step * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers: column sums, row fills, clamp

DMD_KERNEL_CLONES
void column_sum_impl(int64_t R, int64_t D, const float* x, float* out) {
  const int64_t D8 = D / kLanes * kLanes;
#pragma omp parallel for schedule(static) if (split_pays(D8 / kLanes, R * kLanes))
  for (int64_t c = 0; c < D8; c += kLanes) {
    v8f acc = splat(0.0f);
    for (int64_t r = 0; r < R; ++r) acc += load8(x + r * D + c);
    store8(out + c, acc);
  }
  for (int64_t c = D8; c < D; ++c) {
    float acc = 0.0f;
    for (int64_t r = 0; r < R; ++r) acc += x[r * D + c];
    out[c] = acc;
  }
}

DMD_KERNEL_CLONES
void clamp_impl(int64_t n, float lo, float hi, float* x) {
#pragma omp parallel for schedule(static) if (split_pays(n, 1))
  for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(x[i], lo), hi);
}

}  // namespace

void column_sum(int64_t R, int64_t D, const float* x, float* out) { column_sum_impl(R, D, x, out); }

void fill_rows(int64_t R, int64_t D, const float* row, float* out) {
  if (R <= 0 || D <= 0) return;
  std::memcpy(out, row, sizeof(float) * static_cast<size_t>(D));
  // The rows filled so far are copied after themselves: log2(R) copies instead of one per row (a linear
  // layer's bias fill took hundreds of thousands of 200-byte copies per training step).
  for (int64_t done = 1; done < R;) {
    const int64_t n = std::min(done, R - done);
    std::memcpy(out + done * D, out, sizeof(float) * static_cast<size_t>(n * D));
    done += n;
  }
}

void clamp(int64_t n, float lo, float hi, float* x) { clamp_impl(n, lo, hi, x); }

void adam_update(const AdamStep& s, int64_t n, float* p, const float* g, float* m, float* v) {
  adam_update_impl(s, n, p, g, m, v);
}

int64_t probs_size(const AttentionProblem& pb) {
  const Dims m = dims_of(pb);
  return m.N * m.H * m.blocks * (pb.recompute ? 2 : m.S) * kLanes;
}

bool recompute_pays(const AttentionProblem& pb) {
  const Dims m = dims_of(pb);
  return m.N * m.H * m.blocks * m.S * kLanes * static_cast<int64_t>(sizeof(float)) > kSavedProbsLimitBytes;
}

void attention_forward(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, float* out,
                       float* probs) {
  if (wide(pb))
    forward_impl_wide(pb, q, k, v, out, probs);
  else
    forward_impl(pb, q, k, v, out, probs);
}

void attention_backward(const AttentionProblem& pb, SeqView q, SeqView k, SeqView v, SeqView grad_out,
                        const float* probs, float* grad_q, float* grad_k, float* grad_v) {
  if (wide(pb))
    backward_impl_wide(pb, q, k, v, grad_out, probs, grad_q, grad_k, grad_v);
  else
    backward_impl(pb, q, k, v, grad_out, probs, grad_q, grad_k, grad_v);
}

bool attention_wide_rows() {
  return DMD_X86_GCC && cpu::has_avx512() && g_wide_rows.load();
}

void set_attention_wide_rows(bool on) {
  g_wide_rows = on;
}

void layer_norm_forward(int64_t R, int64_t D, const float* x, const float* gamma, const float* beta,
                        float eps, float* y, float* mean, float* rstd) {
  layer_norm_forward_impl(R, D, x, gamma, beta, eps, y, mean, rstd);
}

void layer_norm_backward(int64_t R, int64_t D, const float* x, const float* gamma, const float* mean,
                         const float* rstd, const float* dy, float* dx, float* dgamma, float* dbeta) {
  if (split_pays(R, 8 * D))
    layer_norm_backward_split(R, D, x, gamma, mean, rstd, dy, dx, dgamma, dbeta);
  else
    layer_norm_backward_impl(R, D, x, gamma, mean, rstd, dy, dx, dgamma, dbeta);
}

void dropout_mask(int64_t n, float p, uint64_t seed, float* out) {
  dropout_impl(n, p, seed, nullptr, out);
}

void dropout_multiply(int64_t n, float p, uint64_t seed, const float* x, float* out) {
  dropout_impl(n, p, seed, x, out);
}

bool attention_dropout_keep(const AttentionProblem& pb, int64_t b, int64_t i, int64_t j) {
  const DropoutRule r = dropout_rule(pb);
  if (!r.active) return true;
  if (r.drop_all) return false;
  return keep_element(r, static_cast<uint32_t>((b * pb.tgt_len + i) * pb.src_len + j));
}

void on_threads(int threads, const std::function<void(int)>& work) {
#pragma omp parallel num_threads(threads)
  work(omp_get_thread_num());
}

}  // namespace dmdbench::models::kernels
