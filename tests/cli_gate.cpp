// The regression gate bites: a smoke run with the task loss switched off (--set w_task=0) fails `regress` against
// the committed baseline, and the failing lines name the variant and the metrics.
#include <gtest/gtest.h>

#include "tests/cli_support.h"
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace {

using Result = dmdbench::testing::CommandResult;
Result run(const std::string& args) { return dmdbench::testing::run_dmdbench(args); }

}  // namespace

TEST(CliGate, BrokenTaskLossFailsRegressNamingMetrics) {
  const auto db = std::filesystem::temp_directory_path() / ("dmdbench_gate_" + std::to_string(getpid()) + ".sqlite");
  std::filesystem::remove(db);
  const std::string baseline = std::string(DMDBENCH_SOURCE_DIR) + "/tests/baselines/smoke-synthetic-mosi.json";
  const Result train = run("run-ablation --profile smoke --variants dmd --seeds 1111,1112 --set w_task=0 --no-report --db " +
                           db.string());
  ASSERT_EQ(train.code, 0) << train.out;
  const Result gate = run("regress --db " + db.string() + " --baseline " + baseline);
  EXPECT_EQ(gate.code, 1) << gate.out;
  EXPECT_NE(gate.out.find("dmd mae: baseline"), std::string::npos) << gate.out;
  EXPECT_NE(gate.out.find("dmd corr: baseline"), std::string::npos) << gate.out;
  EXPECT_NE(gate.out.find("REGRESSION"), std::string::npos) << gate.out;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
}
