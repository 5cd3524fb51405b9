// Fast CPU paths for linear, LayerNorm and dropout (see ops.h).
#include "models/ops.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "models/compat.h"
#include "models/gemm.h"
#include "models/kernels.h"

namespace dmdbench::models::ops {

using torch::Tensor;

namespace {

// The fused float32 kernels apply; not under CPU autocast, where LibTorch's own ops do the casting.
bool cpu_float(const Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat && !compat::autocast_enabled(c10::DeviceType::CPU);
}

// Whether an op on these inputs records a gradient: otherwise the fast paths skip the autograd node (and the
// context it fills) and run the same computation.
bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!torch::GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

// LayerNorm over the last dim with the fused kernel: y, and the contiguous x and each row's mean and rstd
// that the backward needs.
struct LayerNormForward {
  Tensor x, y, mean, rstd;
};
LayerNormForward layer_norm_rows(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  LayerNormForward f;
  f.x = x.contiguous();
  const Tensor w = weight.contiguous(), b = bias.contiguous();
  const int64_t D = f.x.size(-1), R = D > 0 ? f.x.numel() / D : 0;
  f.y = torch::empty_like(f.x);
  f.mean = torch::empty({R}, f.x.options());
  f.rstd = torch::empty({R}, f.x.options());
  kernels::layer_norm_forward(R, D, compat::const_float_ptr(f.x), compat::const_float_ptr(w),
                              compat::const_float_ptr(b), static_cast<float>(eps), f.y.data_ptr<float>(),
                              f.mean.data_ptr<float>(), f.rstd.data_ptr<float>());
  return f;
}

// y = LayerNorm(x) as one autograd node; saves x, mean and rstd for the backward.
struct LayerNormFunction : public torch::autograd::Function<LayerNormFunction> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& weight,
                        const Tensor& bias, double eps) {
    const LayerNormForward f = layer_norm_rows(x, weight, bias, eps);
    ctx->save_for_backward({f.x, weight.contiguous(), f.mean, f.rstd});
    return f.y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    const Tensor dy = grads[0].contiguous();
    const int64_t D = x.size(-1), R = D > 0 ? x.numel() / D : 0;
    Tensor dx = torch::empty_like(x), dw = torch::empty_like(w), db = torch::empty_like(w);
    kernels::layer_norm_backward(R, D, compat::const_float_ptr(x), compat::const_float_ptr(w),
                                 compat::const_float_ptr(mean), compat::const_float_ptr(rstd),
                                 compat::const_float_ptr(dy), dx.data_ptr<float>(), dw.data_ptr<float>(),
                                 db.data_ptr<float>());
    return {dx, dw, db, Tensor()};
  }
};

}  // namespace

namespace {

// out[n,t,:] = sum_j y[n, t+j, j*out:(j+1)*out] for t < T-k+1, as one autograd node (the k narrow views would
// each allocate a full-size zero gradient in the backward).
struct ShiftedBlockSum : public torch::autograd::Function<ShiftedBlockSum> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& y, int64_t k, int64_t out) {
    const int64_t T = y.size(1), Tp = T - k + 1;
    ctx->saved_data["T"] = T;
    ctx->saved_data["k"] = k;
    Tensor acc = y.narrow(1, 0, Tp).narrow(2, 0, out).clone(at::MemoryFormat::Contiguous);
    for (int64_t j = 1; j < k; ++j) acc.add_(y.narrow(1, j, Tp).narrow(2, j * out, out));
    return acc;  // [N,T',out]
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const Tensor& g = grads[0];  // [N,T',out]
    const int64_t T = ctx->saved_data["T"].toInt(), k = ctx->saved_data["k"].toInt();
    const int64_t N = g.size(0), Tp = g.size(1), out = g.size(2);
    Tensor gy = torch::zeros({N, T, k * out}, g.options());
    for (int64_t j = 0; j < k; ++j) gy.narrow(1, j, Tp).narrow(2, j * out, out).copy_(g);
    return {gy, Tensor(), Tensor()};
  }
};

// Conv1d(in -> out, kernel k, no bias) applied to a batch-first sequence x [N,T,in], giving [N,T-k+1,out]
// (time-major). One GEMM [N*T, in] x [in, k*out] and the sum of k shifted blocks.
}  // namespace

Tensor temporal_conv(const Tensor& x, const Tensor& weight) {
  const int64_t N = x.size(0), T = x.size(1), in = x.size(2), out = weight.size(0), k = weight.size(2);
  TORCH_CHECK(weight.size(1) == in, "conv expects ", weight.size(1), " input features, got ", in);
  TORCH_CHECK(T >= k, "sequence of length ", T, " is shorter than the conv kernel ", k);
  if (k == 1) return ops::linear(x, weight.squeeze(2));                     // [N,T,out]
  Tensor w = weight.permute({2, 0, 1}).reshape({k * out, in});              // block j = W[:,:,j]
  Tensor y = ops::linear(x.reshape({N * T, in}), w).view({N, T, k * out});  // [N,T,k*out]
  return ShiftedBlockSum::apply(y, k, out);                                 // [N,T',out]
}

namespace {

// The BLAS's sgemm_ that LibTorch's own mm calls, looked up in the process's global scope (the same symbol
// LibTorch's reference resolves to, so the same function and the same bits); null where there is none (a
// LibTorch with MKL linked in), and then linear takes LibTorch's ops.
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                       const float*, const int*, const float*, const int*, const float*, float*, const int*);
Sgemm blas_sgemm() {
  static const Sgemm fn = reinterpret_cast<Sgemm>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return fn;
}

using gemm::Operand;  // row-major: data, leading dimension (elements), transposed (op(A) = A^T)

// The operand's matrix as a tensor (for the profiler's record only).
Tensor operand_tensor(const Operand& a, int64_t rows, int64_t cols) {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat);
  float* p = const_cast<float*>(a.data);
  return a.trans ? torch::from_blob(p, {cols, rows}, {a.ld, 1}, opts).t()
                 : torch::from_blob(p, {rows, cols}, {a.ld, 1}, opts);
}

// Row-major C[M,N] (ldc = N) = op(A)[M,K] op(B)[K,N] + beta C with the very sgemm_ call LibTorch's
// addmm_impl_cpu_ makes for a contiguous C and these operands when M, N, K >= 2 (it computes the column-major
// C^T = op(B)^T op(A)^T).
void blas_gemm(int64_t M, int64_t N, int64_t K, const Operand& a, const Operand& b, float beta, float* c) {
  const char ta = a.trans ? 'T' : 'N', tb = b.trans ? 'T' : 'N';
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const int lda = static_cast<int>(a.ld), ldb = static_cast<int>(b.ld), ldc = static_cast<int>(N);
  const float alpha = 1.0f;
  blas_sgemm()(&tb, &ta, &m, &n, &k, &alpha, b.data, &ldb, a.data, &lda, &beta, c, &ldc);
}

// The BLAS's own thread count (OpenBLAS's pool, which set_threads sizes with LibTorch's); 0 where the BLAS
// does not say (not OpenBLAS).
int blas_threads() {
  using Get = int (*)();
  static const Get fn = reinterpret_cast<Get>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return fn != nullptr ? fn() : 0;
}

// gemm::multiply takes the products above kBlasSmallProduct multiply-adds, on one thread only those up to
// kBlasLargeProduct. Above it the BLAS's packing pays for itself on one thread. Measured alternately on the
// step's shapes (each product alone, 7 rounds, best of each): gemm::multiply (long k in L1-sized pieces) is
// 1.0-1.3x the BLAS from 736 x 50 x 50 to 736 x 300 x 100, 0.92-1.07x at 736 x 400 x 100 and 736 x 100 x 400
// (29M), 0.8-0.9x at 800 x 250 x 768 (154M, the text projection). On more threads the BLAS has one
// (set_threads) and the kernel splits the rows over LibTorch's pool.
//
// At most kBlasSmallProduct (M*N*K <= 100^3), OpenBLAS's SkylakeX build runs its small-matrix kernels, which
// sum over all of k at once (no blocks) but lane-parallel over k where A is not transposed and k >= 32. The
// products from kBlasSmallFloor up to kBlasSmallProduct whose A is transposed or whose k is under
// kSmallProductMaxK take gemm::multiply too, in one block of k, where it gives the BLAS's bits on such
// products (KernelChoice::small; on a BLAS without small kernels the regular blocks are tried). Smaller ones
// stay with the BLAS (the kernel's fixed costs); 736 x 30 x 30 (MOSEI's linears) runs at 1.6x the BLAS.
constexpr int64_t kBlasSmallProduct = int64_t{100} * 100 * 100;
constexpr int64_t kBlasSmallFloor = int64_t{1} << 17;
constexpr int64_t kSmallProductMaxK = 31;
constexpr int64_t kBlasLargeProduct = int64_t{1} << 25;

// Whether gemm::multiply gives this BLAS's bits, and with which blocks of k: decided once, at the first
// set_threads, large product or products_kernel(), with the BLAS on one thread, by multiplying random
// matrices both ways in each layout the linears use (forward N,T; dx N,N; dW T,N), with tails, strides, beta
// 0 and 1, and k long enough to be cut. The blocks are found among OpenBLAS's (q, unroll) pairs on products
// of several k; no match anywhere means the BLAS sums in another order (another BLAS, another OpenBLAS
// kernel), and every product stays with it. Only OpenBLAS's one-thread driver is matched (its threaded driver
// cuts k otherwise: half of the rest rounded up to 1, not to the unroll); set_threads keeps the BLAS on one
// thread where the kernel is chosen.
struct KernelChoice {
  gemm::Isa isa = gemm::Isa::none;
  gemm::KBlocks kb;
  std::optional<gemm::KBlocks> small;  // the blocks for the small products gemm::multiply takes; none: BLAS
};

struct Problem {
  int64_t M, N, K;
  bool ta, tb;
  float beta;
  int64_t pad;  // extra leading-dimension elements of A
};

// A product of random operands (from `rng`) and the BLAS's C for it, to hold gemm::multiply against.
class Trial {
 public:
  Trial(const Problem& pb, std::mt19937& rng) : pb_(pb) {
    std::normal_distribution<float> normal;
    const int64_t a_rows = pb.ta ? pb.K : pb.M, b_rows = pb.tb ? pb.N : pb.K;
    a_ld_ = (pb.ta ? pb.M : pb.K) + pb.pad;
    b_ld_ = pb.tb ? pb.K : pb.N;
    a_.resize(static_cast<size_t>(a_rows * a_ld_));
    b_.resize(static_cast<size_t>(b_rows * b_ld_));
    c0_.resize(static_cast<size_t>(pb.M * pb.N));
    for (float& x : a_) x = normal(rng);
    for (float& x : b_) x = normal(rng);
    for (float& x : c0_) x = normal(rng);
    blas_ = c0_;
    blas_gemm(pb.M, pb.N, pb.K, a(), b(), pb.beta, blas_.data());
  }
  // Whether multiply(isa, kb) gives the BLAS's C bit for bit.
  bool matches(gemm::Isa isa, gemm::KBlocks kb) const {
    std::vector<float> ours = c0_;
    gemm::multiply(isa, pb_.M, pb_.N, pb_.K, a(), b(), pb_.beta, ours.data(), pb_.N, kb);
    return std::memcmp(ours.data(), blas_.data(), ours.size() * sizeof(float)) == 0;
  }
  int64_t k() const { return pb_.K; }

 private:
  Operand a() const { return {a_.data(), a_ld_, pb_.ta}; }
  Operand b() const { return {b_.data(), b_ld_, pb_.tb}; }
  Problem pb_;
  int64_t a_ld_ = 0, b_ld_ = 0;
  std::vector<float> a_, b_, c0_, blas_;
};

// Sizes OpenBLAS's pool (LibTorch does not: the pthread build reads OPENBLAS_NUM_THREADS at load time);
// nothing where the BLAS is not OpenBLAS.
void set_blas_threads(int threads) {
  using Set = void (*)(int);
  static const Set fn = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (fn != nullptr) fn(threads);
}

KernelChoice choose_kernel() {
  const gemm::Isa isa = gemm::best_isa();
  if (isa == gemm::Isa::none || blas_sgemm() == nullptr || blas_threads() == 0) return {};
  const BlasThreads one(1);  // its one-thread driver is the one matched
  std::mt19937 rng(20231);  // fixed: the choice does not depend on (or draw from) the run's seed
  // dW's layout with k = 3000, 1000 and 1234 (several cuts each) picks the blocks; q = 0 (no cut) first.
  const std::vector<int64_t> qs = {0,   128, 160, 192, 224, 240, 256, 288, 320, 352, 384,
                                   416, 448, 480, 512, 576, 640, 704, 768, 896, 1024};
  const std::vector<int64_t> unrolls = {1, 2, 4, 8, 16, 24, 32, 48, 64};
  std::vector<Trial> picks;
  for (const Problem& pb :
       {Problem{24, 24, 3000, true, false, 0.0f, 0}, Problem{32, 40, 1000, true, false, 1.0f, 0},
        Problem{40, 24, 1234, true, false, 0.0f, 0}})
    picks.emplace_back(pb, rng);
  std::optional<gemm::KBlocks> found;
  std::vector<std::vector<int64_t>> tried;  // the cuts of the picks' k already ruled out
  for (int64_t q : qs) {
    for (int64_t u : unrolls) {
      const gemm::KBlocks kb{q, u};
      std::vector<int64_t> cuts;
      for (const Trial& t : picks) {
        const std::vector<int64_t> len = gemm::block_lengths(t.k(), kb);
        cuts.insert(cuts.end(), len.begin(), len.end());
        cuts.push_back(-1);
      }
      if (std::find(tried.begin(), tried.end(), cuts) != tried.end()) continue;
      tried.push_back(cuts);
      if (std::all_of(picks.begin(), picks.end(), [&](const Trial& t) { return t.matches(isa, kb); })) {
        found = kb;
        break;
      }
      if (q == 0) break;  // one block is one candidate, whatever the unroll
    }
    if (found) break;
  }
  if (!found) return {};
  // Every layout, beta 0 and 1, column tails, row tails, a strided A, k cut and uncut.
  for (const Problem& pb :
       {Problem{736, 50, 50, false, true, 1.0f, 0}, Problem{736, 150, 50, false, true, 0.0f, 0},
        Problem{101, 37, 300, false, true, 1.0f, 7}, Problem{736, 50, 150, false, false, 0.0f, 0},
        Problem{300, 64, 1000, false, false, 1.0f, 3}, Problem{50, 150, 736, true, false, 0.0f, 0},
        Problem{61, 23, 2944, true, false, 1.0f, 5}, Problem{133, 71, 2000, false, true, 0.0f, 0}})
    if (!Trial(pb, rng).matches(isa, *found)) return {};
  KernelChoice choice{isa, *found, std::nullopt};
  // The small products gemm::multiply may take (see kBlasSmallProduct): every layout with k under
  // kSmallProductMaxK, A transposed with k long (cut by the regular blocks, not by the small kernels), beta 0
  // and 1, tails and a strided A. One block first (OpenBLAS's small kernels), then the regular blocks.
  std::vector<Trial> small;
  for (const Problem& pb :
       {Problem{736, 30, 30, false, true, 1.0f, 0}, Problem{211, 45, 17, false, false, 0.0f, 3},
        Problem{37, 29, 31, false, true, 0.0f, 0}, Problem{120, 64, 31, true, true, 1.0f, 0},
        Problem{30, 30, 736, true, false, 0.0f, 0}, Problem{13, 37, 1000, true, false, 1.0f, 5},
        Problem{45, 61, 250, true, false, 0.0f, 0}, Problem{400, 30, 30, false, false, 1.0f, 0}})
    small.emplace_back(pb, rng);
  for (const gemm::KBlocks kb : {gemm::KBlocks{}, *found}) {
    if (std::all_of(small.begin(), small.end(), [&](const Trial& t) { return t.matches(isa, kb); })) {
      choice.small = kb;
      break;
    }
  }
  return choice;
}

const KernelChoice& kernel_choice() {
  static const KernelChoice choice = choose_kernel();
  return choice;
}

// C = op(A) op(B) + beta C (row-major, ldc = N), LibTorch's one-thread bits: gemm::multiply where it gives
// the BLAS's bits (products above kBlasSmallProduct, beta 0 or 1, the BLAS on one thread), else the BLAS.
// Recorded for the profiler as "dmdbench::mm" (mat1 [M,K], mat2 [K,N]).
void product(int64_t M, int64_t N, int64_t K, const Operand& a, const Operand& b, float beta, float* c) {
  RECORD_FUNCTION("dmdbench::mm", std::vector<c10::IValue>{operand_tensor(a, M, K), operand_tensor(b, K, N)});
  const int64_t size = M * N * K;
  // Split over threads only outside a parallel region (inside a job of jobs.h it runs on one thread).
  const bool split = at::get_num_threads() > 1 && !at::in_parallel_region();
  const bool small = size <= kBlasSmallProduct;
  if ((small ? size >= kBlasSmallFloor && (a.trans || K <= kSmallProductMaxK)
             : size <= kBlasLargeProduct || split) &&
      (beta == 0.0f || beta == 1.0f) && blas_threads() == 1) {
    const KernelChoice& kc = kernel_choice();
    if (kc.isa != gemm::Isa::none && (!small || kc.small)) {
      gemm::multiply(kc.isa, M, N, K, a, b, beta, c, N, small ? *kc.small : kc.kb);
      return;
    }
  }
  blas_gemm(M, N, K, a, b, beta, c);
}

// Whether x2 [R,in] and the weight's block of rows take product(): a BLAS at hand, every dimension at least 2
// (LibTorch passes other arguments for vectors), a contiguous weight, rows of x2 contiguous, dimensions and
// leading dimensions within the BLAS's int (in <= x2.stride(0)).
bool direct_gemm(const Tensor& x2, const Tensor& weight, int64_t rows) {
  const int64_t R = x2.size(0), in = x2.size(1), limit = std::numeric_limits<int>::max();
  return blas_sgemm() != nullptr && R >= 2 && in >= 2 && rows >= 2 && weight.is_contiguous() &&
         x2.stride(1) == 1 && x2.stride(0) >= in && R <= limit && rows <= limit && x2.stride(0) <= limit;
}

// y [R,rows] = [relu](x2 W[r0:r0+rows]^T + b[r0:r0+rows]) for x2 [R,in] (bias empty: none).
Tensor linear_rows(const Tensor& x2, const Tensor& weight, const Tensor& bias, int64_t row0, int64_t rows,
                   bool relu) {
  const int64_t R = x2.size(0), in = x2.size(1);
  const bool has_bias = bias.numel() > 0;
  Tensor y = torch::empty({R, rows}, x2.options());  // [R,rows]
  // With a bias, addmm(b, x2, w^T) would copy the broadcast bias with a slow strided copy; the rows are
  // filled directly and the same product runs with beta = 1 in place (identical result).
  if (has_bias) {
    const Tensor b = bias.contiguous();
    kernels::fill_rows(R, rows, compat::const_float_ptr(b) + row0, y.data_ptr<float>());
  }
  if (direct_gemm(x2, weight, rows)) {  // [R,in] x [in,rows]
    product(R, rows, in, {compat::const_float_ptr(x2), x2.stride(0), false},
            {compat::const_float_ptr(weight) + row0 * in, in, true}, has_bias ? 1.0f : 0.0f,
            y.data_ptr<float>());
  } else {
    const Tensor w = weight.narrow(0, row0, rows);
    if (has_bias)
      y.addmm_(x2, w.t());
    else
      torch::mm_out(y, x2, w.t());
  }
  if (relu) y.relu_();
  return y;
}

// x's sizes with the last one replaced by `last`.
std::vector<int64_t> with_last(const Tensor& x, int64_t last) {
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes.back() = last;
  return sizes;
}

// linear_rows over x viewed as [R, in], viewed back to x's leading dims; one autograd node.
struct LinearFunction : public torch::autograd::Function<LinearFunction> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& weight,
                        const Tensor& bias, int64_t row0, int64_t rows, bool relu) {
    const Tensor x2 = x.reshape({-1, x.size(-1)});
    const bool has_bias = bias.numel() > 0;  // an empty tensor stands for "no bias" (inputs must be defined)
    const Tensor y = linear_rows(x2, weight, bias, row0, rows, relu);
    ctx->saved_data["row0"] = row0;
    ctx->saved_data["relu"] = relu;
    ctx->saved_data["bias"] = has_bias;
    ctx->saved_data["x_sizes"] = x.sizes();
    ctx->save_for_backward({x2, weight, relu ? y : Tensor()});
    return y.view(with_last(x, rows));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &x2 = saved[0], &weight = saved[1], &y = saved[2];
    const int64_t row0 = ctx->saved_data["row0"].toInt();
    const bool relu = ctx->saved_data["relu"].toBool(), has_bias = ctx->saved_data["bias"].toBool();
    const int64_t rows = y.defined() ? y.size(1) : grads[0].size(-1);
    Tensor g = grads[0].reshape({-1, rows});
    if (relu) g = torch::threshold_backward(g, y, 0);
    const int64_t R = x2.size(0), in = x2.size(1);
    const bool whole = rows == weight.size(0);
    const bool direct = direct_gemm(x2, weight, rows) && g.stride(1) == 1 && g.stride(0) >= rows &&
                        g.stride(0) <= std::numeric_limits<int>::max();
    const Operand go{direct ? compat::const_float_ptr(g) : nullptr, g.stride(0), false};
    Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) {
      if (direct) {  // [R,rows] x [rows,in]
        dx = torch::empty(ctx->saved_data["x_sizes"].toIntVector(), x2.options());
        product(R, in, rows, go, {compat::const_float_ptr(weight) + row0 * in, in, false}, 0.0f,
                dx.data_ptr<float>());
      } else {
        dx = g.mm(weight.narrow(0, row0, rows)).view(ctx->saved_data["x_sizes"].toIntVector());
      }
    }
    if (ctx->needs_input_grad(1)) {
      if (direct) {  // [rows,R] x [R,in] into the block's rows
        dw = whole ? torch::empty_like(weight) : torch::zeros_like(weight);
        product(rows, in, R, {go.data, go.ld, true}, {compat::const_float_ptr(x2), x2.stride(0), false}, 0.0f,
                dw.data_ptr<float>() + row0 * in);
      } else {
        const Tensor block = g.t().mm(x2);
        if (whole) {
          dw = block;
        } else {
          dw = torch::zeros_like(weight);
          dw.narrow(0, row0, rows).copy_(block);
        }
      }
    }
    if (has_bias && ctx->needs_input_grad(2)) {
      const Tensor gc = g.contiguous();
      db = whole ? torch::empty({rows}, g.options()) : torch::zeros({weight.size(0)}, g.options());
      kernels::column_sum(gc.size(0), rows, compat::const_float_ptr(gc), db.data_ptr<float>() + (whole ? 0 : row0));
    }
    return {dx, dw, db, Tensor(), Tensor(), Tensor()};
  }
};

Tensor linear_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t row0, int64_t rows,
                   bool relu) {
  if (rows < 0) rows = weight.size(0) - row0;
  if (cpu_float(x) && cpu_float(weight) && (!bias.defined() || cpu_float(bias))) {
    const Tensor b = bias.defined() ? bias : torch::empty({0}, weight.options());
    if (!needs_grad({x, weight, b}))  // evaluation: no autograd context to fill
      return linear_rows(x.reshape({-1, x.size(-1)}), weight, b, row0, rows, relu).view(with_last(x, rows));
    return LinearFunction::apply(x, weight, b, row0, rows, relu);
  }
  const Tensor w = weight.narrow(0, row0, rows);
  Tensor y = torch::nn::functional::linear(x, w, bias.defined() ? bias.narrow(0, row0, rows) : Tensor());
  return relu ? torch::relu(y) : y;
}

}  // namespace

void set_threads(int threads) {
  torch::set_num_threads(threads);
  set_blas_threads(products_follow_threads() ? 1 : threads);
}

BlasThreads::BlasThreads(int threads) : was_(blas_threads()) {
  set_blas_threads(threads);
}

BlasThreads::~BlasThreads() {
  if (was_ > 0) set_blas_threads(was_);
}

bool products_follow_threads() {
  return kernel_choice().isa != gemm::Isa::none;
}

std::string products_kernel() {
  const KernelChoice& kc = kernel_choice();
  if (kc.isa == gemm::Isa::none) return "BLAS sgemm";
  auto blocks = [](const gemm::KBlocks& kb) {
    return kb.q == 0 ? std::string("none") : std::to_string(kb.q) + "/" + std::to_string(kb.unroll);
  };
  return std::string(gemm::isa_name(kc.isa)) + " kernel, k blocks " + blocks(kc.kb) +
         (kc.small ? ", small products (k blocks " + blocks(*kc.small) + ")"
                   : ", small products on the BLAS");
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t row0, int64_t rows) {
  return linear_impl(x, weight, bias, row0, rows, false);
}

Tensor linear_relu(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return linear_impl(x, weight, bias, 0, -1, true);
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  if (!cpu_float(x) || !cpu_float(weight) || !bias.defined() || !cpu_float(bias)) {
    // Under autocast x may arrive in bf16: LayerNorm runs in the parameters' precision (autocast's fp32 list).
    const Tensor xw = x.scalar_type() == weight.scalar_type() ? x : x.to(weight.scalar_type());
    return torch::layer_norm(xw, {x.size(-1)}, weight, bias, eps);
  }
  if (!needs_grad({x, weight, bias})) return layer_norm_rows(x, weight, bias, eps).y;  // evaluation
  return LayerNormFunction::apply(x, weight, bias, eps);
}

namespace {

// y = x * m, m_i = 1/(1-p) for kept elements and 0 for dropped ones (kernels::dropout_multiply: a
// counter-based hash of (seed, i)); the backward multiplies the gradient by the same m, regenerated from the
// seed, so no mask is stored. The same values as x * dropout_mask.
struct DropoutFunction : public torch::autograd::Function<DropoutFunction> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, double p, int64_t seed) {
    const Tensor xc = x.contiguous();
    Tensor y = torch::empty_like(xc);
    kernels::dropout_multiply(xc.numel(), static_cast<float>(p), static_cast<uint64_t>(seed),
                              compat::const_float_ptr(xc), y.data_ptr<float>());
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const Tensor g = grads[0].contiguous();
    Tensor dx = torch::empty_like(g);
    kernels::dropout_multiply(g.numel(), static_cast<float>(ctx->saved_data["p"].toDouble()),
                              static_cast<uint64_t>(ctx->saved_data["seed"].toInt()),
                              compat::const_float_ptr(g), dx.data_ptr<float>());
    return {dx, Tensor(), Tensor()};
  }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  if (!cpu_float(x)) return torch::dropout(x, p, /*train=*/true);
  return DropoutFunction::apply(x, p, static_cast<int64_t>(compat::draw_seed()));
}

}  // namespace dmdbench::models::ops
