#include "reports/stats.h"

#include <boost/math/distributions/students_t.hpp>

#include <cmath>
#include <limits>

namespace dmdbench::reports {

Summary summarize(const std::vector<double>& values) {
  Summary s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  // Shifted by the first value: identical values give exactly that value and exactly zero variance.
  const double shift = values[0];
  double sum = 0;
  for (double v : values) sum += v - shift;
  s.mean = shift + sum / s.n;
  if (s.n < 2) return s;
  double ss = 0;
  for (double v : values) ss += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(ss / (s.n - 1));
  return s;
}

double students_t_two_sided_p(double t, double df) {
  if (std::isinf(t)) return 0;
  const boost::math::students_t dist(df);
  return 2 * boost::math::cdf(boost::math::complement(dist, std::fabs(t)));
}

WelchResult welch_test(const std::vector<double>& a, const std::vector<double>& b) {
  WelchResult r;
  const Summary sa = summarize(a), sb = summarize(b);
  r.diff = sb.mean - sa.mean;
  if (sa.n < 2 || sb.n < 2) {
    r.note = "n too small to test";
    return r;
  }
  r.testable = true;
  const double va = sa.std * sa.std / sa.n, vb = sb.std * sb.std / sb.n;
  const double se2 = va + vb;
  if (se2 == 0) {
    r.note = "no variance";
    r.df = sa.n + sb.n - 2;
    if (r.diff == 0) {
      r.t = 0;
      r.p = 1;
    } else {
      r.t = std::copysign(std::numeric_limits<double>::infinity(), r.diff);
      r.p = 0;
    }
    return r;
  }
  r.t = r.diff / std::sqrt(se2);
  r.df = se2 * se2 / (va * va / (sa.n - 1) + vb * vb / (sb.n - 1));
  r.p = students_t_two_sided_p(r.t, r.df);
  return r;
}

}  // namespace dmdbench::reports
