// torch.save archives: the golden reference state_dict, fixtures assembled by make_fixtures.py, and round trips.
#include <gtest/gtest.h>

#include <caffe2/serialize/inline_container.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "harness/io/checkpoint.h"
#include "harness/io/pickle.h"

using namespace dmdbench;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return std::string(DMDBENCH_FIXTURES_DIR) + "/" + name; }
std::string golden(const std::string& name) { return std::string(DMDBENCH_SHARED_DIR) + "/golden/mosei/" + name; }

template <typename F>
void expect_checkpoint_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no CheckpointError; expected one mentioning: " << part;
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(part), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

// Python's json writes NaN as a bare token; nlohmann wants null.
nlohmann::ordered_json read_summary() {
  std::ifstream in(golden("state_dict_summary.json"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text = std::regex_replace(text, std::regex(R"(\bNaN\b)"), "null");
  return nlohmann::ordered_json::parse(text);
}

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("dmdbench_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(CheckpointRead, GoldenStateDictMatchesPyTorchSummary) {
  const StateDict sd = read_checkpoint(golden("state_dict.pth"));
  const nlohmann::ordered_json summary = read_summary();  // keeps the file's key order
  const auto& tensors = summary["tensors"];
  ASSERT_EQ(sd.size(), 702u);
  ASSERT_EQ(summary["entries"].get<std::size_t>(), 702u);
  int64_t total = 0;
  std::size_t i = 0;
  for (auto it = tensors.begin(); it != tensors.end(); ++it, ++i) {  // json keeps the file's order
    const auto& [name, t] = sd[i];
    ASSERT_EQ(name, it.key()) << i;
    EXPECT_EQ(t.sizes().vec(), it.value()["shape"].get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
    EXPECT_TRUE(t.is_contiguous()) << name;
    total += t.numel();
    const auto& s = it.value()["sum"];
    const double got = t.sum(torch::kFloat64).item<double>();
    if (s.is_null()) {
      EXPECT_TRUE(std::isnan(got)) << name;  // an uninitialised one-element buffer
    } else {
      EXPECT_NEAR(got, s.get<double>(), 1e-6 * std::max(1.0, std::abs(s.get<double>()))) << name;
    }
    const auto& first = it.value()["first"];
    const torch::Tensor flat = t.flatten();
    for (std::size_t k = 0; k < first.size(); ++k) {
      if (first[k].is_null()) continue;
      EXPECT_EQ(flat[static_cast<int64_t>(k)].item<float>(), static_cast<float>(first[k].get<double>())) << name;
    }
  }
  EXPECT_EQ(total, summary["parameters"].get<int64_t>());
  EXPECT_EQ(sd.front().first, "proj_l.weight");
  EXPECT_EQ(sd.back().first, "out_layer.bias");
}

TEST(CheckpointRead, StridesOffsetsSharedStoragesAndDtypes) {
  const StateDict sd = read_checkpoint(fixture("tiny_checkpoint.pth"));
  ASSERT_EQ(sd.size(), 7u);
  std::vector<std::string> names;
  for (const auto& [n, t] : sd) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"layer.weight", "layer.weight_t", "layer.tail", "double", "long", "mask",
                                             "scalar"}));
  const torch::Tensor w = torch::arange(12, torch::kFloat32).mul(0.25).reshape({3, 4});
  EXPECT_TRUE(torch::equal(sd[0].second, w));
  EXPECT_TRUE(torch::equal(sd[1].second, w.t().contiguous()));
  EXPECT_TRUE(sd[1].second.is_contiguous());
  EXPECT_TRUE(torch::equal(sd[2].second, torch::tensor({2.0f, 2.25f, 2.5f, 2.75f}).reshape({2, 2})));
  EXPECT_EQ(sd[3].second.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(torch::equal(sd[3].second, torch::tensor({1.5, -2.5, 3.25}, torch::kFloat64)));
  EXPECT_EQ(sd[4].second.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(sd[4].second, torch::tensor({int64_t{-8}, int64_t{1} << 40})));
  EXPECT_EQ(sd[5].second.scalar_type(), torch::kBool);
  EXPECT_TRUE(torch::equal(sd[5].second, torch::tensor({true, false, true, true}).reshape({2, 2})));
  EXPECT_EQ(sd[6].second.dim(), 0);
  EXPECT_EQ(sd[6].second.item<double>(), 3.25);
  // copies, not views: changing one tensor leaves the one that shared its storage alone
  sd[0].second.zero_();
  EXPECT_EQ(sd[1].second[1][0].item<float>(), 0.25f);
}

TEST(CheckpointRead, ErrorsAreOneLineAndNameThePath) {
  expect_checkpoint_error([] { read_checkpoint(fixture("nope.pth")); },
                          "cannot open file " + fixture("nope.pth") + ": No such file or directory");
  expect_checkpoint_error([] { read_checkpoint(fixture("no_data_pkl.pth")); },
                          fixture("no_data_pkl.pth") + " is not a torch.save archive: no data.pkl");
  expect_checkpoint_error([] { read_checkpoint(fixture("nontensor_checkpoint.pth")); },
                          "entry 'b' is str, expected a tensor");
  expect_checkpoint_error([] { read_checkpoint(fixture("overrun_checkpoint.pth")); },
                          "tensor of size [4,4] with stride [4,1] at offset 0 overruns its storage of 12 elements");
  expect_checkpoint_error([] { read_checkpoint(fixture("truncated_checkpoint.pth")); },
                          fixture("truncated_checkpoint.pth") + " is not a readable torch.save archive");
  expect_checkpoint_error([] { read_checkpoint(fixture("plain.zip")); }, "is not a readable torch.save archive");
  expect_checkpoint_error([] { read_checkpoint(fixture("arrays_p4.pkl")); }, "is not a readable torch.save archive");
  expect_checkpoint_error([] { read_checkpoint(std::string(DMDBENCH_FIXTURES_DIR)); },
                          "cannot read file " + std::string(DMDBENCH_FIXTURES_DIR) + ": not a regular file");
}

TEST(CheckpointWrite, RoundTripOfTheGoldenStateDict) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "round.pth").string();
  const StateDict a = read_checkpoint(golden("state_dict.pth"));
  write_checkpoint(path, a);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const StateDict b = read_checkpoint(path);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    // equal() is false for NaN; compare the bytes
    EXPECT_TRUE(torch::equal(a[i].second.view(torch::kInt32), b[i].second.view(torch::kInt32))) << a[i].first;
  }
  fs::remove_all(dir);
}

TEST(CheckpointWrite, ArchiveLayoutMatchesPythonTorchSave) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "layout.pth").string();
  StateDict sd;
  for (int i = 0; i < 12; ++i) sd.emplace_back("t" + std::to_string(i), torch::full({2}, static_cast<float>(i)));
  sd.emplace_back("d", torch::tensor({1.0, 2.0}, torch::kFloat64).t());
  sd.emplace_back("nc", torch::arange(6, torch::kFloat32).reshape({2, 3}).t());  // non-contiguous input
  sd.emplace_back("i", torch::tensor({int64_t{1} << 40, int64_t{-3}}));
  sd.emplace_back("b", torch::tensor({true, false}));
  sd.emplace_back("empty", torch::zeros({0, 3}));
  sd.emplace_back("scalar", torch::tensor(5.5f));
  write_checkpoint(path, sd);

  caffe2::serialize::PyTorchStreamReader reader(path);
  std::vector<std::string> records = reader.getAllRecords();
  // as Python's torch.save in 1.13: data.pkl, data/<key> in sorted key order, version "3\n"; no byteorder
  ASSERT_EQ(records.size(), sd.size() + 2);
  EXPECT_EQ(records.front(), "data.pkl");
  EXPECT_EQ(records[1], "data/0");
  EXPECT_EQ(records[2], "data/1");
  EXPECT_EQ(records[3], "data/10");
  EXPECT_EQ(records.back(), "version");
  auto [vptr, vsize] = reader.getRecord("version");
  EXPECT_EQ(std::string(static_cast<const char*>(vptr.get()), vsize), "3\n");
  EXPECT_FALSE(reader.hasRecord("byteorder"));
  // the pickle opens like Python's: PROTO 2, collections.OrderedDict() reduce
  auto [pptr, psize] = reader.getRecord("data.pkl");
  const std::string pkl(static_cast<const char*>(pptr.get()), psize);
  EXPECT_EQ(pkl.rfind("\x80\x02" "ccollections\nOrderedDict\n)R(X", 0), 0u);
  const std::string rebuild("ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n", 67);
  EXPECT_NE(pkl.find(rebuild), std::string::npos);

  const StateDict back = read_checkpoint(path);
  ASSERT_EQ(back.size(), sd.size());
  for (std::size_t i = 0; i < sd.size(); ++i) {
    EXPECT_EQ(back[i].first, sd[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), sd[i].second.scalar_type()) << sd[i].first;
    EXPECT_TRUE(torch::equal(back[i].second, sd[i].second)) << sd[i].first;
  }
  fs::remove_all(dir);
}

TEST(CheckpointWrite, FailedWriteLeavesNothing) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "bad.pth").string();
  StateDict sd{{"ok", torch::ones({2})}, {"complex", torch::ones({2}, torch::kComplexFloat)}};
  expect_checkpoint_error([&] { write_checkpoint(path, sd); }, "cannot write a tensor of dtype ComplexFloat");
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  std::ofstream(dir / "plain").put('x');  // a file where a directory would have to be
  expect_checkpoint_error([&] { write_checkpoint((dir / "plain" / "x.pth").string(), {{"a", torch::ones(1)}}); },
                          "cannot write " + (dir / "plain" / "x.pth").string());
  EXPECT_FALSE(fs::exists(dir / "plain" / "x.pth"));
  fs::remove_all(dir);
}
