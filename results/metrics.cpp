#include "results/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

namespace dmdbench::results {

namespace {

double mae(const std::vector<float>& pred, const std::vector<float>& truth) {
  double abs_sum = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) abs_sum += std::fabs(static_cast<double>(pred[i]) - truth[i]);
  return abs_sum / pred.size();
}

double accuracy(const std::vector<int>& t, const std::vector<int>& p) {
  if (t.empty()) return 0.0;
  std::size_t hits = 0;
  for (std::size_t i = 0; i < t.size(); ++i) hits += t[i] == p[i];
  return static_cast<double>(hits) / t.size();
}

// Negative vs non-negative: truth (y >= 0), prediction (p >= 0).
std::pair<std::vector<int>, std::vector<int>> has0_classes(const std::vector<float>& pred,
                                                          const std::vector<float>& truth) {
  std::vector<int> t, p;
  for (std::size_t i = 0; i < pred.size(); ++i) t.push_back(truth[i] >= 0), p.push_back(pred[i] >= 0);
  return {t, p};
}

// Negative vs positive on the samples not labelled exactly 0; p == 0 counts as negative.
std::pair<std::vector<int>, std::vector<int>> non0_classes(const std::vector<float>& pred,
                                                          const std::vector<float>& truth) {
  std::vector<int> t, p;
  for (std::size_t i = 0; i < pred.size(); ++i)
    if (truth[i] != 0) t.push_back(truth[i] > 0), p.push_back(pred[i] > 0);
  return {t, p};
}

using P = const std::vector<float>&;

double spread(const std::vector<float>& v) {
  double mean = 0;
  for (float x : v) mean += x;
  mean /= v.size();
  double ss = 0;
  for (float x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / v.size());
}

}  // namespace

const std::vector<MetricDef>& metric_defs() {
  // name, label, percent, better, tolerance, in_table, in_summary, computation
  static const std::vector<MetricDef> defs = {
      {"mae", "MAE", false, Better::Lower, 0.005, true, true, [](P p, P t) { return mae(p, t); }},
      {"corr", "Corr", false, Better::Higher, 0.01, true, true, [](P p, P t) { return pearson(p, t); }},
      {"acc2_has0", "Acc-2 has0", true, Better::Higher, 0.5, true, false,
       [](P p, P t) { auto [a, b] = has0_classes(p, t); return accuracy(a, b); }},
      {"f1_has0", "F1 has0", true, Better::Higher, 0.5, true, false,
       [](P p, P t) { auto [a, b] = has0_classes(p, t); return weighted_f1(a, b); }},
      {"acc2_non0", "Acc-2 non0", true, Better::Higher, 0.5, true, true,
       [](P p, P t) { auto [a, b] = non0_classes(p, t); return accuracy(a, b); }},
      {"f1_non0", "F1 non0", true, Better::Higher, 0.5, true, true,
       [](P p, P t) { auto [a, b] = non0_classes(p, t); return weighted_f1(a, b); }},
      {"acc3", "Acc-3", true, Better::Higher, 0.5, true, false, [](P p, P t) { return multiclass_acc(p, t, 1.0); }},
      {"acc5", "Acc-5", true, Better::Higher, 0.5, true, false, [](P p, P t) { return multiclass_acc(p, t, 2.0); }},
      {"acc7", "Acc-7", true, Better::Higher, 0.5, true, true, [](P p, P t) { return multiclass_acc(p, t, 3.0); }},
      {"samples", "samples", false, Better::Neither, 0.0, false, false,
       [](P p, P) { return static_cast<double>(p.size()); }},
      // The predictions' spread against the labels' (the report's collapse judgment, reports/judgments.h).
      {"pred_std_ratio", "std(pred)/std(label)", false, Better::Neither, 0.02, false, false,
       [](P p, P t) { return pred_std_ratio(p, t); }},
      {"pred_beyond_1_5", "|pred| > 1.5", true, Better::Neither, 0.5, false, false,
       [](P p, P) { return fraction_beyond(p, 1.5); }},
      {"label_beyond_1_5", "|label| > 1.5", true, Better::Neither, 0.0, false, false,
       [](P, P t) { return fraction_beyond(t, 1.5); }},
      // Recorded by the trainer, not computed from predictions.
      {"loss", "valid loss", false, Better::Lower, 0.005, false, false, nullptr},
      {"graph_max_grad_diff", "graph vs eager max |grad diff|", false, Better::Lower, 1e-4, false, false, nullptr},
  };
  return defs;
}

const MetricDef* find_metric(const std::string& name) {
  for (const auto& m : metric_defs())
    if (name == m.name) return &m;
  return nullptr;
}

double shown_value(const MetricDef& m, double stored) { return m.percent ? stored * 100.0 : stored; }

std::string format_shown(const MetricDef& m, double shown) {
  if (std::string(m.name) == "samples") return fmt::format("{:.0f}", shown);
  return fmt::format("{:.{}f}", shown, m.percent ? 2 : 4);
}

std::string format_stored(const MetricDef& m, double stored) { return format_shown(m, shown_value(m, stored)); }

double MetricValues::operator[](const std::string& name) const {
  if (auto v = find(name)) return *v;
  throw std::out_of_range(fmt::format("no metric '{}' was computed", name));
}

std::optional<double> MetricValues::find(const std::string& name) const {
  for (const auto& [n, v] : values_)
    if (n == name) return v;
  return std::nullopt;
}

double round4(double x) { return std::nearbyint(x * 1e4) / 1e4; }

double pearson(const std::vector<float>& a, const std::vector<float>& b) {
  const std::size_t n = a.size();
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < n; ++i) ma += a[i], mb += b[i];
  ma /= n, mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double da = a[i] - ma, db = b[i] - mb;
    sab += da * db, saa += da * da, sbb += db * db;
  }
  if (saa == 0 || sbb == 0) return std::numeric_limits<double>::quiet_NaN();  // np.corrcoef gives nan
  return std::clamp(sab / std::sqrt(saa * sbb), -1.0, 1.0);
}

double pred_std_ratio(const std::vector<float>& pred, const std::vector<float>& truth) {
  const double label_spread = spread(truth);
  if (pred.empty() || label_spread == 0) return std::numeric_limits<double>::quiet_NaN();
  return spread(pred) / label_spread;
}

double fraction_beyond(const std::vector<float>& v, double bound) {
  if (v.empty()) return 0;
  std::size_t n = 0;
  for (float x : v) n += std::fabs(x) > bound;
  return static_cast<double>(n) / v.size();
}

double multiclass_acc(const std::vector<float>& pred, const std::vector<float>& truth, double clip) {
  if (pred.empty()) return 0;
  std::size_t hits = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    const double p = std::nearbyint(std::clamp<double>(pred[i], -clip, clip));  // np.round: half to even
    const double t = std::nearbyint(std::clamp<double>(truth[i], -clip, clip));
    hits += p == t;
  }
  return static_cast<double>(hits) / pred.size();
}

double weighted_f1(const std::vector<int>& truth, const std::vector<int>& pred) {
  if (truth.empty()) return 0;
  double total = 0;
  for (int cls : {0, 1}) {
    std::size_t tp = 0, fp = 0, fn = 0, support = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) {
      const bool t = truth[i] == cls, p = pred[i] == cls;
      support += t, tp += t && p, fp += !t && p, fn += t && !p;
    }
    const std::size_t denom = 2 * tp + fp + fn;
    const double f1 = denom == 0 ? 0.0 : 2.0 * tp / denom;
    total += f1 * support;
  }
  return total / truth.size();
}

MetricValues regression_metrics(const std::vector<float>& pred, const std::vector<float>& truth) {
  if (pred.size() != truth.size())
    throw std::invalid_argument(fmt::format("{} predictions for {} labels", pred.size(), truth.size()));
  if (pred.empty()) throw std::invalid_argument("no samples to compute metrics on (the split is empty)");
  std::vector<std::pair<std::string, double>> values;
  for (const auto& m : metric_defs())
    if (m.compute) values.emplace_back(m.name, round4(m.compute(pred, truth)));
  return MetricValues(std::move(values));
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

}  // namespace dmdbench::results
