#include "harness/io/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace dmdbench {

namespace {

namespace fs = std::filesystem;

std::string reason(int err) {
  if (err == ENOSPC) return "no space left on the device";
  if (err == EDQUOT) return "disk quota exceeded";
  return std::strerror(err);
}

// The file a write to `path` replaces: the path itself, or what its symbolic links lead to.
std::string resolve_target(const std::string& path) {
  std::error_code ec;
  const auto link = fs::symlink_status(path, ec);
  if (fs::is_symlink(link) && !fs::exists(fs::status(path, ec)))
    throw FileError(fmt::format("cannot write {}: it is a dangling symbolic link", path));
  if (ec || !fs::exists(link)) return path;
  const std::string target = fs::is_symlink(link) ? fs::canonical(path, ec).string() : path;
  if (ec) throw FileError(fmt::format("cannot write {}: cannot follow its symbolic link: {}", path, ec.message()));
  const auto st = fs::status(target, ec);
  if (!fs::is_regular_file(st))
    throw FileError(fmt::format("cannot write {}: it exists and is not a regular file ({})", path,
                                fs::is_directory(st)         ? "a directory"
                                : fs::is_character_file(st)  ? "a character device"
                                : fs::is_block_file(st)      ? "a block device"
                                : fs::is_fifo(st)            ? "a FIFO"
                                : fs::is_socket(st)          ? "a socket"
                                                             : "a special file"));
  return target;
}

class TempFile {
 public:
  explicit TempFile(const std::string& target, const std::string& shown) : shown_(shown) {
    const fs::path dir = fs::path(target).parent_path();
    std::error_code ec;
    if (!dir.empty() && !fs::exists(dir, ec)) {
      fs::create_directories(dir, ec);
      if (ec) throw FileError(fmt::format("cannot write {}: cannot create directory {}: {}", shown, dir.string(),
                                          ec.message()));
    }
    path_ = (dir.empty() ? fs::path(".") : dir) / fmt::format(".{}.tmp.{}", fs::path(target).filename().string(),
                                                              ::getpid());
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw FileError(fmt::format("cannot write {}: {}", shown, reason(errno)));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  void write(const void* data, std::size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::write(fd_, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw FileError(fmt::format("cannot write {}: {}", shown_, reason(errno)));
      }
      p += n, size -= static_cast<std::size_t>(n);
    }
  }
  void commit(const std::string& target) {
    if (::fsync(fd_) != 0) throw FileError(fmt::format("cannot write {}: {}", shown_, reason(errno)));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw FileError(fmt::format("cannot write {}: {}", shown_, reason(errno)));
    if (::rename(path_.c_str(), target.c_str()) != 0)
      throw FileError(fmt::format("cannot write {}: {}", shown_, reason(errno)));
    committed_ = true;
  }

 private:
  std::string shown_;
  fs::path path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(const FileSink& sink)>& produce) {
  const std::string target = resolve_target(path);
  TempFile tmp(target, path);
  produce([&](const void* data, std::size_t size) { tmp.write(data, size); });
  tmp.commit(target);
}

void write_file_atomically(const std::string& path, const std::string& content) {
  write_file_atomically(path, [&](const FileSink& sink) { sink(content.data(), content.size()); });
}

}  // namespace dmdbench
