// The build's identity, for provenance. Only version.cpp sees the generated header, so a new commit
// recompiles one small file instead of every target.
#pragma once

namespace dmdbench {

const char* build_git_commit();  // short commit of the source tree at build time ("-dirty" if changed), or "unknown"

}  // namespace dmdbench
