#include "harness/version.h"

namespace dmdbench {

const char* build_git_commit() { return DMDBENCH_GIT_COMMIT; }
const char* build_version() { return DMDBENCH_VERSION; }

}  // namespace dmdbench
