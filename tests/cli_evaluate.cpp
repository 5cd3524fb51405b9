// `dmdbench evaluate` on the golden files reproduces the reference's eval outputs, row by row.
#include <gtest/gtest.h>

#include "tests/cli_support.h"
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    rows.push_back(cells);
  }
  return rows;
}

// `dmdbench evaluate` on one golden set: every column of expected_eval.csv within max(abs, rel*|want|).
void check_golden_eval(const std::string& set, std::size_t rows, double rel, double abs) {
  const std::string golden = std::string(DMDBENCH_SHARED_DIR) + "/golden/" + set + "/";
  const auto out = std::filesystem::temp_directory_path() / ("dmdbench_eval_" + std::to_string(getpid()) + ".csv");
  const std::string cmd = std::string(DMDBENCH_BINARY) + " evaluate --device cpu --config mosei --checkpoint " +
                          golden + "state_dict.pth --data " + golden + "data.pkl --predictions " + out.string() +
                          " > /dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const auto ours = read_csv(out.string()), expected = read_csv(golden + "expected_eval.csv");
  ASSERT_EQ(ours.size(), rows + 1);
  ASSERT_EQ(expected.size(), rows + 1);
  EXPECT_EQ(ours[0][0], "id");
  EXPECT_EQ(ours[0][2], "prediction");
  double worst = 0;
  for (std::size_t r = 1; r < ours.size(); ++r) {
    ASSERT_EQ(ours[r].size(), 10u);
    EXPECT_EQ(ours[r][0], expected[r][0]);                        // file order, same ids
    EXPECT_NEAR(std::stod(ours[r][1]), std::stod(expected[r][1]), 1e-6);  // label (float32, printed to 9 digits)
    for (std::size_t c = 2; c < 10; ++c) {
      const double a = std::stod(ours[r][c]), b = std::stod(expected[r][c]);
      EXPECT_LE(std::abs(a - b), std::max(abs, rel * std::abs(b))) << "row " << r << " " << expected[0][c];
      if (b != 0) worst = std::max(worst, std::abs(a - b) / std::abs(b));
    }
  }
  std::cout << "[golden evaluate " << set << "] max rel err " << worst << "\n";
  std::filesystem::remove(out);
}

}  // namespace

TEST(CliEvaluate, GoldenCheckpointReproducesExpectedEval) {
  check_golden_eval("mosei", 16, 1e-5, 1e-6);
}

// The unaligned golden set (lengths 50/500/500): the model is sized from the file's lengths, the setting
// detected.
TEST(CliEvaluate, UnalignedGoldenCheckpointReproducesExpectedEval) {
  check_golden_eval("mosei-unaligned", 12, 1e-4, 1e-6);
}

TEST(CliEvaluate, CheckpointOfTheWrongFamilyIsRefused) {
  // MOSEI data and checkpoint under the MOSI configuration: the data loads (widths come from the data), the
  // model is MOSI's (d = 50), and the strict load names the mis-shaped tensors.
  const std::string golden = std::string(DMDBENCH_SHARED_DIR) + "/golden/mosei/";
  const auto r = dmdbench::testing::run_dmdbench("evaluate --device cpu --config mosi --checkpoint " + golden +
                                                 "state_dict.pth --data " + golden + "data.pkl");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("state dict does not match the model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("proj_l.weight expected [50,768,5] got [30,768,5]"), std::string::npos) << r.out;
}
