// Matrix-product FLOPs of a forward pass and a training step, counted by LibTorch's (legacy) profiler.
#include <torch/torch.h>

#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define DMDBENCH_HAVE_LEGACY_PROFILER 1
#endif

#include <set>
#include <string>

#include "ablations/variants.h"
#include "bench/bench.h"
#include "bench/fixtures.h"
#include "harness/training/trainable.h"

namespace dmdbench::bench {
namespace {

#ifdef DMDBENCH_HAVE_LEGACY_PROFILER
// Runs fn under the profiler with FLOP counting and sums the FLOPs of matrix products.
template <typename Fn>
double profiled_flops(Fn&& fn) {
  namespace prof = torch::autograd::profiler;
  prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU,
                                                                    /*report_input_shapes=*/true,
                                                                    /*profile_memory=*/false, /*with_stack=*/false,
                                                                    /*with_flops=*/true));
  fn();
  const auto lists = prof::disableProfilerLegacy();
  static const std::set<std::string> products = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"};
  double flops = 0;
  for (const auto& list : lists)
    for (const auto& ev : list) {
      if (products.count(ev.name())) {
        flops += static_cast<double>(const_cast<prof::LegacyEvent&>(ev).flops());
      } else if (ev.name() == std::string("aten::addmm_")) {
        // The in-place product (ops::linear's forward); LibTorch's profiler counts no FLOPs for it.
        // Inputs: self [M,N], mat1 [M,K], mat2 [K,N].
        const auto& sh = ev.shapes();
        if (sh.size() >= 3 && sh[1].size() == 2 && sh[2].size() == 2)
          flops += 2.0 * static_cast<double>(sh[1][0]) * static_cast<double>(sh[1][1]) * static_cast<double>(sh[2][1]);
      }
    }
  return flops;
}
#else
template <typename Fn>
double profiled_flops(Fn&& fn) {
  fn();
  return 0;  // this LibTorch has no legacy profiler; FLOPs are not counted
}
#endif

}  // namespace

FlopCount count_flops(const std::string& family, const std::string& variant, int64_t batch) {
  const Config cfg = ablations::resolve_config(family, variant, "paper", {});
  const FeatureDims d = reference_dims(family);
  torch::manual_seed(1);
  auto model = build_trainable(cfg, d, torch::kCPU);
  const Batch b = random_batch(d, batch, torch::kCPU);
  FlopCount c;
  model->train(false);
  {
    torch::NoGradGuard no_grad;
    c.forward = profiled_flops([&] { model->predict(b); });
  }
  model->train(true);
  c.train_step = profiled_flops([&] { model->loss(b).total.backward(); });
  return c;
}

}  // namespace dmdbench::bench
