#include "harness/training/device.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "harness/experiment/config.h"
#include "harness/experiment/version.h"
#include "models/blas_core.h"
#include "models/ops.h"
// CUDA-only facts, compiled in only against a CUDA LibTorch (the CPU build has no CUDA headers).
#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#define DMDBENCH_HAVE_CUDA_HEADERS 1
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace dmdbench {
namespace {

std::string cuda_device_name([[maybe_unused]] int index) {
#ifdef DMDBENCH_HAVE_CUDA_HEADERS
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) == cudaSuccess) return prop.name;
#endif
  return "cuda device";
}

int64_t cuda_peak_allocated_bytes([[maybe_unused]] int index) {
#ifdef DMDBENCH_HAVE_CUDA_HEADERS
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  return stats.allocated_bytes[static_cast<size_t>(c10::cuda::CUDACachingAllocator::StatType::AGGREGATE)].peak;
#else
  return 0;
#endif
}

}  // namespace

DeviceSetup setup_device(const std::string& spec, bool fast) {
  DeviceSetup s;
  std::string want = spec;
  if (want == "auto") want = torch::cuda::is_available() ? "cuda" : "cpu";
  if (want == "cpu") {
    s.device = torch::kCPU;
    s.name = fmt::format("cpu ({})", cpu_model());
    // The BLAS's kernel set fixes the products' bits as much as the CPU does (models/blas_core.h).
    const std::string blas = models::blas_core::describe();
    s.determinism_flags = blas.empty() ? "cpu" : "cpu:" + blas;
    return s;
  }
  if (want.rfind("cuda", 0) != 0 || (want.size() > 4 && want[4] != ':'))
    throw ConfigError(fmt::format("unknown device '{}', expected auto, cpu, cuda or cuda:N", spec));
  // Must precede the first CUDA call for deterministic cuBLAS.
  if (!fast) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
  if (!torch::cuda::is_available())
    throw ConfigError(fmt::format("device '{}' requested but no CUDA device is available to this LibTorch build", spec));
  int index = 0;
  if (want.size() > 5) {
    try {
      index = std::stoi(want.substr(5));
    } catch (const std::logic_error&) {
      throw ConfigError(fmt::format("unknown device '{}', expected cuda:N", spec));
    }
  }
  if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
    throw ConfigError(fmt::format("device '{}' does not exist: {} CUDA device(s) visible", spec, torch::cuda::device_count()));
  s.device = torch::Device(torch::kCUDA, index);
  s.name = fmt::format("cuda:{} ({})", index, cuda_device_name(index));
  auto& ctx = at::globalContext();
  if (fast) {
    ctx.setDeterministicAlgorithms(false, false);
    ctx.setBenchmarkCuDNN(true);
    ctx.setAllowTF32CuBLAS(true);
    ctx.setAllowTF32CuDNN(true);
    s.deterministic = false;
    s.determinism_flags = "cuda:fast(tf32,cudnn_benchmark)";
  } else {
    ctx.setDeterministicAlgorithms(true, false);
    ctx.setBenchmarkCuDNN(false);
    ctx.setDeterministicCuDNN(true);
    ctx.setAllowTF32CuBLAS(false);
    ctx.setAllowTF32CuDNN(false);
    s.deterministic = true;
    s.determinism_flags = fmt::format("cuda:deterministic_algorithms,no_tf32,no_cudnn_benchmark,cublas_ws={}",
                                      std::getenv("CUBLAS_WORKSPACE_CONFIG") ? std::getenv("CUBLAS_WORKSPACE_CONFIG") : "");
  }
  return s;
}

void set_threads(int threads) {
  if (threads <= 0) return;
  // LibTorch's pool and OpenBLAS's (which LibTorch does not size), so that parallel workers do not
  // oversubscribe the cores; where the linears' products split over LibTorch's pool, OpenBLAS keeps one
  // thread.
  models::ops::set_threads(threads);
}
int current_threads() { return torch::get_num_threads(); }

std::string libtorch_version() { return TORCH_VERSION; }

std::string host_name() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      return pos == std::string::npos ? line : line.substr(pos + 2);
    }
  return "unknown cpu";
}

int64_t peak_memory_bytes(const torch::Device& device) {
  if (device.is_cuda()) return cuda_peak_allocated_bytes(device.index());
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

results::Provenance process_provenance(const DeviceSetup& dev) {
  results::Provenance p;
  p.git_commit = build_git_commit(), p.libtorch_version = libtorch_version(), p.device = dev.name;
  p.host = host_name(), p.threads = current_threads(), p.deterministic = dev.deterministic;
  p.determinism_flags = dev.determinism_flags;
  auto env = [](const char* name) { const char* v = std::getenv(name); return std::string(v ? v : ""); };
  p.slurm_job_id = env("SLURM_JOB_ID");
  if (!env("SLURM_ARRAY_JOB_ID").empty())
    p.slurm_array_task = env("SLURM_ARRAY_JOB_ID") + "_" + env("SLURM_ARRAY_TASK_ID");
  return p;
}

}  // namespace dmdbench
