// Small functional building blocks shared by the model files, with fast CPU paths:
//  - linear over any leading dims through one addmm (LibTorch 1.13's F::linear takes matmul + add for 3-D
//  input),
//  - LayerNorm with a fused forward/backward kernel,
//  - dropout with a counter-based mask instead of bernoulli_ (same distribution; the seed comes from the
//  default
//    generator, so torch::manual_seed still fixes it).
// Other devices and dtypes fall back to the ATen ops.
#pragma once

#include <torch/torch.h>

namespace dmdbench::models::ops {

// x [..., in] -> [..., out] = x W^T + b (b may be undefined).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {});

// relu(linear(x)), with the ReLU applied in place to the 2-D product before it is viewed back (an in-place op
// on a view would make autograd rebuild the base's gradient through CopySlices).
torch::Tensor linear_relu(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// Conv1d without bias (padding 0, stride 1) on a batch-first sequence: x [N,T,in], weight [out,in,k] (the
// Conv1d layout) -> [N,T-k+1,out], time-major. One GEMM [N*T,in] x [in,k*out] and a sum of k shifted blocks.
torch::Tensor temporal_conv(const torch::Tensor& x, const torch::Tensor& weight);

// LayerNorm over the last dimension (biased variance), as torch::layer_norm.
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                         double eps = 1e-5);

// Inverted dropout: x when !training or p == 0; otherwise x * mask with mask in {0, 1/(1-p)}.
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

}  // namespace dmdbench::models::ops
