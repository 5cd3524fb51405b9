#include "harness/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace dmdbench {

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

RegressionMetrics regression_metrics(const std::vector<float>& pred, const std::vector<float>& truth) {
  if (pred.size() != truth.size()) throw std::invalid_argument("predictions and labels differ in length");
  RegressionMetrics m;
  const std::size_t n = pred.size();
  double abs_sum = 0;
  for (std::size_t i = 0; i < n; ++i) abs_sum += std::fabs(static_cast<double>(pred[i]) - truth[i]);
  m.mae = n ? abs_sum / n : 0;
  m.corr = pearson(pred, truth);
  m.acc7 = multiclass_acc(pred, truth, 3.0);
  m.acc5 = multiclass_acc(pred, truth, 2.0);
  m.acc3 = multiclass_acc(pred, truth, 1.0);

  std::vector<int> t_has0, p_has0, t_non0, p_non0;
  for (std::size_t i = 0; i < n; ++i) {
    t_has0.push_back(truth[i] >= 0), p_has0.push_back(pred[i] >= 0);
    if (truth[i] != 0) t_non0.push_back(truth[i] > 0), p_non0.push_back(pred[i] > 0);
  }
  auto accuracy = [](const std::vector<int>& t, const std::vector<int>& p) {
    if (t.empty()) return 0.0;
    std::size_t hits = 0;
    for (std::size_t i = 0; i < t.size(); ++i) hits += t[i] == p[i];
    return static_cast<double>(hits) / t.size();
  };
  m.acc2_has0 = accuracy(t_has0, p_has0), m.f1_has0 = weighted_f1(t_has0, p_has0);
  m.acc2_non0 = accuracy(t_non0, p_non0), m.f1_non0 = weighted_f1(t_non0, p_non0);
  for (double* v : {&m.mae, &m.corr, &m.acc2_has0, &m.f1_has0, &m.acc2_non0, &m.f1_non0, &m.acc3, &m.acc5, &m.acc7})
    *v = round4(*v);
  return m;
}

std::vector<std::pair<std::string, double>> RegressionMetrics::named() const {
  return {{"mae", mae},           {"corr", corr},           {"acc2_has0", acc2_has0}, {"f1_has0", f1_has0},
          {"acc2_non0", acc2_non0}, {"f1_non0", f1_non0}, {"acc3", acc3},           {"acc5", acc5},
          {"acc7", acc7}};
}

}  // namespace dmdbench
