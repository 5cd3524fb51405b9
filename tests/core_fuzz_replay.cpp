// Replays the fuzz corpus (fixture pickles, crafted inputs and anything the fuzzer once crashed on) through the
// unpickler in the normal build: every file must parse or raise PickleError.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "harness/io/pickle.h"

namespace pk = dmdbench::pickle;

TEST(FuzzReplay, EveryCorpusFileParsesOrRaisesPickleError) {
  const std::filesystem::path dir = std::filesystem::path(DMDBENCH_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
  const pk::GlobalPolicy policy = pk::GlobalPolicy::numpy();
  int files = 0, parsed = 0, refused = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    std::ifstream in(entry.path(), std::ios::binary);
    auto bytes = std::make_shared<std::string>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
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
  EXPECT_GT(parsed, 10);   // the fixture pickles
  EXPECT_GT(refused, 3);   // hostile, truncated, wrong magic, crafted
  std::cout << "[ corpus ] " << files << " files: " << parsed << " parsed, " << refused << " refused\n";
}
