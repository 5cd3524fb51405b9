// The house's arrows, checked: every #include "..." between the project's folders must point down the data flow
// (docs/architecture.md), and the folders that stay free of LibTorch include none of it. Reads the sources as
// text; tests/ and build output are not rooms.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Bottom to top: a room may include itself and the rooms before it.
const std::vector<std::string> kFloors = {
    "results", "models",  "harness/io", "harness/experiment", "ablations",   "baselines",
    "reports", "harness/data", "harness/training", "bench", "harness/cli"};

// Rooms (or single files) that must not include LibTorch.
const std::vector<std::string> kTorchFree = {"results",
                                             "reports",
                                             "ablations",
                                             "harness/experiment",
                                             "harness/io/pickle",
                                             "harness/io/safetensors.",
                                             "harness/io/sha256",
                                             "harness/io/output_file",
                                             "harness/cli/main.cpp",
                                             "harness/cli/verb",
                                             "harness/cli/store_verbs",
                                             "harness/cli/report_verbs",
                                             "harness/cli/worker_messages",
                                             "harness/cli/worker_pool",
                                             "harness/cli/ownership",
                                             "harness/cli/slurm",
                                             "models/kernels",
                                             "models/blas_core",
                                             "models/cpu_features"};

std::string room_of(const std::string& rel) {
  const auto first = rel.find('/');
  if (first == std::string::npos) return "";
  const std::string top = rel.substr(0, first);
  if (top == "harness") {
    const auto second = rel.find('/', first + 1);
    return second == std::string::npos ? top : rel.substr(0, second);
  }
  return top;
}

int floor_of(const std::string& room) {
  const auto it = std::find(kFloors.begin(), kFloors.end(), room);
  return it == kFloors.end() ? -1 : static_cast<int>(it - kFloors.begin());
}

struct Source {
  std::string rel;
  std::vector<std::string> includes;  // quoted includes
  bool torch = false;                 // includes <torch/...>, <ATen/...> or <c10/...>
};

std::vector<Source> sources() {
  const fs::path root = DMDBENCH_SOURCE_DIR;
  std::vector<Source> out;
  const std::regex quoted(R"(^\s*#\s*include\s+"([^"]+)\")"), torch(R"(^\s*#\s*include\s+<(torch|ATen|c10|caffe2)/)");
  for (const char* dir : {"results", "models", "harness", "ablations", "baselines", "reports", "bench"}) {
    for (const auto& e : fs::recursive_directory_iterator(root / dir)) {
      const auto ext = e.path().extension();
      if (!e.is_regular_file() || (ext != ".cpp" && ext != ".h")) continue;
      Source s;
      s.rel = fs::relative(e.path(), root).string();
      std::ifstream in(e.path());
      for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_search(line, m, quoted)) s.includes.push_back(m[1]);
        if (std::regex_search(line, torch)) s.torch = true;
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace

TEST(Architecture, EveryRoomIsOnAFloor) {
  for (const auto& s : sources()) EXPECT_GE(floor_of(room_of(s.rel)), 0) << s.rel << " is in no known room";
}

TEST(Architecture, IncludesOnlyGoDown) {
  int arrows = 0;
  for (const auto& s : sources()) {
    const int from = floor_of(room_of(s.rel));
    for (const auto& inc : s.includes) {
      const std::string to_room = room_of(inc);
      const int to = floor_of(to_room);
      if (to < 0) continue;  // generated headers, headers of other projects
      ++arrows;
      EXPECT_LE(to, from) << s.rel << " includes " << inc << ": " << room_of(s.rel) << " may not include "
                          << to_room << ", which lies above it";
    }
  }
  EXPECT_GT(arrows, 100) << "the includes were not read";
}

TEST(Architecture, TorchFreeRoomsIncludeNoLibTorch) {
  int checked = 0;
  for (const auto& s : sources()) {
    const bool torch_free = std::any_of(kTorchFree.begin(), kTorchFree.end(),
                                        [&](const std::string& p) { return s.rel.rfind(p, 0) == 0; });
    if (!torch_free) continue;
    ++checked;
    EXPECT_FALSE(s.torch) << s.rel << " includes LibTorch";
    for (const auto& inc : s.includes) {
      if (inc.rfind("models/", 0) == 0 && inc != "models/kernels.h" && inc != "models/blas_core.h" &&
          inc != "models/cpu_features.h")
        ADD_FAILURE() << s.rel << " includes " << inc << ", which includes LibTorch";
    }
  }
  EXPECT_GT(checked, 20);
}

TEST(Architecture, TheCheckRejectsAnUpwardInclude) {
  // The rule itself: results/ including harness/cli would run back up.
  EXPECT_GT(floor_of(room_of("harness/cli/sweep.h")), floor_of(room_of("results/store.h")));
  EXPECT_EQ(room_of("harness/training/step.h"), "harness/training");
  EXPECT_EQ(room_of("models/dmd.h"), "models");
}
