// Whole-file writes that never leave a half-written file: PATH.tmp.PID, flushed, then renamed over PATH.
#pragma once

#include <string>

namespace dmdbench::reports {

// Creates missing parent directories. Throws ReportError naming the path on any failure (the old file, if
// any, is left as it was).
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace dmdbench::reports
