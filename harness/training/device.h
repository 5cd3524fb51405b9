// Device selection, determinism settings and provenance facts about this build and process.
#pragma once

#include <torch/torch.h>

#include <string>

#include "results/provenance.h"

namespace dmdbench {

struct DeviceSetup {
  torch::Device device = torch::kCPU;
  std::string name;              // "cpu (Intel ...)" or "cuda:0 (NVIDIA H100 ...)"
  bool deterministic = true;
  std::string determinism_flags; // what was set, recorded with each run
};

// "auto" | "cpu" | "cuda" | "cuda:N". On CUDA: deterministic algorithms on, cuDNN benchmark off, TF32 off and
// CUBLAS_WORKSPACE_CONFIG set before the first CUDA call, unless fast (TF32 and autotuning allowed).
DeviceSetup setup_device(const std::string& spec, bool fast = false);

// Intra-op threads (and inter-op 1); 0 keeps LibTorch's default.
void set_threads(int threads);
int current_threads();

// What this process records about itself with every stored number: commit, LibTorch, device, host, threads and
// determinism (the dataset fields are left to the caller).
results::Provenance process_provenance(const DeviceSetup& dev);

std::string libtorch_version();
std::string host_name();
std::string cpu_model();
// Peak resident memory of this process (CPU) or peak allocated memory on the device (CUDA), in bytes.
int64_t peak_memory_bytes(const torch::Device& device);

}  // namespace dmdbench
