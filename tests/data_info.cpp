// `data info` and `data inspect-checkpoint` output.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <sstream>

#include "harness/io/checkpoint.h"
#include "harness/data/data_info.h"
#include "harness/data/dataset.h"
#include "harness/io/sha256.h"

using namespace dmdbench;

namespace {
std::string fixture(const std::string& name) { return std::string(DMDBENCH_FIXTURES_DIR) + "/" + name; }
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

TEST(DataInfo, ReportsNaNInsteadOfRefusing) {
  std::ostringstream out;
  EXPECT_EQ(data_info(fixture("mmsa_nan.pkl"), out), 0);
  const std::string s = out.str();
  EXPECT_TRUE(has(s, "dataset  mosi:" + fixture("mmsa_nan.pkl") + " (family mosi, aligned")) << s;
  EXPECT_TRUE(has(s, "sha256   " + sha256_file(fixture("mmsa_nan.pkl")) + " (of the file)")) << s;
  EXPECT_TRUE(has(s, "valid  vision           2          0          0")) << s;
  EXPECT_TRUE(has(s, "test   text             1          0          0")) << s;
  EXPECT_TRUE(has(s, "[2,768] f32")) << s;
}

TEST(DataInfo, LabelStatsAndDtypes) {
  std::ostringstream out;
  data_info(fixture("mmsa_unaligned_p2.pkl"), out);
  const std::string s = out.str();
  // train labels [0, -0] (float64, zeros 100%); audio stored as float64
  EXPECT_TRUE(has(s, "[5,5] f64")) << s;
  EXPECT_TRUE(has(s, "100.0%")) << s;
  EXPECT_TRUE(has(s, "unaligned")) << s;
  EXPECT_TRUE(has(s, "valid  audio            0          1          0")) << s;
}

TEST(DataInfo, SyntheticAndTiming) {
  std::ostringstream out;
  const auto t0 = std::chrono::steady_clock::now();
  data_info("synthetic-mosi", out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ timing ] data info synthetic-mosi (full size): " << seconds << " s\n" << out.str();
  const std::string s = out.str();
  EXPECT_TRUE(has(s, "(of the generator's parameters)")) << s;
  EXPECT_TRUE(has(s, "train    1284  [50,768] f32")) << s;
  EXPECT_TRUE(has(s, "test      686")) << s;
  EXPECT_THROW(data_info("synthetic-nope", out), DataError);
}

TEST(DataInfo, InspectsTheGoldenCheckpoint) {
  std::ostringstream out;
  EXPECT_EQ(inspect_checkpoint(std::string(DMDBENCH_SHARED_DIR) + "/golden/mosei/state_dict.pth", out), 0);
  const std::string s = out.str();
  EXPECT_TRUE(has(s, "702 tensors, 1792802 elements in all")) << s;
  EXPECT_TRUE(has(s, "proj_l.weight")) << s;
  EXPECT_TRUE(has(s, "\nproj_l.weight      ")) << s;
  EXPECT_TRUE(has(s, "  [30,768,5]       float32\n")) << s;
  EXPECT_THROW(inspect_checkpoint(fixture("no_data_pkl.pth"), out), CheckpointError);
}
