// Test-time perturbations on small hand-made tensors (which frames a seed and a rate drop, the noise scale, padding
// untouched, [UNK]/[CLS]/[SEP]), and on a trained model: level 0 reproduces the clean test metrics exactly, and a
// model whose output ignores audio has the same metrics with and without drop:audio.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ablations/variants.h"
#include "harness/training/robustness.h"
#include "harness/training/trainer.h"
#include "tests/training_support.h"

using namespace dmdbench;
using results::PerturbKind;

namespace {

std::vector<int> as_ints(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kInt).contiguous();
  return {c.data_ptr<int>(), c.data_ptr<int>() + c.numel()};
}

}  // namespace

TEST(Perturbation, DroppedFramesForASeedAndRate) {
  // Seed 1111, missing:audio: frame (n, t) is dropped when its uniform draw u(n * T + t) is below the rate. The
  // draws, recomputed in Python from the splitmix64 definition (key = mix(mix(mix(1111) ^ 2) ^ fnv1a("audio"))):
  // 0.979 0.457 0.535 0.825 0.573 | 0.890 0.315 0.094 0.692 0.127, so rate 0.5 drops (0,1), (1,1), (1,2), (1,4)
  // and rate 0.55 also drops (0,2).
  const uint64_t key = perturbation_key(1111, PerturbKind::Missing, "audio");
  EXPECT_EQ(as_ints(kept_frames(2, 5, 0.5, key)), (std::vector<int>{1, 0, 1, 1, 1, 1, 0, 0, 1, 0}));
  EXPECT_EQ(as_ints(kept_frames(2, 5, 0.55, key)), (std::vector<int>{1, 0, 0, 1, 1, 1, 0, 0, 1, 0}));
  // Nested levels: everything dropped at 0.3 is dropped at 0.6; rate 0 keeps all, rate 1 drops all.
  const torch::Tensor k3 = kept_frames(40, 50, 0.3, key), k6 = kept_frames(40, 50, 0.6, key);
  EXPECT_TRUE(k6.logical_and(k3.logical_not()).any().item<bool>() == false);
  EXPECT_TRUE(kept_frames(40, 50, 0.0, key).all().item<bool>());
  EXPECT_FALSE(kept_frames(40, 50, 1.0, key).any().item<bool>());
  // The drop rate over 2000 frames is near the rate (binomial std 0.011).
  EXPECT_NEAR(1.0 - k3.to(torch::kDouble).mean().item<double>(), 0.3, 0.04);
  // Another seed or modality draws other frames.
  EXPECT_FALSE(torch::equal(k3, kept_frames(40, 50, 0.3, perturbation_key(1112, PerturbKind::Missing, "audio"))));
  EXPECT_FALSE(torch::equal(k3, kept_frames(40, 50, 0.3, perturbation_key(1111, PerturbKind::Missing, "vision"))));
}

TEST(Perturbation, DropZeroesExactlyTheDroppedFramesAndPaddingStays) {
  // One sample, 4 frames, 2 channels; frame 0 is padding.
  const torch::Tensor x = torch::tensor({0.f, 0.f, 1.f, 2.f, 3.f, 6.f, -1.f, 4.f}).reshape({1, 4, 2});
  const torch::Tensor kept = torch::tensor({true, false, true, false}).reshape({1, 4});
  const torch::Tensor y = drop_frames(x, kept);
  EXPECT_TRUE(torch::equal(y, torch::tensor({0.f, 0.f, 0.f, 0.f, 3.f, 6.f, 0.f, 0.f}).reshape({1, 4, 2})));
  EXPECT_EQ(as_ints(real_frames(x)), (std::vector<int>{0, 1, 1, 1}));
}

TEST(Perturbation, ChannelStdIsTakenOverNonPaddedFrames) {
  // Real frames (1, 2), (3, 6): np.std per channel = (1, 2); the padded frame would pull channel 0 to 1.247.
  const torch::Tensor x = torch::tensor({0.f, 0.f, 1.f, 2.f, 3.f, 6.f}).reshape({1, 3, 2});
  const torch::Tensor s = channel_std(x);
  EXPECT_FLOAT_EQ(s[0].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(s[1].item<float>(), 2.f);
}

TEST(Perturbation, NoiseHasTheTrainingStdTimesTheScaleAndLeavesPaddingAlone) {
  // 200 samples x 50 frames x 2 channels of ones, the first 10 frames padding; channel stds 1 and 3, scale 0.5.
  torch::Tensor x = torch::ones({200, 50, 2});
  x.narrow(1, 0, 10).zero_();
  const torch::Tensor std = torch::tensor({1.f, 3.f});
  const uint64_t key = perturbation_key(7, PerturbKind::Noise, "vision");
  const torch::Tensor y = add_noise(x, std, 0.5, key);
  EXPECT_TRUE(torch::equal(y.narrow(1, 0, 10), torch::zeros({200, 10, 2})));  // padding untouched
  const torch::Tensor d = (y - x).narrow(1, 10, 40).to(torch::kDouble);       // [200, 40, 2]
  EXPECT_NEAR(d.select(2, 0).std().item<double>(), 0.5, 0.5 * 0.03);         // 8000 draws: std error 0.8%
  EXPECT_NEAR(d.select(2, 1).std().item<double>(), 1.5, 1.5 * 0.03);
  EXPECT_NEAR(d.mean().item<double>(), 0.0, 0.05);
  // The same draw at every level: scale 1 is exactly twice scale 0.5; scale 0 is the input.
  EXPECT_TRUE(torch::allclose(add_noise(x, std, 1.0, key) - x, 2 * (y - x), 0, 1e-6));
  EXPECT_TRUE(torch::equal(add_noise(x, std, 0.0, key), x));
}

TEST(Perturbation, BertTokensBecomeUnkWithClsSepAndMaskKept) {
  // text_bert [N=2, 3, L=7]: ids, mask, segment. Sample 0 has 5 real tokens, sample 1 all 7.
  const torch::Tensor tb = torch::tensor({101.f, 2023.f, 2003.f, 1037.f, 102.f, 0.f, 0.f,  // ids
                                          1.f,   1.f,    1.f,    1.f,    1.f,   0.f, 0.f,  // mask
                                          0.f,   0.f,    0.f,    0.f,    0.f,   0.f, 0.f,  // segment
                                          101.f, 7.f,    8.f,    9.f,    10.f,  11.f, 102.f, 1.f, 1.f, 1.f, 1.f, 1.f,
                                          1.f,   1.f,    0.f,    0.f,    0.f,   0.f,  0.f,  0.f, 0.f})
                               .reshape({2, 3, 7});
  // Nothing kept: every real token but [CLS] and [SEP] is [UNK]; padding ids, mask and segments unchanged.
  const torch::Tensor none = missing_tokens(tb, torch::zeros({2, 7}, torch::kBool));
  EXPECT_EQ(as_ints(none.select(1, 0)[0]), (std::vector<int>{101, 100, 100, 100, 102, 0, 0}));
  EXPECT_EQ(as_ints(none.select(1, 0)[1]), (std::vector<int>{101, 100, 100, 100, 100, 100, 102}));
  EXPECT_TRUE(torch::equal(none.narrow(1, 1, 2), tb.narrow(1, 1, 2)));
  // Some kept: positions 2 and 5 of each sample.
  torch::Tensor kept = torch::zeros({2, 7}, torch::kBool);
  kept.select(1, 2).fill_(true), kept.select(1, 5).fill_(true);
  const torch::Tensor some = missing_tokens(tb, kept);
  EXPECT_EQ(as_ints(some.select(1, 0)[0]), (std::vector<int>{101, 100, 2003, 100, 102, 0, 0}));
  EXPECT_EQ(as_ints(some.select(1, 0)[1]), (std::vector<int>{101, 100, 8, 100, 100, 11, 102}));
}

TEST(Perturbation, MissingAllDrawsEachModalityAsItsOwnPerturbationDoes) {
  const Dataset& d = testing_support::synthetic_mosi(0.05);
  const ModalityStd std = training_std(d.train);
  const Split all = perturb_split(d.test, results::parse_perturbation("missing:all@0.6"), std, 1111);
  const Split audio = perturb_split(d.test, results::parse_perturbation("missing:audio@0.6"), std, 1111);
  EXPECT_TRUE(torch::equal(all.audio, audio.audio));
  EXPECT_TRUE(torch::equal(audio.text, d.test.text));  // the other modalities untouched
  EXPECT_FALSE(torch::equal(all.text, d.test.text));
  const Split drop = perturb_split(d.test, results::parse_perturbation("drop:vision"), std, 1111);
  EXPECT_EQ(drop.vision.abs().sum().item<double>(), 0.0);
}

// A BERT run reads text_bert: drop:text turns every real token but [CLS] and [SEP] into [UNK] (mask and segments
// as they were); noise:text and the other modalities leave the tokens alone.
TEST(Perturbation, TextDropReachesTheBertTokens) {
  const Dataset& d = testing_support::synthetic_mosi(0.05);
  ASSERT_TRUE(d.test.text_bert.defined());
  const ModalityStd std = training_std(d.train);
  const Split drop = perturb_split(d.test, results::parse_perturbation("drop:text"), std, 1111);
  const torch::Tensor ids = drop.text_bert.select(1, 0), mask = d.test.text_bert.select(1, 1);
  EXPECT_TRUE(torch::equal(drop.text_bert.narrow(1, 1, 2), d.test.text_bert.narrow(1, 1, 2)));
  int64_t unk = 0, real = 0;
  for (int64_t i = 0; i < ids.size(0); ++i) {
    const int64_t len = mask[i].sum().item<int64_t>();
    ASSERT_GE(len, 2);
    EXPECT_EQ(ids[i][0].item<int>(), 101) << i;        // [CLS]
    EXPECT_EQ(ids[i][len - 1].item<int>(), 102) << i;  // [SEP]
    for (int64_t j = 1; j < len - 1; ++j) unk += ids[i][j].item<int>() == 100;
    real += len - 2;
    EXPECT_TRUE(torch::equal(ids[i].narrow(0, len, ids.size(1) - len), d.test.text_bert.select(1, 0)[i].narrow(0, len, ids.size(1) - len)));
  }
  EXPECT_EQ(unk, real);
  EXPECT_TRUE(torch::equal(perturb_split(d.test, results::parse_perturbation("noise:text@1"), std, 1111).text_bert,
                           d.test.text_bert));
  EXPECT_TRUE(torch::equal(perturb_split(d.test, results::parse_perturbation("drop:audio"), std, 1111).text_bert,
                           d.test.text_bert));
}

TEST(RobustnessEvaluation, LevelZeroReproducesTheCleanTestAndIgnoredAudioDoesNotMatter) {
  torch::set_num_threads(1);
  const Dataset& d = testing_support::synthetic_mosi(0.05);
  // Shuffled evaluation batches: the robustness passes must use the clean pass's order (spec §1.11).
  const Config cfg = ablations::resolve_config("mosi", "dmd", "smoke", {"max_epochs=1", "eval_shuffle=true"});
  const TrainResult r = train_run(d, cfg, 1111, torch::kCPU);
  auto model = build_trainable(cfg, d.dims(), torch::kCPU);
  model->load_network_state(r.best_network_state);
  const std::vector<results::Perturbation> zero = {results::parse_perturbation("missing:all@0"),
                                                   results::parse_perturbation("noise:all@0")};
  for (const auto& p : evaluate_robustness(*model, d, torch::kCPU, test_eval_options(cfg, 1111), zero, 1111)) {
    SCOPED_TRACE(p.perturbation.name());
    ASSERT_EQ(p.metrics.all().size(), r.test.all().size());
    for (const auto& [name, value] : r.test.all()) EXPECT_EQ(p.metrics[name], value) << name;  // exactly
  }
  // Another batch order gives other outputs for the same weights, so the order above is what made them equal.
  auto by_sample = [&](const EvalOptions& o) {
    const EvalPass pass = evaluate_split(*model, d.test, torch::kCPU, o);
    std::vector<float> out(pass.predictions.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[static_cast<std::size_t>(pass.indices[i])] = pass.predictions[i];
    return out;
  };
  EvalOptions other = test_eval_options(cfg, 1111);
  other.seed += 1;
  EXPECT_NE(by_sample(other), by_sample(test_eval_options(cfg, 1111)));

  // Zero the weights that read audio (the audio projection): the output no longer depends on audio.
  models::StateDict state = r.best_network_state;
  bool found = false;
  for (auto& [name, t] : state)
    if (name == "proj_a.weight") t = torch::zeros_like(t), found = true;
  ASSERT_TRUE(found);
  model->load_network_state(state);
  const auto points = evaluate_robustness(*model, d, torch::kCPU, test_eval_options(cfg, 1111),
                                          {results::parse_perturbation("missing:all@0"),
                                           results::parse_perturbation("drop:audio"),
                                           results::parse_perturbation("drop:vision")},
                                          1111);
  EXPECT_EQ(points[1].metrics.all(), points[0].metrics.all());
  EXPECT_NE(points[2].metrics.all(), points[0].metrics.all());  // vision still matters
}
