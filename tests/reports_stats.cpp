// Summary statistics and Welch's t-test against hand-computed values, published t-table critical values, and
// p-values from the regularized incomplete beta function (mpmath, 30 digits):
//   p = I_{df/(df+t^2)}(df/2, 1/2).
#include <gtest/gtest.h>

#include <cmath>

#include "reports/stats.h"

using namespace dmdbench::reports;

TEST(StatsTest, SummaryUsesSampleStd) {
  const auto s = summarize({0.69, 0.70, 0.71});
  EXPECT_EQ(s.n, 3);
  EXPECT_NEAR(s.mean, 0.70, 1e-12);
  EXPECT_NEAR(s.std, 0.01, 1e-12);  // sqrt((0.0001 + 0 + 0.0001) / 2)
  const auto five = summarize({0.70, 0.71, 0.69, 0.72, 0.70});
  EXPECT_NEAR(five.mean, 0.704, 1e-12);
  EXPECT_NEAR(five.std, 0.01140175425099139, 1e-12);  // sqrt(0.00052 / 4)
  const auto one = summarize({0.5});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean, 0.5);
  EXPECT_DOUBLE_EQ(one.std, 0.0);
  EXPECT_EQ(summarize({}).n, 0);
}

TEST(StatsTest, TwoSidedPMatchesTTableCriticalValues) {
  // Critical values of a t-table: two-sided alpha 0.05 at df 1, 4, 10; alpha 0.01 at df 4.
  EXPECT_NEAR(students_t_two_sided_p(12.706, 1), 0.05, 1e-5);
  EXPECT_NEAR(students_t_two_sided_p(2.776, 4), 0.05, 1e-4);
  EXPECT_NEAR(students_t_two_sided_p(-2.776, 4), 0.05, 1e-4);
  EXPECT_NEAR(students_t_two_sided_p(2.228, 10), 0.05, 1e-4);
  EXPECT_NEAR(students_t_two_sided_p(4.604, 4), 0.01, 1e-5);
  // The same to 10 digits, from the incomplete beta function; and a fractional df.
  EXPECT_NEAR(students_t_two_sided_p(2.776, 4), 0.05002277832, 1e-10);
  EXPECT_NEAR(students_t_two_sided_p(2.0, 7.5), 0.0828969952982, 1e-10);
  EXPECT_DOUBLE_EQ(students_t_two_sided_p(0.0, 3), 1.0);
}

TEST(StatsTest, WelchEqualVariances) {
  const auto r = welch_test({0.69, 0.70, 0.71}, {0.72, 0.73, 0.74});
  ASSERT_TRUE(r.testable);
  EXPECT_NEAR(r.diff, 0.03, 1e-12);
  EXPECT_NEAR(r.t, 3.674234614174767, 1e-9);  // 0.03 / sqrt(2 * 0.0001 / 3)
  EXPECT_NEAR(r.df, 4.0, 1e-9);
  EXPECT_NEAR(r.p, 0.0213116411287567, 1e-10);
  EXPECT_TRUE(r.note.empty());
}

TEST(StatsTest, WelchUnequalVariancesAndSizes) {
  const auto r = welch_test({0.70, 0.71, 0.69, 0.72, 0.70}, {0.74, 0.70, 0.78});
  ASSERT_TRUE(r.testable);
  EXPECT_NEAR(r.diff, 0.036, 1e-12);
  EXPECT_NEAR(r.t, 1.522183990232189, 1e-9);
  EXPECT_NEAR(r.df, 2.1971423019989533, 1e-9);
  EXPECT_NEAR(r.p, 0.256495713354648, 1e-10);
  const auto neg = welch_test({0.8512, 0.8433, 0.8590}, {0.8301, 0.8402});
  EXPECT_NEAR(neg.t, -2.3604100153223206, 1e-9);
  EXPECT_NEAR(neg.df, 2.461280143433405, 1e-9);
  EXPECT_NEAR(neg.p, 0.118304660587637, 1e-10);
}

TEST(StatsTest, WelchDegenerateCases) {
  const auto small = welch_test({0.7}, {0.8, 0.9});
  EXPECT_FALSE(small.testable);
  EXPECT_EQ(small.note, "n too small to test");
  EXPECT_NEAR(small.diff, 0.15, 1e-12);

  const auto same = welch_test({0.7, 0.7, 0.7}, {0.7, 0.7});
  EXPECT_TRUE(same.testable);
  EXPECT_EQ(same.note, "no variance");
  EXPECT_DOUBLE_EQ(same.p, 1.0);

  const auto apart = welch_test({0.7, 0.7}, {0.8, 0.8});
  EXPECT_EQ(apart.note, "no variance");
  EXPECT_DOUBLE_EQ(apart.p, 0.0);
  EXPECT_TRUE(std::isinf(apart.t) && apart.t > 0);

  // One sample without variance: Welch's df falls back to the other sample's n - 1.
  const auto one_sided = welch_test({0.7, 0.7, 0.7}, {0.69, 0.70, 0.71});
  EXPECT_NEAR(one_sided.df, 2.0, 1e-12);
  EXPECT_NEAR(one_sided.p, 1.0, 1e-12);
}
