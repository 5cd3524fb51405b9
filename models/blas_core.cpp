// OpenBLAS's kernel set, read and requested (see blas_core.h).
#include "models/blas_core.h"

#include <dlfcn.h>

#include <cstdlib>

namespace dmdbench::models::blas_core {

std::string loaded() {
  using Name = char* (*)();
  const auto name = reinterpret_cast<Name>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* core = name != nullptr ? name() : nullptr;
  return core != nullptr ? core : "";
}

std::string to_request(const std::string& loaded, bool avx512, bool avx2_fma) {
  if (loaded.empty()) return "";
  // OpenBLAS's AVX-512 kernel sets (SkylakeX and the newer ones built on it) are kept as they are.
  const bool avx512_kernels = loaded == "SkylakeX" || loaded == "Cooperlake" || loaded == "SapphireRapids";
  if (avx512) return avx512_kernels ? "" : "SkylakeX";
  if (avx2_fma && loaded == "Prescott") return "Haswell";
  return "";
}

std::string request_here() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return "";
  bool avx512 = false, avx2_fma = false;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
  avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return to_request(loaded(), avx512, avx2_fma);
}

std::string describe() {
  const std::string core = loaded();
  if (core.empty()) return "";
  return "openblas=" + core + (std::getenv("OPENBLAS_CORETYPE") != nullptr ? "(OPENBLAS_CORETYPE)" : "");
}

}  // namespace dmdbench::models::blas_core
