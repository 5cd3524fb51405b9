// Summary statistics across seeds and Welch's two-sample t-test (two-sided, Welch–Satterthwaite df).
#pragma once

#include <string>
#include <vector>

namespace dmdbench::reports {

struct Summary {
  int n = 0;
  double mean = 0;
  double std = 0;  // sample standard deviation (n - 1 in the denominator); 0 when n < 2
};
Summary summarize(const std::vector<double>& values);

struct WelchResult {
  bool testable = false;  // false when either sample has fewer than 2 values
  double diff = 0;        // mean(b) - mean(a)
  double t = 0, df = 0, p = 1;
  std::string note;       // "n too small to test", "no variance", or empty
};
// Compares b against a (a is the reference, e.g. full DMD). With both variances 0 the test degenerates: p = 1
// when the means are equal, p = 0 when they differ (note "no variance").
WelchResult welch_test(const std::vector<double>& a, const std::vector<double>& b);

// Two-sided p-value of Student's t distribution with df degrees of freedom: P(|T| >= |t|).
double students_t_two_sided_p(double t, double df);

}  // namespace dmdbench::reports
