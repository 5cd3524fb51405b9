// dmdbench-torch: the verbs that load LibTorch (dmdbench hands them here; it runs the others too).
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>

#include "harness/cli/verb.h"
#include "harness/training/memory.h"
#include "models/blas_core.h"

int main(int argc, char** argv) {
  using namespace dmdbench::cli;
  // See main.cpp: without OMP_WAIT_POLICY=passive and OPENBLAS_THREAD_TIMEOUT=4 the thread pools spin against
  // each other; and where OpenBLAS does not know the CPU, it runs its Prescott kernels unless asked for
  // better ones (models/blas_core.h). libgomp and OpenBLAS read the variables when they load, so when they
  // are missing, set them and start again once (with OPENBLAS_CORETYPE set, the second start asks for
  // nothing).
  const bool blas_core = dmdbench::models::blas_core::request_in_environment();
  if (std::getenv("OMP_WAIT_POLICY") == nullptr || std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr ||
      blas_core) {
    setenv("OMP_WAIT_POLICY", "passive", 0);
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    execv("/proc/self/exe", argv);  // returns only on failure: go on with spinning threads
  }
  // Keep glibc malloc from handing tensor-sized blocks back to the kernel after every step: a training step frees
  // and reallocates the same ~100 MB of activations, and each fresh mapping costs page faults (a third fewer).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
  dmdbench::memory::install_cpu_tracking();  // and the freed tensor blocks are reused by size
  std::vector<VerbImpl> impls;
  for (const auto& family : {training_verbs(), robustness_verbs(), data_verbs(), bench_verbs(), store_verbs(),
                            report_verbs(), slurm_verbs()})
    impls.insert(impls.end(), family.begin(), family.end());
  return dispatch(argc, argv, impls);
}
