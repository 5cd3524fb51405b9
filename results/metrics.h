// The metric set, as one table: each metric is one line (its stored name, how it is shown, which way is better,
// the regression gate's default tolerance, where it appears) plus, for metrics computed from predictions, its
// computation (MMSA's regression metrics, spec §6). The store, `ls`, the report tables and figures, progress
// lines and `regress` all read this table; adding a metric is one line here and its computation. No LibTorch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dmdbench::results {

enum class Better { Lower, Higher, Neither };  // Neither: any move beyond the tolerance is a change to flag

struct MetricDef {
  const char* name;    // as stored ("mae", "acc2_non0", ...)
  const char* label;   // column header ("MAE", "Acc-2 non0")
  bool percent;        // stored as a fraction, shown x100 with 2 decimals; otherwise shown raw with 4
  Better better;
  double tolerance;    // regress's default tolerance, in shown units
  bool in_table;       // a column of the report's results and difference tables
  bool in_summary;     // shown in `ls`, the report's run list and progress lines
  // From predictions and labels of one split (nullptr: recorded by the trainer, e.g. the validation loss).
  double (*compute)(const std::vector<float>& pred, const std::vector<float>& truth);
};

// In column order: the regression metrics of a split, then what the trainer records.
const std::vector<MetricDef>& metric_defs();
const MetricDef* find_metric(const std::string& name);  // nullptr when unknown

double shown_value(const MetricDef& m, double stored);           // x100 for percent metrics
std::string format_shown(const MetricDef& m, double shown);      // 2 decimals for percent metrics, else 4
std::string format_stored(const MetricDef& m, double stored);    // format_shown(shown_value(stored))

// One split's computed metrics, in metric_defs() order (names as stored), each rounded to 4 decimals
// half-to-even as np.round(x, 4).
class MetricValues {
 public:
  MetricValues() = default;
  explicit MetricValues(std::vector<std::pair<std::string, double>> v) : values_(std::move(v)) {}
  double operator[](const std::string& name) const;  // std::out_of_range naming the metric when absent
  std::optional<double> find(const std::string& name) const;
  const std::vector<std::pair<std::string, double>>& all() const { return values_; }

 private:
  std::vector<std::pair<std::string, double>> values_;
};

// Every metric with a computation. Throws std::invalid_argument when the lengths differ or the split is empty.
MetricValues regression_metrics(const std::vector<float>& pred, const std::vector<float>& truth);

// Pieces, exposed for tests.
double round4(double x);
// Fraction of exact matches after clipping to [-c, c] and rounding half-to-even.
double multiclass_acc(const std::vector<float>& pred, const std::vector<float>& truth, double clip);
// sklearn f1_score(average='weighted') for binary labels; undefined per-class F1 counts as 0.
double weighted_f1(const std::vector<int>& truth, const std::vector<int>& pred);
double pearson(const std::vector<float>& a, const std::vector<float>& b);
// std(pred) / std(truth) (population std; NaN when the labels are constant): 1 for predictions as spread out as
// the labels, 0 for a constant prediction.
double pred_std_ratio(const std::vector<float>& pred, const std::vector<float>& truth);
// Fraction of values with |v| > bound.
double fraction_beyond(const std::vector<float>& v, double bound);

// The one latency percentile: linear interpolation between the closest ranks (numpy's default), q in [0, 1].
double percentile(std::vector<double> values, double q);

}  // namespace dmdbench::results
