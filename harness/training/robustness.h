// Test-time perturbations of a split and the robustness evaluation of a trained model (results/robustness.h names
// the perturbations and grids). Each perturbation is a pure function of (run seed, perturbation, level, sample
// index, time step[, channel]) through splitmix64, so it does not depend on the batch order, the thread count or
// the LibTorch version. The levels of one curve share their random numbers: the frames dropped at rate 0.3 are
// among those dropped at 0.6, and noise at scale s is s times one fixed draw, so a curve moves only with the level.
//
// Shapes: N samples, T time steps, D channels; a frame is padding when all its D channels are 0 (the MMSA pickles
// and the synthetic data zero-pad, spec §1.11 gives padded frames no position).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "harness/data/dataset.h"
#include "harness/training/evaluation.h"
#include "harness/training/trainable.h"
#include "results/metrics.h"
#include "results/robustness.h"

namespace dmdbench {

// [N, T] bool: the frames of x [N, T, D] that are not padding.
torch::Tensor real_frames(const torch::Tensor& x);
// [D]: the per-channel standard deviation (population, numpy's np.std) over the real frames of x [N, T, D].
torch::Tensor channel_std(const torch::Tensor& x);
// [N, T] bool, MMSA's generate_m rule: frame (n, t) is dropped (false) when u < rate, u uniform in [0, 1) drawn
// from (key, n * T + t); kept otherwise. rate 1 drops every frame.
torch::Tensor kept_frames(int64_t n, int64_t t, double rate, uint64_t key);
// x [N, T, D] with the frames that `kept` [N, T] marks false set to 0.
torch::Tensor drop_frames(const torch::Tensor& x, const torch::Tensor& kept);
// x + scale * channel_stds[c] * z on the real frames of x only (padding stays 0); z standard normal from (key, element).
torch::Tensor add_noise(const torch::Tensor& x, const torch::Tensor& channel_stds, double scale, uint64_t key);
// The BERT text layout text_bert [N, 3, L] (token ids, attention mask, segment ids; float, as MMSA stores it):
// the real tokens (mask 1) that `kept` [N, L] marks false become [UNK] = 100; [CLS] (position 0) and [SEP] (the
// last real position) are always kept; the mask and the segment ids are unchanged (MMSA's generate_m, mode text).
torch::Tensor missing_tokens(const torch::Tensor& text_bert, const torch::Tensor& kept);
constexpr int64_t kUnkToken = 100;

// Per modality: the training split's per-channel std ([D] each), for the noise scale.
struct ModalityStd {
  torch::Tensor text, audio, vision;
};
ModalityStd training_std(const Split& train);

// The stream of one (run seed, perturbation kind, modality): the same for every level of the curve.
uint64_t perturbation_key(int64_t seed, results::PerturbKind kind, const std::string& modality);

// A copy of `s` with the perturbation applied (the other modalities and the labels shared, not copied). A drop
// or missing rate on text also applies to text_bert when the split has it (missing_tokens, over the token axis
// with the text features' stream), so a run whose BERT reads the tokens sees the same perturbation; noise has no
// token form and leaves text_bert as it is.
Split perturb_split(const Split& s, const results::Perturbation& p, const ModalityStd& stds, int64_t seed);

struct RobustnessPoint {
  results::Perturbation perturbation;
  results::MetricValues metrics;
  std::vector<double> batch_ms;  // the evaluation pass's time per batch
};

// One evaluation pass of the test split per grid point, with `test_options` (the run's clean test options:
// batch size, order and kernels; edges and heads are not collected). `on_point` after each point.
std::vector<RobustnessPoint> evaluate_robustness(Trainable& model, const Dataset& data, torch::Device device,
                                                 EvalOptions test_options,
                                                 const std::vector<results::Perturbation>& grid, int64_t seed,
                                                 const std::function<void(const RobustnessPoint&)>& on_point = {});

// The rows a point is stored as (every computed metric).
std::vector<results::RobustnessRow> robustness_rows(const RobustnessPoint& p);

}  // namespace dmdbench
