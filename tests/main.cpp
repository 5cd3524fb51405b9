// The tests' main. Where OpenBLAS does not know the CPU, dmdbench asks it for the kernels of the CPUs it
// knows with the same instructions (models/blas_core.h); the tests run on those kernels too, so that they
// check the numbers dmdbench gives (the golden files were made with FMA kernels; the Prescott fallback has
// none). OpenBLAS reads OPENBLAS_CORETYPE only when it loads, hence the one restart.
#include <gtest/gtest.h>
#include <unistd.h>

#include "models/blas_core.h"

int main(int argc, char** argv) {
  if (dmdbench::models::blas_core::request_in_environment())
    execv("/proc/self/exe", argv);  // returns only on failure: go on with the kernels OpenBLAS took
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
