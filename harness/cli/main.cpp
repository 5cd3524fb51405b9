// dmdbench: the front of the command line. It runs the verbs that need no LibTorch in this process, so they
// answer at once, and hands every other verb to dmdbench-torch beside it (same arguments, by exec).
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "harness/cli/verb.h"

namespace {

int exec_torch(int, char** argv) {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, n) : std::string(argv[0]);
  dir = dir.substr(0, dir.rfind('/') + 1);
  const std::string path = dir + "dmdbench-torch";
  // LibTorch's OpenMP pool and OpenBLAS's pthread pool both spin while idle, and on all cores they take the
  // cores from each other (a 2-thread training step ran 2.7x slower than 1 thread). libgomp reads
  // OMP_WAIT_POLICY when it loads; OpenBLAS's workers otherwise spin with sched_yield for 2^28 cycles after
  // each product (a fifth of a 2-thread step's samples), 2^4 lets them sleep at once. Worker processes
  // inherit both.
  setenv("OMP_WAIT_POLICY", "passive", 0);
  setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
  argv[0] = const_cast<char*>(path.c_str());
  execv(path.c_str(), argv);
  std::cerr << "dmdbench: cannot run " << path << ": " << std::strerror(errno) << "\n";
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dmdbench::cli;
  std::vector<VerbImpl> impls = store_verbs();
  for (const auto& v : report_verbs()) impls.push_back(v);
  for (const auto& v : slurm_verbs()) impls.push_back(v);
  return dispatch(argc, argv, impls, exec_torch);
}
