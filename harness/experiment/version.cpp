#include "harness/experiment/version.h"

#include "dmd_git_commit.h"  // DMDBENCH_GIT_COMMIT, generated at build time

namespace dmdbench {

const char* build_git_commit() { return DMDBENCH_GIT_COMMIT; }

}  // namespace dmdbench
