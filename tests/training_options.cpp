// Execution options that are off by default: bf16 autocast (checked on the CPU against float32) and the CUDA-graph
// step (refused with one sentence where it cannot run).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ablations/variants.h"
#include "bench/fixtures.h"
#include "harness/training/cuda_graph.h"
#include "harness/data/dataset.h"
#include "harness/training/trainer.h"
#include "models/compat.h"
#include "tests/training_support.h"

using namespace dmdbench;

namespace {

const Dataset& tiny_mosi() { return testing_support::synthetic_mosi(0.02); }

}  // namespace

TEST(TrainingOptions, Bf16AutocastIsCloseToFloat32ButNotEqual) {
  torch::set_num_threads(1);
  const Config cfg = ablations::resolve_config("mosi", "dmd", "paper", {"text_encoder=features"});
  const FeatureDims dims = reference_dims("mosi");
  torch::manual_seed(3);
  auto model = build_trainable(cfg, dims, torch::kCPU);
  const Batch b = bench::random_batch(dims, 8, torch::kCPU);
  torch::NoGradGuard no_grad;
  model->train(false);
  const torch::Tensor fp32 = model->predict(b);
  torch::Tensor bf16;
  {
    models::compat::AutocastGuard autocast(c10::DeviceType::CPU, true);
    EXPECT_TRUE(models::compat::autocast_enabled(c10::DeviceType::CPU));
    bf16 = model->predict(b).to(torch::kFloat);
  }
  EXPECT_FALSE(models::compat::autocast_enabled(c10::DeviceType::CPU));
  const double scale = fp32.abs().max().item<double>() + 1.0;
  const double diff = (bf16 - fp32).abs().max().item<double>();
  EXPECT_GT(diff, 0.0) << "autocast did not change the arithmetic";
  EXPECT_LT(diff, 0.05 * scale) << "bf16 outputs " << bf16 << " vs float32 " << fp32;
  // Leaving the scope restores float32 exactly (the fused kernels again).
  EXPECT_TRUE(torch::equal(model->predict(b), fp32));
}

TEST(TrainingOptions, Bf16TrainingRunIsFiniteAndRecorded) {
  torch::set_num_threads(1);
  Config cfg = ablations::resolve_config("mosi", "dmd", "smoke", {"autocast=bf16", "max_epochs=1"});
  EXPECT_EQ(cfg.str("autocast"), "bf16");
  const TrainResult bf = train_run(tiny_mosi(), cfg, 5, torch::kCPU);
  cfg.set("autocast", "off");
  const TrainResult fp = train_run(tiny_mosi(), cfg, 5, torch::kCPU);
  ASSERT_EQ(bf.history.size(), 1u);
  EXPECT_TRUE(std::isfinite(bf.history[0].train_loss));
  EXPECT_TRUE(std::isfinite(bf.test["mae"]));
  EXPECT_NE(bf.history[0].train_loss, fp.history[0].train_loss);
  EXPECT_NEAR(bf.history[0].train_loss, fp.history[0].train_loss, 0.1 * std::abs(fp.history[0].train_loss));
}

TEST(TrainingOptions, UnknownAutocastIsRefused) {
  try {
    ablations::resolve_config("mosi", "dmd", "smoke", {"autocast=fp8"});
    FAIL() << "autocast=fp8 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("expects off or bf16"), std::string::npos) << e.what();
  }
}

TEST(TrainingOptions, CudaGraphOnTheCpuIsRefusedInOneSentence) {
  const Config cfg = ablations::resolve_config("mosi", "dmd", "smoke", {"cuda_graph=true"});
  try {
    train_run(tiny_mosi(), cfg, 1, torch::kCPU);
    FAIL() << "cuda_graph=true ran on the CPU";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "cuda_graph=true needs --device cuda (CUDA graphs capture GPU work only)");
  }
}
