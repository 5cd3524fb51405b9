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
#include "models/bert.h"

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

std::string case_family(const std::string& data) {
  const std::string suffix = "-unaligned";
  const bool unaligned =
      data.size() > suffix.size() && data.compare(data.size() - suffix.size(), suffix.size(), suffix) == 0;
  return unaligned ? data.substr(0, data.size() - suffix.size()) : data;
}

FeatureDims case_dims(const std::string& data) {
  const std::string family = case_family(data);
  return reference_dims(family, family == data ? "aligned" : "unaligned");
}

Config case_config(const std::string& data, const std::string& variant) {
  const std::string family = case_family(data);
  if (variant == "dmd-bert")
    return ablations::resolve_config(family, "dmd", "paper", {"text_encoder=bert-finetune"}, true);
  return ablations::resolve_config(family, variant, "paper", {"text_encoder=features"});
}

FlopCount count_bert_flops(const BertFolder& bert, int64_t batch, int64_t length) {
  torch::manual_seed(3);
  models::Bert model(bert.config);
  const torch::Tensor tb = random_text_bert(batch, length, bert.config.vocab, torch::kCPU);
  const torch::Tensor ids = tb.select(1, 0).to(torch::kLong), mask = tb.select(1, 1),
                      types = tb.select(1, 2).to(torch::kLong);
  FlopCount c;
  model->train(false);
  {
    torch::NoGradGuard no_grad;
    c.forward = profiled_flops([&] { model->forward(ids, mask, types); });
  }
  model->train(true);
  c.train_step = profiled_flops([&] { model->forward(ids, mask, types).last_hidden_state.sum().backward(); });
  return c;
}

FlopCount count_flops(const std::string& family, const std::string& variant, int64_t batch,
                      const BertFolder* bert) {
  const Config cfg = case_config(family, variant);
  FeatureDims d = case_dims(family);
  const bool text_model = uses_text_model(cfg);
  if (text_model) d.text_bert_len = d.text_len;
  torch::manual_seed(1);
  auto model = build_trainable(cfg, d, torch::kCPU, text_model ? bert : nullptr);
  Batch b = random_batch(d, batch, torch::kCPU);
  if (text_model) b.text_bert = random_text_bert(batch, d.text_len, bert->config.vocab, torch::kCPU);
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
