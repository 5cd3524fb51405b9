// The MMSA regression metric set (spec §6), without LibTorch.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace dmdbench {

struct RegressionMetrics {
  double mae = 0, corr = 0;
  double acc2_has0 = 0, f1_has0 = 0;  // negative vs non-negative
  double acc2_non0 = 0, f1_non0 = 0;  // zeros excluded; p == 0 counts as negative
  double acc3 = 0, acc5 = 0, acc7 = 0;
  // name -> value in a fixed order, names as stored in the database.
  std::vector<std::pair<std::string, double>> named() const;
};

// Every value is rounded to 4 decimals half-to-even, as np.round(x, 4).
RegressionMetrics regression_metrics(const std::vector<float>& pred, const std::vector<float>& truth);

// Pieces, exposed for tests.
double round4(double x);
// Fraction of exact matches after clipping to [-c, c] and rounding half-to-even.
double multiclass_acc(const std::vector<float>& pred, const std::vector<float>& truth, double clip);
// sklearn f1_score(average='weighted') for binary labels; undefined per-class F1 counts as 0.
double weighted_f1(const std::vector<int>& truth, const std::vector<int>& pred);
double pearson(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace dmdbench
