// OpenBLAS's kernel set, read and requested (see blas_core.h).
#include "models/blas_core.h"

#include <dlfcn.h>

#include <cstdlib>

#include "models/cpu_features.h"

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

bool request_in_environment() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return false;
  const std::string core = to_request(loaded(), cpu::has_avx512(), cpu::has_avx2_fma());
  if (core.empty()) return false;
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  return true;
}

std::string describe() {
  const std::string core = loaded();
  if (core.empty()) return "";
  return "openblas=" + core + (std::getenv("OPENBLAS_CORETYPE") != nullptr ? "(OPENBLAS_CORETYPE)" : "");
}

}  // namespace dmdbench::models::blas_core
