// Which of OpenBLAS's kernel sets the process runs, and the one to ask for where OpenBLAS's own choice is
// weaker than the CPU.
//
// OpenBLAS picks its kernels (its "core") from the CPU's vendor, family and model when it loads. Debian 12's
// 0.3.21 predates the 5th-generation Xeon (family 6, model 207): there it falls back to its Prescott kernels
// (SSE3, no FMA), so every LibTorch product runs at a fraction of the machine's rate and the linears' own
// kernels (gemm.h), which give the BLAS's bits only where the BLAS sums with FMA in one chain per block of k,
// cannot stand in for it. It also predates AMD's AVX-512 CPUs (Zen 4), to which it gives its Zen (= Haswell)
// kernels, which keep even and odd k in separate sums in parts of each tile, so there too the linears stay on
// the BLAS. Where the CPU has AVX-512 (F, CD, BW, DQ, VL: what the SkylakeX kernels use) and OpenBLAS took
// another set, we ask for SkylakeX (as later OpenBLAS releases choose for Zen 4); where it took Prescott on a
// CPU with AVX2 and FMA, for Haswell. OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so dmdbench-torch
// sets it and starts again (torch_main.cpp), as does the tests' main; a value already in the environment is
// kept. No LibTorch.
#pragma once

#include <string>

namespace dmdbench::models::blas_core {

// The kernel set of the OpenBLAS in this process ("SkylakeX", "Haswell", "Zen", "Prescott", ...); empty where
// the process has no OpenBLAS.
std::string loaded();

// The kernel set to ask for when OpenBLAS took `loaded` on a CPU with (or without) AVX-512 and AVX2 + FMA;
// empty to keep what it took (and where there is no OpenBLAS).
std::string to_request(const std::string& loaded, bool avx512, bool avx2_fma);

// Sets OPENBLAS_CORETYPE to to_request for this process and CPU where it is unset and there is something to
// ask; returns whether it did, i.e. whether the process must start again (exec) for OpenBLAS to read it.
bool request_in_environment();

// For provenance: "openblas=CORE", with "(OPENBLAS_CORETYPE)" where the variable chose it; empty without
// OpenBLAS.
std::string describe();

}  // namespace dmdbench::models::blas_core
