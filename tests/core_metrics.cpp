// Metrics against MMSA's own code run in numpy (scripts/metrics_reference.py) and hand-derived cases.
#include <gtest/gtest.h>

#include <cmath>

#include "results/metrics.h"

using dmdbench::results::regression_metrics;
namespace dr = dmdbench::results;

TEST(Metrics, MatchesMmsaOnMixedCase) {
  // scripts/metrics_reference.py, first case.
  const auto m = regression_metrics({0.5f, -1.2f, 0.0f, 2.6f, -0.4f, 1.5f, 2.5f, -2.5f},
                                    {1.0f, -1.0f, 0.0f, 3.0f, 0.4f, 2.5f, 2.0f, -3.0f});
  EXPECT_DOUBLE_EQ(m["mae"], 0.4875);
  EXPECT_DOUBLE_EQ(m["corr"], 0.9622);
  EXPECT_DOUBLE_EQ(m["acc7"], 0.75);
  EXPECT_DOUBLE_EQ(m["acc5"], 0.875);
  EXPECT_DOUBLE_EQ(m["acc3"], 0.875);
  EXPECT_DOUBLE_EQ(m["acc2_non0"], 0.8571);
  EXPECT_DOUBLE_EQ(m["f1_non0"], 0.8635);
  EXPECT_DOUBLE_EQ(m["acc2_has0"], 0.875);
  EXPECT_DOUBLE_EQ(m["f1_has0"], 0.8818);
}

TEST(Metrics, ZeroPredictionIsNegativeInNon0AndNonNegativeInHas0) {
  // scripts/metrics_reference.py, second case: p == 0 on a positive truth is wrong in non0, right in has0.
  const auto m = regression_metrics({0.0f, 0.3f, -0.2f, 1.0f}, {0.0f, -0.6666667f, 0.0f, 1.3333334f});
  EXPECT_DOUBLE_EQ(m["mae"], 0.375);
  EXPECT_DOUBLE_EQ(m["corr"], 0.7188);
  EXPECT_DOUBLE_EQ(m["acc2_non0"], 0.5);
  EXPECT_DOUBLE_EQ(m["f1_non0"], 0.3333);
  EXPECT_DOUBLE_EQ(m["acc2_has0"], 0.5);
  EXPECT_DOUBLE_EQ(m["f1_has0"], 0.5);
  EXPECT_DOUBLE_EQ(m["acc7"], 0.75);
}

TEST(Metrics, RoundsHalfToEven) {
  // np.round(0.5) == 0, np.round(1.5) == 2, np.round(-2.5) == -2: with truth 0, 2, -2 every class matches.
  EXPECT_DOUBLE_EQ(dr::multiclass_acc({0.5f, 1.5f, -2.5f}, {0.0f, 2.0f, -2.0f}, 3.0), 1.0);
  // std::round would give 1, 2, -3: two misses. Clipping to [-2, 2] first makes -2.5 -> -2.
  EXPECT_DOUBLE_EQ(dr::multiclass_acc({2.6f, -3.0f}, {2.0f, -2.0f}, 2.0), 1.0);
  EXPECT_DOUBLE_EQ(dr::round4(0.12345), 0.1234);  // 1234.5 -> 1234 (half to even)
  EXPECT_DOUBLE_EQ(dr::round4(0.12355), 0.1236);
}

TEST(Metrics, WeightedF1UndefinedClassCountsAsZero) {
  // All truths positive, all predictions negative: class 1 F1 = 0 (tp 0), class 0 has no support -> 0.
  EXPECT_DOUBLE_EQ(dr::weighted_f1({1, 1, 1}, {0, 0, 0}), 0.0);
  // Perfect: 1. Hand case: truth 1,1,0,0 pred 1,0,0,0: F1(1)=2/3, F1(0)=0.8, weighted (2*2/3 + 2*0.8)/4.
  EXPECT_DOUBLE_EQ(dr::weighted_f1({1, 0, 1}, {1, 0, 1}), 1.0);
  EXPECT_NEAR(dr::weighted_f1({1, 1, 0, 0}, {1, 0, 0, 0}), (2 * 2.0 / 3 + 2 * 0.8) / 4, 1e-12);
}

TEST(Metrics, CorrelationOfConstantIsNaN) {
  EXPECT_TRUE(std::isnan(dr::pearson({1.f, 1.f, 1.f}, {0.f, 1.f, 2.f})));
  EXPECT_NEAR(dr::pearson({1.f, 2.f, 3.f}, {2.f, 4.f, 6.f}), 1.0, 1e-12);
}

TEST(Metrics, PredictionSpreadAgainstTheLabels) {
  // Hand cases: predictions half as spread as the labels (population std 1 vs 2) give 0.5; a constant
  // prediction 0; the ratio is the same with ddof 0 or 1. Beyond ±1.5 is strict: 1.5 itself is inside.
  EXPECT_DOUBLE_EQ(dr::pred_std_ratio({1.f, -1.f, 1.f, -1.f}, {2.f, -2.f, 2.f, -2.f}), 0.5);
  EXPECT_DOUBLE_EQ(dr::pred_std_ratio({0.3f, 0.3f, 0.3f}, {-1.f, 0.f, 1.f}), 0.0);
  EXPECT_TRUE(std::isnan(dr::pred_std_ratio({0.f, 1.f}, {1.f, 1.f})));
  EXPECT_DOUBLE_EQ(dr::fraction_beyond({0.5f, -1.6f, 1.5f, 2.0f}, 1.5), 0.5);
  const auto m = regression_metrics({0.5f, -1.6f, 1.5f, 2.0f}, {3.f, -3.f, 0.f, 1.f});
  EXPECT_DOUBLE_EQ(m["pred_beyond_1_5"], 0.5);
  EXPECT_DOUBLE_EQ(m["label_beyond_1_5"], 0.5);
  // std(pred) = sqrt(mean of squared deviations) with mean 0.6: deviations -0.1, -2.2, 0.9, 1.4 -> 7.62/4;
  // std(label) with mean 0.25: 2.75, -3.25, -0.25, 0.75 -> 18.75/4; ratio sqrt(7.62/18.75) = 0.637495... -> 0.6375.
  EXPECT_DOUBLE_EQ(m["pred_std_ratio"], 0.6375);
}
