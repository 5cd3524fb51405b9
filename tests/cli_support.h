// Running the dmdbench binary from tests: exit code and combined output.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace dmdbench::testing {

struct CommandResult {
  int code = -1;  // exit status, or 128 + signal
  std::string out;
};

inline CommandResult run_dmdbench(const std::string& args) {
  const std::string cmd = std::string(DMDBENCH_BINARY) + " " + args + " 2>&1";
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace dmdbench::testing
