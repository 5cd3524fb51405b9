// FLOPs and time of a forward pass and a training step, from LibTorch's (legacy) profiler.
#include <torch/torch.h>

#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define DMDBENCH_HAVE_LEGACY_PROFILER 1
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ablations/variants.h"
#include "bench/bench.h"
#include "bench/fixtures.h"
#include "harness/training/step.h"
#include "harness/training/trainable.h"
#include "models/bert.h"

namespace dmdbench::bench {
namespace {

#ifdef DMDBENCH_HAVE_LEGACY_PROFILER
namespace prof = torch::autograd::profiler;

// FLOPs of one profiled matrix product; LibTorch counts none for the in-place addmm_ (inputs self [M,N], mat1
// [M,K], mat2 [K,N]) nor for ops::linear's direct BLAS products ("dmdbench::mm", inputs mat1 [M,K], mat2
// [K,N]).
double product_flops(const prof::LegacyEvent& ev) {
  static const std::set<std::string> counted = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"};
  if (counted.count(ev.name())) return static_cast<double>(const_cast<prof::LegacyEvent&>(ev).flops());
  const std::string name = ev.name();
  if (name != "aten::addmm_" && name != "dmdbench::mm") return 0;
  const std::size_t mat1 = name == "aten::addmm_" ? 1 : 0;  // the [M,K] input's position
  const auto& sh = ev.shapes();
  if (sh.size() < mat1 + 2 || sh[mat1].size() != 2 || sh[mat1 + 1].size() != 2) return 0;
  return 2.0 * static_cast<double>(sh[mat1][0]) * static_cast<double>(sh[mat1][1]) *
         static_cast<double>(sh[mat1 + 1][1]);
}
bool is_product(const std::string& name) {
  return name == "aten::mm" || name == "aten::addmm" || name == "aten::addmm_" || name == "aten::bmm" ||
         name == "aten::baddbmm" || name == "dmdbench::mm";
}

// The fused attention's products (models/transformer.cpp records "dmdbench::attention[_band][_backward]" with
// q [T,N,d] and k [S,N,d]): q.k^T and p.v over the visible (query, key) pairs, 2 FLOPs per multiply-add; the
// backward's four products (dp, dv, dq, dk) twice that. The backward's recomputed scores are not counted
// (work the step does not need).
double attention_flops(const prof::LegacyEvent& ev) {
  const std::string name = ev.name();
  if (name.rfind("dmdbench::attention", 0) != 0) return 0;
  const auto& sh = ev.shapes();
  if (sh.size() < 2 || sh[0].size() != 3 || sh[1].size() != 3) return 0;
  const int64_t T = sh[0][0], N = sh[0][1], d = sh[0][2], S = sh[1][0];
  double pairs = static_cast<double>(T) * static_cast<double>(S);
  if (name.find("_band") != std::string::npos) {  // key j visible to query i iff j < i + 1 + |S - T|
    pairs = 0;
    for (int64_t i = 0; i < T; ++i) pairs += static_cast<double>(std::min(S, i + 1 + std::abs(S - T)));
  }
  const double forward = 4.0 * pairs * static_cast<double>(N) * static_cast<double>(d);
  return name.find("_backward") != std::string::npos ? 2 * forward : forward;
}

// Runs fn under the profiler (input shapes, FLOPs) and sums what it needs: matrix products and attention
// FLOPs, the time inside the products, and every op's self time (its time less its nested ops').
template <typename Fn>
StepProfile profiled(Fn&& fn) {
  prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU,
                                                                    /*report_input_shapes=*/true,
                                                                    /*profile_memory=*/false, /*with_stack=*/false,
                                                                    /*with_flops=*/true));
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  const double wall_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  const auto lists = prof::disableProfilerLegacy();
  StepProfile p;
  p.wall_ms = wall_us / 1e3;
  std::map<std::string, OpTime> ops;
  for (const auto& list : lists) {
    struct Open {
      const prof::LegacyEvent* push;
      double child_us = 0;
      bool inside_product;
      double flops;
    };
    std::vector<Open> stack;  // one thread's nesting
    for (const auto& ev : list) {
      if (ev.kind() == prof::EventKind::PushRange) {
        const bool inside = !stack.empty() && stack.back().inside_product;
        double flops = 0;
        if (!inside) {
          const double pf = product_flops(ev), af = attention_flops(ev);
          p.product_flops += pf;
          p.attention_flops += af;
          flops = pf + af;
        }
        stack.push_back({&ev, 0, inside || is_product(ev.name()), flops});
      } else if (ev.kind() == prof::EventKind::PopRange && !stack.empty()) {
        const Open top = stack.back();
        stack.pop_back();
        const double us = top.push->cpuElapsedUs(ev);
        OpTime& op = ops[top.push->name()];
        op.name = top.push->name();
        op.calls += 1;
        op.self_ms += (us - top.child_us) / 1e3;
        op.flops += top.flops;
        if (is_product(op.name) && (stack.empty() || !stack.back().inside_product)) p.product_ms += us / 1e3;
        if (!stack.empty()) stack.back().child_us += us;
      }
    }
  }
  for (auto& [name, op] : ops) p.ops.push_back(op);
  std::sort(p.ops.begin(), p.ops.end(),
            [](const OpTime& a, const OpTime& b) { return a.self_ms > b.self_ms; });
  return p;
}
#else
template <typename Fn>
StepProfile profiled(Fn&& fn) {
  fn();
  return {};  // this LibTorch has no legacy profiler: nothing counted
}
#endif

// The smaller product time of two profiled runs (the first after a warm-up run), so a preemption does not
// count as product time.
template <typename Fn>
StepProfile profiled_best_of_two(Fn&& fn) {
  fn();
  StepProfile a = profiled(fn), b = profiled(fn);
  return b.product_ms < a.product_ms ? b : a;
}

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
    c.forward = profiled([&] { model->forward(ids, mask, types); }).flops();
  }
  model->train(true);
  c.train_step =
      profiled([&] { model->forward(ids, mask, types).last_hidden_state.sum().backward(); }).flops();
  return c;
}

StepCount profile_step(const std::string& family, const std::string& variant, int64_t batch,
                       const BertFolder* bert) {
  const Config cfg = case_config(family, variant);
  FeatureDims d = case_dims(family);
  const bool text_model = uses_text_model(cfg);
  if (text_model) d.text_bert_len = d.text_len;
  torch::manual_seed(1);
  auto model = build_trainable(cfg, d, torch::kCPU, text_model ? bert : nullptr);
  Batch b = random_batch(d, batch, torch::kCPU);
  if (text_model) b.text_bert = random_text_bert(batch, d.text_len, bert->config.vocab, torch::kCPU);
  StepCount c;
  model->train(false);
  {
    torch::NoGradGuard no_grad;
    c.forward = profiled_best_of_two([&] { model->predict(b); });
  }
  model->train(true);
  TrainStep step(*model, cfg);
  c.train_step = profiled_best_of_two([&] { step.run(b, true, true); });
  return c;
}

}  // namespace dmdbench::bench
