// Every file dmdbench writes (reports, baselines, predictions, checkpoints) is written whole or not at all: into a
// temporary file in the target's directory, flushed to disk, then renamed over the target. The target may be
// missing or a regular file; a symbolic link is followed (the file it names is replaced and the link stays);
// anything else (a directory, a device such as /dev/null, a FIFO, a socket) is refused. Every failure (a full
// disk, a read-only directory, an I/O error) is one sentence naming the path, and the temporary file is removed.
// No LibTorch.
#pragma once

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>

namespace dmdbench {

struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Creates missing parent directories.
void write_file_atomically(const std::string& path, const std::string& content);

// The same for content produced in pieces: `produce` calls `sink(data, size)` as often as it likes.
using FileSink = std::function<void(const void* data, std::size_t size)>;
void write_file_atomically(const std::string& path, const std::function<void(const FileSink& sink)>& produce);

}  // namespace dmdbench
