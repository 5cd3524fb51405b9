// The paper's Table 3 end to end: `run-ablation --variants paper-table3` on synthetic unaligned MOSI
// completes and its report has the Table 3 section with our rows beside the published ones, saying why they
// do not compare; and the one-line MulT setting note on aligned data. Tiny: 8 samples per split, one epoch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/cli_support.h"

namespace fs = std::filesystem;
using dmdbench::testing::run_dmdbench;

namespace {

// The lines of `text` from the one starting with `from` up to (not including) the next "### " heading.
std::string section(const std::string& text, const std::string& from) {
  const auto a = text.find(from);
  if (a == std::string::npos) return "";
  const auto b = text.find("\n### ", a + from.size());
  return text.substr(a, b == std::string::npos ? std::string::npos : b - a);
}

}  // namespace

TEST(CliTable3, SmokeSweepOnSyntheticUnalignedMosiHasTheTable3Section) {
  const fs::path dir = dmdbench::testing::fresh_dir("t3", "sweep");
  const fs::path db = dir / "t3.sqlite", report = dir / "t3.md";
  const auto r = run_dmdbench(
      "run-ablation --variants paper-table3 --dataset synthetic-mosi-unaligned@0.001 --profile smoke --seeds "
      "1111 "
      "--set max_epochs=1 --jobs 2 --db " +
      db.string() + " --report " + report.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("MulT runs here on aligned data"), std::string::npos) << r.out;  // no MulT, no note
  const std::string md = dmdbench::testing::read_text(report);
  const std::string t3 = section(md, "### Paper Table 3");
  ASSERT_FALSE(t3.empty()) << md;
  std::cout << t3 << "\n";
  // Our side and the paper's: setting and text protocol of both, and the plain verdict.
  EXPECT_NE(t3.find("Ours: `synthetic-mosi-unaligned@0.001`, unaligned, text features (768-d)"),
            std::string::npos)
      << t3;
  EXPECT_NE(t3.find("unaligned glove"), std::string::npos) << t3;
  EXPECT_NE(
      t3.find(
          "**Not comparable with the paper's numbers**: our data is synthetic, not CMU-MOSI; our text input "
          "is features (768-d), the paper's 300-d GloVe features; profile smoke"),
      std::string::npos)
      << t3;
  EXPECT_EQ(t3.find("our setting is"), std::string::npos) << "the setting is unaligned on both sides\n" << t3;
  // One row per Table 3 row, each with its variant, one completed seed and the paper's MOSI Acc-7 / F1.
  const char* rows[6][3] = {{"| 1 | ✓ | ✓ | ✓ | ✓ | `t3-full` | 1 |", "| 41.9 | 83.5 |", ""},
                            {"| 2 | ✓ | ✓ | ✓ | × | `t3-no-heterogd` | 1 |", "| 38.8 | 81.1 |", ""},
                            {"| 3 | ✓ | ✓ | × | ✓ | `t3-no-ca` | 1 |", "| 37.5 | 80.6 |", ""},
                            {"| 4 | ✓ | ✓ | × | × | `t3-fd-homogd` | 1 |", "| 37.2 | 80.8 |", ""},
                            {"| 5 | ✓ | × | × | × | `t3-fd-only` | 1 |", "| 34.7 | 79.3 |", ""},
                            {"| 6 | × | × | × | × | `t3-none` | 1 |", "| 32.4 | 79.0 |", ""}};
  for (const auto& row : rows) {
    const auto at = t3.find(row[0]);
    ASSERT_NE(at, std::string::npos) << row[0] << "\n" << t3;
    const std::string line = t3.substr(at, t3.find('\n', at) - at);
    EXPECT_NE(line.find(row[1]), std::string::npos) << line;
  }
  // The legend names each variant's Table 3 row.
  EXPECT_NE(
      md.find("| `t3-no-ca` | Table 3 row 3 (FD ✓, HomoGD ✓, CA ×, HeteroGD ✓): cross_modal_attention off"),
      std::string::npos)
      << md;
  EXPECT_NE(md.find("· unaligned ·"), std::string::npos) << "the group's title names the setting\n" << md;
  fs::remove_all(dir);
}

TEST(CliTable3, MulTOnAlignedDataGetsOneLineAboutMmsaUnalignedNumbers) {
  const fs::path dir = dmdbench::testing::fresh_dir("t3", "note");
  // A shard that holds none of the plan's runs: the note is printed before anything runs.
  const auto aligned = run_dmdbench("run-ablation --variants dmd,mult --seeds 1111 --shard 2/3 --db " +
                                    (dir / "a.sqlite").string());
  EXPECT_EQ(aligned.code, 0) << aligned.out;
  EXPECT_NE(
      aligned.out.find("note: MulT runs here on aligned data (synthetic-mosi); MMSA trains MulT on unaligned "
                       "data (unaligned_50.pkl) and MMSA's published MulT numbers are unaligned"),
      std::string::npos)
      << aligned.out;
  const auto unaligned = run_dmdbench(
      "run-ablation --variants mult --dataset synthetic-mosi-unaligned --seeds 1111 "
      "--shard 1/2 --db " +
      (dir / "b.sqlite").string());
  EXPECT_EQ(unaligned.code, 0) << unaligned.out;
  EXPECT_EQ(unaligned.out.find("note: MulT"), std::string::npos) << unaligned.out;
  const auto no_mult = run_dmdbench("run-ablation --variants dmd --seeds 1111 --shard 1/2 --db " +
                                    (dir / "c.sqlite").string());
  EXPECT_EQ(no_mult.out.find("note: MulT"), std::string::npos) << no_mult.out;
  fs::remove_all(dir);
}
