// The regression gate bites: a smoke run with the task loss switched off (--set w_task=0) fails `regress` against
// the committed baseline, and the failing lines name the variant and the metrics.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace {

struct Result {
  int code = -1;
  std::string out;
};

Result run(const std::string& args) {
  const std::string cmd = std::string(DMDBENCH_BINARY) + " " + args + " 2>&1";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

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
