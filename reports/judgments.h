// Validity judgments on stored results, in the manner of MLPerf LoadGen's VALID/INVALID with a reason: whether a
// run was still improving at its epoch cap, whether a difference is large enough for the seeds to detect, whether
// a model's predictions collapsed toward the mean, whether compared rows share one protocol, and how much of the
// seed-to-seed spread the test batch order alone makes (spec §1.11). Computed from what the store holds; read by
// the report and by `regress --require-valid`. No LibTorch.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "reports/collect.h"
#include "reports/stats.h"

namespace dmdbench::reports {

// ---- Convergence -------------------------------------------------------------------------------------------------
// A run is capped when it stopped at max_epochs while early stopping had not fired. Over the last `window` epochs
// (k), the relative improvement of the best validation loss is (best before them − best within them) / best before
// them. Two readings, both documented in the report:
//   (a) the best epoch lies within the last k epochs of a capped run  (threshold 0: any improvement);
//   (b) the relative improvement over the last k epochs exceeds `threshold`.
// A capped run is "not converged" by (b) with the threshold below; (a) is (b) with threshold 0.
struct ConvergenceRule {
  int window = 2;           // k
  double threshold = 0.005; // 0.5% of the validation loss
};

struct Convergence {
  bool known = false;         // the run has an epoch history
  bool capped = false;        // stopped by the epoch cap, not by early stopping
  int epochs = 0, max_epochs = 0, early_stop = 0, best_epoch = 0;
  double improvement = 0;     // over the last k epochs (see above); +inf when the run has no more than k epochs
  bool best_in_window = false;  // reading (a)
  bool not_converged = false;   // capped and improvement > threshold: reading (b)
};

// epochs: the run's history in epoch order; max_epochs 0 means no cap; early_stop: the recipe's patience.
Convergence judge_convergence(const std::vector<results::EpochRow>& epochs, int max_epochs, int early_stop,
                              const ConvergenceRule& rule = {});

// ---- Power -------------------------------------------------------------------------------------------------------
// The minimal detectable difference of a two-sided two-sample t-test with pooled variance (df = n_a + n_b − 2) at
// level alpha and the given power, from the exact noncentral t distribution (Boost.Math): the smallest |Δ| with
// P(|T| > t_{1−α/2, df}) ≥ power for T ~ t'(df, Δ / (sd·√(1/n_a + 1/n_b))). 0 when sd is 0; NaN when df < 1.
double minimal_detectable_difference(double sd, int n_a, int n_b, double alpha = 0.05, double power = 0.8);
// The same with the normal approximation (z_{1−α/2} + z_{power})·sd·√(1/n_a + 1/n_b), for comparison.
double minimal_detectable_difference_normal(double sd, int n_a, int n_b, double alpha = 0.05, double power = 0.8);
// Pooled standard deviation of two samples (sample stds, n − 1 weights); 0 when both have n < 2.
double pooled_sd(const Summary& a, const Summary& b);
// Seeds per variant (equal n) whose MDD is at most |diff|; nullopt when more than max_n would be needed.
std::optional<int> seeds_to_detect(double diff, double sd, double alpha = 0.05, double power = 0.8, int max_n = 1000);

// ---- Prediction spread -------------------------------------------------------------------------------------------
// A model collapsed toward the mean when its test predictions spread less than half as much as the labels
// (std(pred)/std(label) < 0.5), or when at least 5% of the labels lie beyond ±1.5 and the predictions reach
// there less than a quarter as often. (A predictor of the conditional mean with correlation ρ has a spread ratio
// of about ρ, so these bounds flag models well below ρ = 0.5 or far narrower than their correlation allows.)
struct SpreadRule {
  double min_std_ratio = 0.5;
  double min_label_tail = 0.05;
  double min_tail_share = 0.25;
};

struct Spread {
  bool known = false;  // the run stored the spread metrics
  double std_ratio = 0, pred_tail = 0, label_tail = 0;
  bool collapsed = false;
  std::string reason;  // why, when collapsed
};
Spread judge_spread(const std::map<std::string, double>& test_metrics, const SpreadRule& rule = {});

// ---- A group's judgments -----------------------------------------------------------------------------------------
struct VariantJudgment {
  int runs = 0;                 // completed runs counted (latest per seed)
  int capped = 0, not_converged = 0, collapsed = 0, unknown_history = 0;
  std::vector<std::string> flags;  // short texts for the results table ("not converged 3/3", ...)
  bool valid() const { return flags.empty(); }
};

// One metric of one variant against full DMD.
struct PowerCell {
  bool testable = false;
  double diff = 0, p = 1, sd = 0, mdd = 0;  // diff and mdd in stored units
  std::string note;                           // the Welch test's note ("no variance", ...)
  bool underpowered = false;                  // |diff| < mdd
};

struct Comparison {
  std::string variant;                         // compared with full DMD
  std::map<std::string, PowerCell> power;      // metric -> cell (table metrics)
  std::vector<std::string> mismatches;         // protocol differences between the two variants' runs, named
  std::vector<std::string> reasons;            // why INVALID (empty: VALID)
  bool valid() const { return reasons.empty(); }
};

// How much of the seed-to-seed spread of a metric the test batch order alone makes.
struct EvalSensitivity {
  int runs = 0, passes = 0;  // runs with shuffled passes; passes per run (clean + shuffles)
  double eval_sd = 0;        // √(mean over runs of the variance over that run's passes)
  double seed_sd = 0;        // std over seeds of the clean test metric
};

struct GroupJudgments {
  ConvergenceRule convergence_rule;
  SpreadRule spread_rule;
  std::map<size_t, Convergence> convergence;  // run index (Collected::runs) -> judgment, completed runs counted
  std::map<size_t, Spread> spread;
  std::map<std::string, VariantJudgment> variants;
  std::vector<Comparison> comparisons;         // each variant with completed runs against full DMD, in group order
  std::vector<std::string> group_mismatches;   // protocol differences anywhere in the group
  std::map<std::string, std::map<std::string, EvalSensitivity>> sensitivity;  // variant -> metric -> spread
  int max_epochs = 0;                           // the cap, when all counted runs share one (else 0)
  bool any_capped_not_converged() const;
  bool mixes_converged_and_capped() const;     // some variants fully converged, others not
};

GroupJudgments judge_group(const Collected& c, const Group& g);

// The configuration keys and run fields that make up a comparison's protocol: data (dataset, content hash, scale,
// generator seed, NaN handling), text input, profile (the cap), evaluation order and numerics, code version.
const std::vector<std::string>& protocol_keys();
// How full DMD's runs of a real-data group differ from the protocol behind the published numbers: the text input
// (the paper fine-tunes BERT; this tool reads frozen BERT features) and every configuration key whose value is not
// the reference's (spec §3-§4: recipe, epoch cap, deliberate options). Empty for synthetic data.
std::vector<std::string> published_protocol_notes(const Collected& c, const Group& g);
// A run's value of each protocol key, in protocol_keys() order.
std::vector<std::pair<std::string, std::string>> protocol_of(const RunData& r);

}  // namespace dmdbench::reports
