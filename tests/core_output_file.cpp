// Output files: written whole or not at all; devices, FIFOs and directories refused; symbolic links followed;
// a full disk (here: the file-size limit) is one sentence and leaves the old file and no temporary file.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/io/output_file.h"

namespace fs = std::filesystem;
using dmdbench::FileError;
using dmdbench::write_file_atomically;

namespace {

struct Dir {
  fs::path path;
  Dir() {
    std::string tmpl = (fs::temp_directory_path() / "dmd_out_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~Dir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const FileError& e) {
    return e.what();
  }
  return "";
}

std::size_t entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST(OutputFile, WritesWholeAndReplaces) {
  Dir d;
  const auto p = d.path / "sub" / "out.csv";
  write_file_atomically(p.string(), "first\n");
  write_file_atomically(p.string(), "second\n");
  EXPECT_EQ(slurp(p), "second\n");
  EXPECT_EQ(entries(d.path / "sub"), 1u) << "no temporary file left";
}

TEST(OutputFile, RefusesWhatIsNotARegularFile) {
  Dir d;
  EXPECT_EQ(error_of([] { write_file_atomically("/dev/null", "x"); }),
            "cannot write /dev/null: it exists and is not a regular file (a character device)");
  const auto fifo = d.path / "fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { write_file_atomically(fifo.string(), "x"); }),
            "cannot write " + fifo.string() + ": it exists and is not a regular file (a FIFO)");
  EXPECT_EQ(error_of([&] { write_file_atomically(d.path.string(), "x"); }),
            "cannot write " + d.path.string() + ": it exists and is not a regular file (a directory)");
  EXPECT_TRUE(fs::is_fifo(fifo));
  const auto dangling = d.path / "dangling";
  fs::create_symlink(d.path / "nowhere", dangling);
  EXPECT_EQ(error_of([&] { write_file_atomically(dangling.string(), "x"); }),
            "cannot write " + dangling.string() + ": it is a dangling symbolic link");
}

TEST(OutputFile, FollowsASymbolicLink) {
  Dir d;
  const auto target = d.path / "real.txt", link = d.path / "link.txt";
  write_file_atomically(target.string(), "old");
  fs::create_symlink(target, link);
  write_file_atomically(link.string(), "new");
  EXPECT_TRUE(fs::is_symlink(link)) << "the link stays";
  EXPECT_EQ(slurp(target), "new");
}

TEST(OutputFile, AFullDiskIsOneSentenceAndLeavesTheOldFile) {
  // The file-size limit makes write() fail with EFBIG the way a full disk makes it fail with ENOSPC.
  Dir d;
  const auto p = d.path / "out.bin";
  write_file_atomically(p.string(), "old content");
  const pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{1024, 1024};
    setrlimit(RLIMIT_FSIZE, &lim);
    try {
      write_file_atomically(p.string(), std::string(4096, 'x'));
    } catch (const FileError& e) {
      _exit(std::string(e.what()) == "cannot write " + p.string() + ": File too large" ? 0 : 2);
    }
    _exit(1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(slurp(p), "old content");
  EXPECT_EQ(entries(d.path), 1u) << "the temporary file was removed";
}
