// The build's identity, for provenance. Only version.cpp sees the configure-time defines, so a new commit
// recompiles one small file instead of every target.
#pragma once

namespace dmdbench {

const char* build_git_commit();  // short commit of the source tree at configure time, or "unknown"
const char* build_version();     // the project version

}  // namespace dmdbench
