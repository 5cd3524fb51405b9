// The recipe's parts in isolation (spec §3.2, §3.4), against hand-derived sequences.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "ablations/variants.h"
#include "harness/experiment/dataset_spec.h"
#include "harness/experiment/plan.h"
#include "harness/training/recipe.h"

using namespace dmdbench;

namespace {
int64_t count_steps(int64_t batches, int64_t update_epochs, bool keep_partial) {
  GradientAccumulation acc(update_epochs, keep_partial);
  acc.start_epoch();
  int64_t steps = 0, zeros = 0;
  for (int64_t i = 0; i < batches; ++i) {
    zeros += acc.zero_before_batch();
    steps += acc.step_after_batch();
  }
  steps += acc.step_at_epoch_end();
  EXPECT_EQ(zeros, (batches + update_epochs - 1) / update_epochs);
  return steps;
}
}  // namespace

TEST(Recipe, AccumulationDiscardsTrailingPartialGroup) {
  EXPECT_EQ(count_steps(81, 10, false), 8);      // MOSI: 81 batches -> 8 steps, 1 batch wasted
  EXPECT_EQ(count_steps(1021, 10, false), 102);  // MOSEI
  EXPECT_EQ(count_steps(9, 10, false), 0);
  EXPECT_EQ(count_steps(81, 10, true), 9);       // the option keeps it
  EXPECT_EQ(count_steps(80, 10, true), 8);
  EXPECT_EQ(count_steps(17, 8, false), 2);       // MulT's 8
}

TEST(Recipe, AccumulationRestartsEachEpoch) {
  GradientAccumulation acc(10, false);
  acc.start_epoch();
  for (int i = 0; i < 5; ++i) acc.step_after_batch();
  acc.start_epoch();  // the leftover 5 are dropped, a new group begins
  EXPECT_TRUE(acc.zero_before_batch());
}

TEST(Recipe, ValueClippingClampsEveryElement) {
  auto p = torch::zeros({4}, torch::requires_grad());
  p.mutable_grad() = torch::tensor({-2.0f, -0.5f, 0.59f, 3.0f});
  clip_grad_value({p}, 0.6);
  EXPECT_TRUE(torch::allclose(p.grad(), torch::tensor({-0.6f, -0.5f, 0.59f, 0.6f})));
  EXPECT_NEAR(grad_l2_norm({p}), std::sqrt(0.36 + 0.25 + 0.59 * 0.59 + 0.36), 1e-6);
}

TEST(Recipe, ValueClippingKeepsNaNLikeClamp) {
  auto p = torch::zeros({3}, torch::requires_grad());
  p.mutable_grad() = torch::tensor({std::nanf(""), 1.0f, -1.0f});
  const torch::Tensor want = p.grad().clone().clamp_(-0.6, 0.6);
  clip_grad_value({p}, 0.6);
  EXPECT_TRUE(std::isnan(p.grad()[0].item<float>()));
  EXPECT_TRUE(torch::equal(p.grad().narrow(0, 1, 2), want.narrow(0, 1, 2)));
}

// GradientBuffers against optimizer.zero_grad(): the same gradients bit for bit, and a parameter that drops out of
// the graph gets zeros (so Adam still moves it by its momentum, as after zero_grad).
TEST(Recipe, GradientBuffersActLikeZeroGrad) {
  torch::manual_seed(2);
  const torch::Tensor a0 = torch::randn({5}), b0 = torch::randn({5}), x = torch::randn({5});
  auto run = [&](bool buffers) {
    torch::Tensor a = a0.clone().requires_grad_(), b = b0.clone().requires_grad_();
    torch::optim::Adam opt({a, b}, torch::optim::AdamOptions(0.1));
    GradientBuffers grads({a, b});
    std::vector<torch::Tensor> seen;
    for (int step = 0; step < 3; ++step) {
      if (buffers)
        grads.reset();
      else
        opt.zero_grad();
      torch::Tensor loss = step == 0 ? (a * x).sum() + (b * b).sum() : (a * a * x).sum();  // b only in step 0
      loss.backward();
      if (buffers) grads.after_backward();
      seen.push_back(torch::cat({a.grad(), b.grad()}));
      opt.step();
    }
    seen.push_back(torch::cat({a, b}).detach());
    return seen;
  };
  const auto want = run(false), got = run(true);
  ASSERT_EQ(want.size(), got.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(torch::equal(want[i], got[i])) << i;
  EXPECT_TRUE(torch::equal(got[1].narrow(0, 5, 5), torch::zeros({5})));  // b's gradient in step 1
}

TEST(Recipe, PlateauScheduleOnScriptedLosses) {
  // patience 2, factor 0.5, threshold 1e-4 rel: 1.0 best; 1.0, 0.99995 are not better (within threshold),
  // then a third bad epoch (> patience) halves the lr and resets the count.
  PlateauScheduler s(1e-3, 0.5, 2, 1e-4);
  EXPECT_DOUBLE_EQ(s.step(1.0), 1e-3);
  EXPECT_DOUBLE_EQ(s.step(1.0), 1e-3);      // bad 1
  EXPECT_DOUBLE_EQ(s.step(0.99995), 1e-3);  // bad 2 (improvement below the relative threshold)
  EXPECT_DOUBLE_EQ(s.step(1.2), 5e-4);      // bad 3 > patience -> reduce
  EXPECT_DOUBLE_EQ(s.step(0.9), 5e-4);      // better: resets
  EXPECT_DOUBLE_EQ(s.step(0.95), 5e-4);
  EXPECT_DOUBLE_EQ(s.step(0.95), 5e-4);
  EXPECT_DOUBLE_EQ(s.step(0.95), 2.5e-4);
}

TEST(Recipe, EarlyStoppingAndBestEpoch) {
  EarlyStopping es(3, 0);
  const double losses[] = {1.0, 0.9, 0.9, 0.8999995, 0.95, 0.91, 0.92};
  std::vector<bool> best;
  int64_t stopped_at = 0;
  for (int64_t e = 1; e <= 7; ++e) {
    best.push_back(es.update(e, losses[e - 1]));
    if (es.should_stop(e)) {
      stopped_at = e;
      break;
    }
  }
  // 0.9 == best is not an improvement of more than 1e-6; 0.8999995 neither.
  EXPECT_EQ(best, (std::vector<bool>{true, true, false, false, false}));
  EXPECT_EQ(es.best_epoch(), 2);
  EXPECT_EQ(stopped_at, 5);  // 5 - 2 >= 3
  EarlyStopping capped(10, 4);
  for (int64_t e = 1; e <= 3; ++e) {
    capped.update(e, 1.0 / e);
    EXPECT_FALSE(capped.should_stop(e));
  }
  EXPECT_TRUE(capped.should_stop(4));
}

TEST(Plan, StableIdsShardsAndSeeds) {
  auto resolved = [](std::vector<std::string> overrides) {
    std::vector<std::pair<std::string, Config>> v;
    for (const char* name : {"dmd", "mult"})
      v.emplace_back(name, ablations::resolve_config("mosi", name, "quick", overrides));
    return v;
  };
  PlanRequest req;
  req.variants = resolved({});
  req.seeds = {1111, 1112, 1113};
  req.code_version = "abc";
  const Plan a = make_plan(req), b = make_plan(req);
  ASSERT_EQ(a.runs.size(), 6u);
  EXPECT_EQ(a.experiment_id, b.experiment_id);
  for (std::size_t i = 0; i < a.runs.size(); ++i) EXPECT_EQ(a.runs[i].run_id, b.runs[i].run_id);
  EXPECT_EQ(a.runs[0].variant, "dmd");
  EXPECT_EQ(a.runs[3].variant, "mult");
  EXPECT_EQ(a.runs[4].seed, 1112);
  req.overrides = {"learning_rate=0.001"};
  req.variants = resolved(req.overrides);
  const Plan c = make_plan(req);
  EXPECT_NE(c.runs[0].run_id, a.runs[0].run_id);
  EXPECT_NE(c.experiment_id, a.experiment_id);

  const auto shard1 = shard_runs(a, parse_shard("1/4"));
  ASSERT_EQ(shard1.size(), 2u);
  EXPECT_EQ(shard1[0].index, 1);
  EXPECT_EQ(shard1[1].index, 5);
  EXPECT_THROW(parse_shard("4/4"), ConfigError);
  EXPECT_THROW(parse_shard("1/0"), ConfigError);
  EXPECT_THROW(parse_shard("x"), ConfigError);
  EXPECT_THROW(parse_shard("1/2/3"), ConfigError);
  EXPECT_EQ(parse_seed_list("5,7"), (std::vector<int64_t>{5, 7}));
  EXPECT_THROW(parse_seed_list("5,,7"), ConfigError);
  EXPECT_THROW(parse_seed_list("5,5"), ConfigError);
  EXPECT_THROW(parse_seed_list("-1"), ConfigError);
  EXPECT_EQ(parse_dataset_spec("synthetic-mosei").family, "mosei");
  EXPECT_EQ(parse_dataset_spec("mosi:/x/aligned_50.pkl").family, "mosi");
  EXPECT_EQ(parse_dataset_spec("mosi:/x/aligned_50.pkl").path, "/x/aligned_50.pkl");
  EXPECT_EQ(parse_dataset_spec("/data/MOSEI/aligned_50.pkl").family, "mosei");
  EXPECT_DOUBLE_EQ(parse_dataset_spec("synthetic-mosi@0.25").scale, 0.25);
  EXPECT_EQ(parse_dataset_spec("/data/aligned_50.pkl").family, "");  // guessed from the file when loaded
  EXPECT_THROW(parse_dataset_spec("/data/aligned_50.pkl").known_family(), ConfigError);
  EXPECT_THROW(parse_dataset_spec("synthetic-iemocap"), ConfigError);
  EXPECT_THROW(parse_dataset_spec("synthetic-mosi@0"), ConfigError);
  // The unaligned synthetic sets; a file's setting is detected when it is read.
  const DatasetSpec u = parse_dataset_spec("synthetic-mosei-unaligned@0.1");
  EXPECT_EQ(u.family, "mosei");
  EXPECT_EQ(u.setting, "unaligned");
  EXPECT_DOUBLE_EQ(u.scale, 0.1);
  EXPECT_EQ(parse_dataset_spec("synthetic-mosi").setting, "aligned");
  EXPECT_EQ(parse_dataset_spec("mosi:/x/unaligned_50.pkl").setting, "");
  EXPECT_THROW(parse_dataset_spec("synthetic-mosi-sideways"), ConfigError);
  EXPECT_THROW(parse_dataset_spec("synthetic--unaligned"), ConfigError);
}
