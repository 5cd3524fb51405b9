// Non-finite numbers are refused, naming where they are: features (unless zero_nan), labels (always), and the
// weights of a checkpoint (naming the tensors); dtype conversions of a checkpoint are said in one line.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "harness/data/dataset.h"
#include "harness/experiment/config.h"
#include "harness/io/checkpoint.h"
#include "harness/training/trainable.h"
#include "tests/cli_support.h"

using namespace dmdbench;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return std::string(DMDBENCH_FIXTURES_DIR) + "/" + name; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(NonFinite, FeaturesAreRefusedUnlessZeroNanWhichZeroesThem) {
  EXPECT_EQ(error_of([] { load_mmsa(fixture("mmsa_inf.pkl"), "mosi"); }),
            fixture("mmsa_inf.pkl") + ": split 'test' audio holds non-finite values (1 +inf); refusing the file "
                                      "(--set zero_nan=true replaces NaN and ±inf in the features by 0)");
  LoadOptions zero;
  zero.zero_nan = true;
  const Dataset d = load_mmsa(fixture("mmsa_inf.pkl"), "mosi", zero);
  EXPECT_EQ(d.test.audio[1][1][2].item<float>(), 0.0f);
  EXPECT_EQ(d.test.vision[0][1][0].item<float>(), 0.0f);
  EXPECT_EQ(d.test.vision[1][1][1].item<float>(), 0.0f);
  EXPECT_TRUE(torch::isfinite(d.test.vision).all().item<bool>());
}

TEST(NonFinite, LabelsAreRefusedEvenWithZeroNan) {
  LoadOptions zero;
  zero.zero_nan = true;
  EXPECT_EQ(error_of([&] { load_mmsa(fixture("mmsa_nan_label.pkl"), "mosi", zero); }),
            fixture("mmsa_nan_label.pkl") +
                ": split 'test' labels holds non-finite values (1 NaN); refusing the file (labels must be finite)");
}

TEST(NonFinite, AudioMinusInfinityIsTheReferenceLoadersZero) {
  const Dataset d = load_mmsa(fixture("mmsa_aligned.pkl"), "mosi");  // audio -inf at train (1,2,3)
  EXPECT_EQ(d.train.audio[1][2][3].item<float>(), 0.0f);
}

TEST(NonFinite, CheckpointWeightsAreCheckedAgainstTheModel) {
  const std::string golden = std::string(DMDBENCH_SHARED_DIR) + "/golden/mosei/state_dict.pth";
  StateDict ckpt = read_checkpoint(golden);
  Config cfg = reference_config("mosei", "dmd");
  cfg.set("text_encoder", "features");  // the golden checkpoint reads 768-d text features
  auto model = build_trainable(cfg, reference_dims("mosei"), torch::kCPU);
  // The reference's own checkpoint: its unused _float_tensor buffers hold garbage, which is not refused.
  EXPECT_EQ(check_loadable(ckpt, model->network_state(), model->network_parameter_names(), golden), "");
  for (auto& [name, t] : ckpt) {
    if (name == "proj_l.weight") t = t.clone(), t.view({-1})[3] = std::nanf("");
    if (name == "out_layer.bias") t = t.clone(), t.view({-1})[0] = INFINITY;
    if (name == "out_layer.weight") t = t.to(torch::kFloat64);
  }
  EXPECT_EQ(error_of([&] { check_loadable(ckpt, model->network_state(), model->network_parameter_names(), golden); }),
            "checkpoint " + golden + " holds non-finite weights in 2 tensors: proj_l.weight (1 NaN, 0 inf), "
                                     "out_layer.bias (0 NaN, 1 inf)");
  for (auto& [name, t] : ckpt)
    if (name == "proj_l.weight" || name == "out_layer.bias") t = torch::zeros_like(t);
  EXPECT_EQ(check_loadable(ckpt, model->network_state(), model->network_parameter_names(), golden),
            "converted 1 tensor of checkpoint " + golden + " on load: out_layer.weight (Double to Float)");
}

TEST(NonFinite, EvaluateRefusesANonFiniteCheckpointInOneSentence) {
  const std::string golden = std::string(DMDBENCH_SHARED_DIR) + "/golden/mosei/";
  StateDict ckpt = read_checkpoint(golden + "state_dict.pth");
  for (auto& [name, t] : ckpt)
    if (name == "trans_l_mem.layers.0.fc1.weight") t = t.clone(), t.view({-1})[0] = std::nanf("");
  const fs::path bad = fs::temp_directory_path() / ("dmd_nan_ckpt_" + std::to_string(getpid()) + ".pth");
  write_checkpoint(bad.string(), ckpt);
  const auto r = dmdbench::testing::run_dmdbench("evaluate --checkpoint " + bad.string() + " --data " + golden +
                                       "data.pkl --config mosei");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("holds non-finite weights in 1 tensor: trans_l_mem.layers.0.fc1.weight (1 NaN, 0 inf)"),
            std::string::npos)
      << r.out;
  fs::remove(bad);
}

TEST(NonFinite, AFifoAsDataIsRefusedAtOnce) {
  const fs::path fifo = fs::temp_directory_path() / ("dmd_data_fifo_" + std::to_string(getpid()));
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const auto r = dmdbench::testing::run_dmdbench("data info mosi:" + fifo.string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("not a regular file"), std::string::npos) << r.out;
  fs::remove(fifo);
}
