// GraphedTrainStep (see cuda_graph.h). Compiled for real only against a CUDA LibTorch; the CPU build refuses.
#include "harness/training/cuda_graph.h"

#include <fmt/format.h>

#include <algorithm>

#include "harness/experiment/config.h"
#include "models/compat.h"

#if __has_include(<ATen/cuda/CUDAGraph.h>) && __has_include(<cuda_runtime_api.h>)
#define DMDBENCH_HAVE_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace dmdbench {

bool cuda_graphs_built() {
#ifdef DMDBENCH_HAVE_CUDA_GRAPHS
  return true;
#else
  return false;
#endif
}

void require_cuda_graphs(torch::Device device) {
  if (!device.is_cuda()) throw ConfigError("cuda_graph=true needs --device cuda (CUDA graphs capture GPU work only)");
  if (!cuda_graphs_built())
    throw ConfigError(fmt::format("cuda_graph=true needs a CUDA build of LibTorch; this build (LibTorch {}) is CPU-only",
                                  TORCH_VERSION));
}

namespace {

#ifdef DMDBENCH_HAVE_CUDA_GRAPHS
Batch static_copy(const Batch& b) {
  Batch s = b;
  s.text = b.text.clone(), s.audio = b.audio.clone(), s.vision = b.vision.clone();
  s.labels = b.labels.clone(), s.index = b.index.clone();
  return s;
}
#endif

// Gradients allocated and zero (the captured backward accumulates into them in place).
void zero_grads_in_place(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  for (auto p : params) {
    if (p.grad().defined())
      p.mutable_grad().zero_();
    else
      p.mutable_grad() = torch::zeros_like(p);
  }
}

}  // namespace

#ifdef DMDBENCH_HAVE_CUDA_GRAPHS
struct GraphedTrainStep::Impl {
  Trainable* model = nullptr;
  std::vector<torch::Tensor> params;
  bool bf16 = false;
  Batch in;
  torch::Tensor loss;
  at::cuda::CUDAGraph graph;
};
#else
struct GraphedTrainStep::Impl {};
#endif

GraphedTrainStep::GraphedTrainStep([[maybe_unused]] Trainable& model, [[maybe_unused]] std::vector<torch::Tensor> params,
                                   [[maybe_unused]] bool autocast_bf16, const Batch& example) {
  require_cuda_graphs(example.text.device());
#ifdef DMDBENCH_HAVE_CUDA_GRAPHS
  impl_ = std::make_unique<Impl>();
  impl_->model = &model, impl_->params = std::move(params), impl_->bf16 = autocast_bf16;
  impl_->in = static_copy(example);
  zero_grads();
  // Warm-up on a side stream (lazy allocations and autotuning happen outside the capture), then capture there.
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
  side.synchronize();
  torch::cuda::synchronize();
  {
    c10::cuda::CUDAStreamGuard guard(side);
    for (int i = 0; i < 3; ++i) loss_and_backward(model, impl_->in, autocast_bf16);
  }
  torch::cuda::synchronize();
  zero_grads();
  {
    c10::cuda::CUDAStreamGuard guard(side);
    impl_->graph.capture_begin();
    impl_->loss = loss_and_backward(model, impl_->in, autocast_bf16).total;
    impl_->graph.capture_end();
  }
  torch::cuda::synchronize();
  zero_grads();
#endif
}

GraphedTrainStep::~GraphedTrainStep() = default;

torch::Tensor GraphedTrainStep::run([[maybe_unused]] const Batch& b) {
#ifdef DMDBENCH_HAVE_CUDA_GRAPHS
  TORCH_CHECK(b.text.sizes() == impl_->in.text.sizes(), "CUDA graph captured for batch shape ", impl_->in.text.sizes(),
              ", got ", b.text.sizes());
  impl_->in.text.copy_(b.text), impl_->in.audio.copy_(b.audio), impl_->in.vision.copy_(b.vision);
  impl_->in.labels.copy_(b.labels), impl_->in.index.copy_(b.index);
  impl_->graph.replay();
  return impl_->loss;
#else
  return {};
#endif
}

void GraphedTrainStep::zero_grads() {
#ifdef DMDBENCH_HAVE_CUDA_GRAPHS
  zero_grads_in_place(impl_->params);
#endif
}

GraphCheck check_graphed_step(Trainable& model, const std::vector<torch::Tensor>& params, bool autocast_bf16,
                              const Batch& b) {
  model.train(false);
  GraphCheck c;
  {
    zero_grads_in_place(params);
    loss_and_backward(model, b, autocast_bf16);
    std::vector<torch::Tensor> eager;
    for (const auto& p : params) eager.push_back(p.grad().clone());
    GraphedTrainStep graphed(model, params, autocast_bf16, b);
    graphed.run(b);
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      c.max_abs_diff = std::max(c.max_abs_diff, (params[i].grad() - eager[i]).abs().max().item<double>());
      c.max_abs_grad = std::max(c.max_abs_grad, eager[i].abs().max().item<double>());
    }
    graphed.zero_grads();
  }
  model.train(true);
  return c;
}

}  // namespace dmdbench
