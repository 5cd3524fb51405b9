// Robustness: the test-time perturbations by name, the grids, and the summary measures of a run's stored
// robustness rows (relative and effective robustness of the missing-rate curve, the modality-drop profile).
// The perturbations themselves act on tensors in harness/training/robustness.h. No LibTorch.
//
// Names: "drop:<m>" (m in text, audio, vision; level 1), "missing:<m|all>@r" (each time step dropped with
// probability r), "noise:<m|all>@s" (Gaussian noise of s times the training split's per-channel std). Stored as
// (perturbation, level) = ("drop:audio", 1), ("missing:all", 0.3), ("noise:text", 0.5).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dmdbench::results {

enum class PerturbKind { Drop, Missing, Noise };

struct Perturbation {
  PerturbKind kind = PerturbKind::Drop;
  std::string modality;  // "text" | "audio" | "vision" | "all" (not for drop)
  double level = 1;      // drop: 1; missing: the rate in [0, 1]; noise: the scale s >= 0
  std::string family() const;  // "drop:audio", "missing:all", "noise:text": the curve it belongs to
  std::string name() const;    // "drop:audio", "missing:all@0.3", "noise:text@0.5"
};

// std::invalid_argument, one sentence, for a malformed name.
Perturbation parse_perturbation(const std::string& name);
Perturbation perturbation_of(const std::string& family, double level);  // from a stored row

// "default": the three drops and missing:all@{0.3,0.6,0.9}; "full": the drops, missing:<m|all>@0.1..0.9 and
// noise:<m|all>@0.1..1.0 (steps of 0.1); "off": none. std::invalid_argument for another name.
std::vector<Perturbation> robustness_grid(const std::string& name);

// One stored value: a metric of the test split under a perturbation at a level.
struct RobustnessRow {
  std::string perturbation;  // the family
  double level = 0;
  std::string metric;        // a metric_defs() name
  double value = 0;
};

// A metric against the level; the clean score is the point at level 0.
using Curve = std::vector<std::pair<double, double>>;  // (level, value), sorted by level

// Area under the piecewise-linear curve (trapezoid rule) from level 0 to the largest level, divided by the
// largest level: the mean score over the levels. nullopt for fewer than two points or a largest level of 0.
std::optional<double> relative_robustness(const Curve& curve);
// The same area of curve(l) - (reference(l) - reference(0) + curve(0)): how much better (or worse) than the
// reference the run holds up, once both start at the run's clean score. The reference is read at the curve's
// levels by linear interpolation; nullopt when it does not cover them.
std::optional<double> effective_robustness(const Curve& curve, const Curve& reference);

// The curve of `family` for `metric` from a run's rows, with the clean score as its level-0 point.
Curve curve_of(const std::vector<RobustnessRow>& rows, const std::string& family, const std::string& metric,
               double clean);

// The summarised metrics and the measures, as metric_defs() names: rr_<m> and er_<m> of the missing:all curve,
// drop_<modality>_<m> = metric under drop:<modality> - clean metric, for m in kRobustnessMetrics.
extern const char* const kRobustnessMetrics[3];  // "mae", "acc2_non0", "f1_non0"
extern const char* const kModalities[3];         // "text", "audio", "vision"
// `clean`: the run's test metrics; `reference`: the reference's (MulT's) missing:all curve per metric with its
// own clean point, or empty. Only measures that can be computed are returned.
std::map<std::string, double> robustness_summary(const std::map<std::string, double>& clean,
                                                 const std::vector<RobustnessRow>& rows,
                                                 const std::map<std::string, Curve>& reference = {});

}  // namespace dmdbench::results
