// MulT as MMSA runs it (spec §7). Shape legend: N = batch, T_m = input lengths, T'_m after the conv, d =
// width.
#include "baselines/mult.h"

#include <stdexcept>

#include "models/ops.h"
#include "models/transformer.h"

namespace dmdbench::baselines {

using models::TransformerEncoder;
using models::TransformerEncoderOptions;
using torch::Tensor;

struct MulTImpl::Parts {
  torch::nn::Conv1d proj_l{nullptr}, proj_a{nullptr}, proj_v{nullptr};
  TransformerEncoder trans_l_with_a{nullptr}, trans_l_with_v{nullptr}, trans_a_with_l{nullptr},
      trans_a_with_v{nullptr}, trans_v_with_l{nullptr}, trans_v_with_a{nullptr};
  TransformerEncoder trans_l_mem{nullptr}, trans_a_mem{nullptr}, trans_v_mem{nullptr};
  torch::nn::Linear proj1{nullptr}, proj2{nullptr}, out_layer{nullptr};
  // What the transformers' jobs keep between calls (models/jobs.h), in evaluation [0] and training [1].
  models::jobs::CallSite call_sites[2];
};

namespace {

// Conv1d without bias on batch-first x [N,T,D] -> [T',N,d] (sequence-first for the encoders).
Tensor project(const Tensor& x, const torch::nn::Conv1d& conv) {
  return models::ops::temporal_conv(x, conv->weight).transpose(0, 1).contiguous();
}

}  // namespace

MulTImpl::MulTImpl(const MulTConfig& cfg) : cfg_(cfg), p_(std::make_shared<Parts>()) {
  const auto& b = cfg.base;
  const int64_t d = b.d;
  Parts& p = *p_;
  auto conv = [&](const char* name, int64_t in, int64_t k) {
    return register_module(name,
                           torch::nn::Conv1d(torch::nn::Conv1dOptions(in, d, k).padding(0).bias(false)));
  };
  auto encoder = [&](const char* name, int64_t width, double attn_dropout, int64_t layers) {
    TransformerEncoderOptions o;
    // Crossmodal inputs are permuted conv outputs (batch-major in memory); the memory encoders get the
    // contiguous concatenation (time-major), which changes the reference's position indices.
    o.position_layout =
        width == 2 * d ? models::PositionLayout::TimeMajor : models::PositionLayout::BatchMajor;
    o.embed_dim = width, o.heads = b.heads, o.layers = layers;
    o.attn_dropout = attn_dropout, o.relu_dropout = b.relu_dropout, o.res_dropout = b.res_dropout;
    o.embed_dropout = b.embed_dropout, o.attn_mask = b.attn_mask,
    o.position_embedding = cfg.position_embedding;
    return register_module(name, TransformerEncoder(o));
  };
  p.proj_l = conv("proj_l", b.text_dim, b.kernel_l);
  p.proj_a = conv("proj_a", b.audio_dim, b.kernel_a);
  p.proj_v = conv("proj_v", b.vision_dim, b.kernel_v);
  p.trans_l_with_a = encoder("trans_l_with_a", d, b.attn_dropout_a, b.nlevels);
  p.trans_l_with_v = encoder("trans_l_with_v", d, b.attn_dropout_v, b.nlevels);
  p.trans_a_with_l = encoder("trans_a_with_l", d, b.attn_dropout, b.nlevels);
  p.trans_a_with_v = encoder("trans_a_with_v", d, b.attn_dropout_v, b.nlevels);
  p.trans_v_with_l = encoder("trans_v_with_l", d, b.attn_dropout, b.nlevels);
  p.trans_v_with_a = encoder("trans_v_with_a", d, b.attn_dropout_a, b.nlevels);
  const int64_t mem_layers = std::max<int64_t>(b.nlevels, 3);
  p.trans_l_mem = encoder("trans_l_mem", 2 * d, b.attn_dropout, mem_layers);
  p.trans_a_mem = encoder("trans_a_mem", 2 * d, b.attn_dropout, mem_layers);
  p.trans_v_mem = encoder("trans_v_mem", 2 * d, b.attn_dropout, mem_layers);
  p.proj1 = register_module("proj1", torch::nn::Linear(6 * d, 6 * d));
  p.proj2 = register_module("proj2", torch::nn::Linear(6 * d, 6 * d));
  p.out_layer = register_module("out_layer", torch::nn::Linear(6 * d, 1));
}

Tensor MulTImpl::forward(const Tensor& text, const Tensor& audio, const Tensor& vision) {
  Parts& p = *p_;
  const auto& b = cfg_.base;
  const bool training = is_training();
  TORCH_CHECK(text.dim() == 3 && audio.dim() == 3 && vision.dim() == 3,
              "MulT expects batch-first [N,T,D] inputs");
  Tensor x_l = models::ops::dropout(text, b.text_dropout, training);
  Tensor l = project(x_l, p.proj_l), a = project(audio, p.proj_a), v = project(vision, p.proj_v);  // [T',N,d]

  // The nine transformers as jobs (models/jobs.h; at once on two or more threads). Slots 0-2: l, a, v.
  models::jobs::Graph g({l, a, v});
  const int l_cross = models::add_crossmodal_job(g, p.trans_l_with_a, 0, 1);  // [T'_l,N,d] x2
  models::add_crossmodal_job(g, p.trans_l_with_v, 0, 2);
  const int a_cross = models::add_crossmodal_job(g, p.trans_a_with_l, 1, 0);
  models::add_crossmodal_job(g, p.trans_a_with_v, 1, 2);
  const int v_cross = models::add_crossmodal_job(g, p.trans_v_with_l, 2, 0);
  models::add_crossmodal_job(g, p.trans_v_with_a, 2, 1);
  const int l_mem =
      models::add_last_step_job(g, p.trans_l_mem, {l_cross, l_cross + 1});  // [T'_l,N,2d] -> [N,2d]
  const int a_mem = models::add_last_step_job(g, p.trans_a_mem, {a_cross, a_cross + 1});
  const int v_mem = models::add_last_step_job(g, p.trans_v_mem, {v_cross, v_cross + 1});
  Tensor last = torch::cat(g.run({l_mem, a_mem, v_mem}, p.call_sites[training]), 1);  // [N,6d], order l, a, v
  Tensor hidden = p.proj1(last).relu_();
  hidden = models::ops::dropout(hidden, b.output_dropout, training);
  return p.out_layer(p.proj2(hidden) + last);  // [N,1]
}

}  // namespace dmdbench::baselines
