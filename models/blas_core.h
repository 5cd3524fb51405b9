// Which of OpenBLAS's kernel sets the process runs, and the one to ask for where OpenBLAS does not know the
// CPU.
//
// OpenBLAS picks its kernels (its "core") from the CPU's family and model when it loads. Debian 12's 0.3.21
// predates the 5th-generation Xeon (family 6, model 207): there it falls back to its Prescott kernels (SSE3,
// no FMA), so every LibTorch product runs at a fraction of the machine's rate and the linears' own kernels
// (gemm.h), which give the BLAS's bits only where the BLAS sums with FMA, cannot stand in for it. Asking for
// the kernels OpenBLAS gives the CPUs it does know with the same instructions (OPENBLAS_CORETYPE=SkylakeX for
// AVX-512, Haswell for AVX2 + FMA) gives such a machine the bits of its known siblings. OpenBLAS reads the
// variable only when it loads, so dmdbench-torch sets it and starts again (torch_main.cpp); a value already
// in the environment is left as it is. No LibTorch.
#pragma once

#include <string>

namespace dmdbench::models::blas_core {

// The kernel set of the OpenBLAS in this process ("SkylakeX", "Haswell", "Zen", "Prescott", ...); empty where
// the process has no OpenBLAS.
std::string loaded();

// The kernel set to ask for when OpenBLAS took `loaded` on a CPU with AVX-512 (F, CD, BW, DQ, VL: what
// OpenBLAS's SkylakeX kernels use) or AVX2 and FMA; empty to keep what it took. Only its Prescott fallback is
// replaced: a CPU it knows keeps its own kernels.
std::string to_request(const std::string& loaded, bool avx512, bool avx2_fma);

// to_request for this process and CPU; empty also where OPENBLAS_CORETYPE is already set.
std::string request_here();

// For provenance: "openblas=CORE", with "(OPENBLAS_CORETYPE)" where the variable chose it; empty without
// OpenBLAS.
std::string describe();

}  // namespace dmdbench::models::blas_core
