// A small training run on synthetic data: it learns, it is deterministic per seed, and its checkpoints round-trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "ablations/variants.h"
#include "harness/data/dataset.h"
#include "harness/io/checkpoint.h"
#include "harness/training/device.h"
#include "harness/training/trainer.h"
#include "models/ops.h"
#include "tests/training_support.h"

using namespace dmdbench;

namespace {

const Dataset& small_mosi() { return testing_support::synthetic_mosi(0.1); }

Config smoke_config() {
  // The smoke profile: three epochs, one optimizer step per batch.
  return ablations::resolve_config("mosi", "dmd", "smoke", {});
}

const TrainResult& run_seed(int64_t seed) {
  static std::map<int64_t, TrainResult> cache;
  if (!cache.count(seed)) {
    torch::set_num_threads(1);
    cache[seed] = train_run(small_mosi(), smoke_config(), seed, torch::kCPU);
  }
  return cache.at(seed);
}

std::vector<double> fingerprint(const TrainResult& r) {
  std::vector<double> f;
  for (const auto& [name, v] : r.test.all()) f.push_back(v);
  for (const auto& e : r.history) f.insert(f.end(), {e.train_loss, e.valid_loss, e.grad_norm});
  for (float p : r.test_predictions) f.push_back(p);
  return f;
}

}  // namespace

TEST(TrainingSmoke, LossFallsAndBeatsTheMeanPredictor) {
  const TrainResult& r = run_seed(1111);
  ASSERT_EQ(r.history.size(), 3u);
  EXPECT_LT(r.history.back().train_loss, r.history.front().train_loss);
  // MAE of predicting the training-label mean on the test split.
  const Dataset& d = small_mosi();
  const double mean = d.train.labels.mean().item<double>();
  const double mean_mae = (d.test.labels - mean).abs().mean().item<double>();
  EXPECT_LT(r.test["mae"], mean_mae) << "mean predictor MAE " << mean_mae;
  EXPECT_GE(r.best_epoch, 1);
  EXPECT_EQ(r.test_predictions.size(), static_cast<std::size_t>(d.test.size()));
  // Edge weights of both spaces: a 3x3 from->to matrix with an empty diagonal whose entries sum to 1.
  ASSERT_EQ(r.edge_spaces, (std::vector<std::string>{"homo", "hetero"}));
  for (const auto& m : r.edges) {
    double sum = 0;
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(m[i][i], 0.0);
      for (int j = 0; j < 3; ++j) sum += m[i][j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST(TrainingSmoke, SameSeedIsBitIdenticalOtherSeedDiffers) {
  const auto a = fingerprint(run_seed(1111));
  torch::set_num_threads(1);
  const TrainResult again = train_run(small_mosi(), smoke_config(), 1111, torch::kCPU);
  const auto b = fingerprint(again);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "entry " << i;  // bit-identical
  EXPECT_NE(fingerprint(run_seed(1112)), a);
}

TEST(TrainingSmoke, TwoThreadsGiveTheOneThreadBits) {
  // At two threads the transformers run as jobs at once (models/jobs.h) and the linears' products split their
  // rows over the threads. Where the products follow the threads (gemm's kernel in use, models/ops.h), what
  // the weights give (validation losses, test metrics and predictions of every epoch's model) equals one
  // thread's bit for bit; elsewhere the BLAS threads itself and two two-thread runs must agree with each
  // other. (The reported training loss and gradient norm are LibTorch reductions that split over threads, so
  // they are not compared.)
  auto weights_fingerprint = [](const TrainResult& r) {
    std::vector<double> f;
    for (const auto& [name, v] : r.test.all()) f.push_back(v);
    for (const auto& e : r.history) f.push_back(e.valid_loss);
    for (float p : r.test_predictions) f.push_back(p);
    return f;
  };
  set_threads(1);  // LibTorch's pool and the BLAS's (run_seed sizes LibTorch's only)
  const auto one = weights_fingerprint(train_run(small_mosi(), smoke_config(), 1111, torch::kCPU));
  set_threads(2);
  const auto two = weights_fingerprint(train_run(small_mosi(), smoke_config(), 1111, torch::kCPU));
  const auto reference =
      models::ops::products_follow_threads()
          ? one
          : weights_fingerprint(train_run(small_mosi(), smoke_config(), 1111, torch::kCPU));
  set_threads(1);
  ASSERT_EQ(two.size(), reference.size());
  for (std::size_t i = 0; i < two.size(); ++i) EXPECT_EQ(two[i], reference[i]) << "entry " << i;
}

TEST(TrainingSmoke, TestShufflesLeaveTheCleanTestPassAsItWas) {
  // The smoke profile's two extra test passes in other batch orders (test_shuffles=2; the default is 5): own
  // seeds, other numbers for the same weights (spec §1.11), and the clean test metrics and predictions exactly
  // those of a run without them.
  const TrainResult& r = run_seed(1111);
  ASSERT_EQ(r.test_shuffles.size(), 2u);
  std::set<uint64_t> seeds = {r.test_seed};
  bool any_differs = false;
  for (const auto& s : r.test_shuffles) {
    seeds.insert(s.seed);
    EXPECT_EQ(s.metrics["samples"], r.test["samples"]);
    any_differs |= s.metrics["mae"] != r.test["mae"];
  }
  EXPECT_EQ(seeds.size(), 3u);
  EXPECT_TRUE(any_differs) << "a sample's output should depend on its batch";
  Config without = smoke_config();
  without.set("test_shuffles", 0);
  torch::set_num_threads(1);
  const TrainResult plain = train_run(small_mosi(), without, 1111, torch::kCPU);
  EXPECT_TRUE(plain.test_shuffles.empty());
  EXPECT_EQ(plain.test_seed, r.test_seed);
  EXPECT_EQ(fingerprint(plain), fingerprint(r));  // bit-identical
}

TEST(TrainingSmoke, CheckpointOutIsReadBackIdentically) {
  const TrainResult& r = run_seed(1111);
  const auto path = std::filesystem::temp_directory_path() / "dmdbench_ckpt_roundtrip.pth";
  write_checkpoint(path.string(), r.best_network_state);
  const StateDict back = read_checkpoint(path.string());
  ASSERT_EQ(back.size(), r.best_network_state.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].first, r.best_network_state[i].first);
    EXPECT_TRUE(torch::equal(back[i].second, r.best_network_state[i].second)) << back[i].first;
  }
  std::filesystem::remove(path);
}

TEST(TrainingSmoke, GoldenCheckpointSurvivesReadWriteRead) {
  const std::string golden = std::string(DMDBENCH_SHARED_DIR) + "/golden/mosei/state_dict.pth";
  const StateDict a = read_checkpoint(golden);
  const auto path = std::filesystem::temp_directory_path() / "dmdbench_golden_roundtrip.pth";
  write_checkpoint(path.string(), a);
  const StateDict b = read_checkpoint(path.string());
  ASSERT_EQ(a.size(), 702u);
  ASSERT_EQ(b.size(), a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second.dtype(), b[i].second.dtype());
    EXPECT_EQ(a[i].second.sizes(), b[i].second.sizes());
    // Byte for byte: some buffers hold uninitialised NaNs, which torch::equal would call unequal.
    const auto x = a[i].second.contiguous(), y = b[i].second.contiguous();
    ASSERT_EQ(x.nbytes(), y.nbytes());
    EXPECT_EQ(std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()), 0) << a[i].first;
  }
  std::filesystem::remove(path);
}

TEST(TrainingSmoke, ADivergingRunStopsNamingTheEpochBatchAndTerm) {
  // A learning rate of 1e6 with clipping off blows the weights up within a few steps: the run stops with the
  // first batch whose loss is not finite instead of training on NaN.
  Config cfg = ablations::resolve_config("mosi", "dmd", "smoke", {"learning_rate=1000000.0", "grad_clip=1e30"});
  try {
    train_run(testing_support::synthetic_mosi(0.05), cfg, 1111, torch::kCPU);
    ADD_FAILURE() << "the run must not complete";
  } catch (const Diverged& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("the training loss became NaN at epoch 1, batch ", 0), 0u) << msg;
    EXPECT_NE(msg.find(" (term '"), std::string::npos) << msg;
  }
}
