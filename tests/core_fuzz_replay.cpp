// Replays the fuzz corpora (fixture pickles, crafted inputs and anything the fuzzer once crashed on) through
// the unpickler and the safetensors parser in the normal build: every file must parse or raise the reader's
// error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "harness/io/pickle.h"
#include "harness/io/safetensors.h"

namespace pk = dmdbench::pickle;

TEST(FuzzReplay, EveryCorpusFileParsesOrRaisesPickleError) {
  const std::filesystem::path dir = std::filesystem::path(DMDBENCH_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
  const pk::GlobalPolicy policy = pk::GlobalPolicy::numpy();
  int files = 0, parsed = 0, refused = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    std::ifstream in(entry.path(), std::ios::binary);
    auto bytes =
        std::make_shared<std::string>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    try {
      pk::loads(reinterpret_cast<const std::byte*>(bytes->data()), bytes->size(), bytes, policy,
                [](const pk::Value& pid) { return pid; });
      ++parsed;
    } catch (const pk::PickleError& e) {
      ++refused;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << entry.path();
    } catch (const std::exception& e) {
      ADD_FAILURE() << entry.path() << " raised a non-PickleError: " << e.what();
    }
  }
  EXPECT_GE(files, 20);
  EXPECT_GT(parsed, 10);  // the fixture pickles
  EXPECT_GT(refused, 3);  // hostile, truncated, wrong magic, crafted
  std::cout << "[ corpus ] " << files << " files: " << parsed << " parsed, " << refused << " refused\n";
}

TEST(FuzzReplay, EverySafetensorsCorpusFileParsesOrRaisesSafetensorsError) {
  namespace st = dmdbench::safetensors;
  const std::filesystem::path dir =
      std::filesystem::path(DMDBENCH_SOURCE_DIR) / "tests" / "fuzz" / "corpus_safetensors";
  int files = 0, parsed = 0, refused = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto* data = reinterpret_cast<const std::byte*>(bytes.data());
    const std::string name = entry.path().filename().string();
    const bool valid = name.rfind("valid_", 0) == 0, bad = name.rfind("bad_", 0) == 0;  // else either
    try {
      const st::Header h = st::parse(data, bytes.size(), entry.path().string());
      uint64_t end = h.data_start;
      for (const st::Entry& e : h.tensors) {  // the ranges tile the data and fit their shapes
        EXPECT_EQ(e.begin, end) << entry.path();
        EXPECT_EQ(static_cast<uint64_t>(e.numel()) * st::dtype_size(e.dtype), e.end - e.begin)
            << entry.path();
        end = e.end;
        if (st::is_float(e.dtype)) {
          std::vector<float> out(static_cast<size_t>(e.numel()));
          st::to_float32(e, data, out.data());
        }
      }
      EXPECT_EQ(end, bytes.size()) << entry.path();
      EXPECT_FALSE(bad) << entry.path() << " parsed";
      ++parsed;
    } catch (const st::SafetensorsError& e) {
      ++refused;
      EXPECT_FALSE(valid) << entry.path() << ": " << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << entry.path();
    } catch (const std::exception& e) {
      ADD_FAILURE() << entry.path() << " raised a non-SafetensorsError: " << e.what();
    }
  }
  EXPECT_GE(files, 20);
  EXPECT_GE(parsed, 5);    // valid_*
  EXPECT_GE(refused, 15);  // bad_* and anything the fuzzer found
  std::cout << "[ corpus ] " << files << " safetensors files: " << parsed << " parsed, " << refused
            << " refused\n";
}
