// The graph-distillation unit (spec §2): one type, configured as HomoGD or HeteroGD.
#pragma once

#include <torch/torch.h>

#include <array>
#include <vector>

namespace dmdbench::models {

struct GraphDistillConfig {
  int64_t hidden = 50;     // repr width: d (homo) or 2d (hetero)
  int64_t gd_size = 64;    // 64 (homo) or 32 (hetero)
  std::array<double, 6> prior{};  // softmax(.../0.25) constants, edge order below
  double gd_reg = 10.0, alpha = 1.0 / 8.0;
  double w_logit = 1.0, w_repr = 10.0;
  enum class ReprMetric { L1, MinCosine } repr_metric = ReprMetric::L1;
  // Ablation switch (fixed-edges): no W_* layers, edges = the prior for every sample, regulariser 0. The
  // distillation weights keep the reference formula w_x = E[x,:] + prior[x], so they are 2*prior[x].
  bool learn_edges = true;

  static GraphDistillConfig homo(int64_t d);    // hidden d, gd 64, prior softmax([0,0,1,0,1,0]/0.25), L1
  static GraphDistillConfig hetero(int64_t d);  // hidden 2d, gd 32, prior softmax([0,0,1,0,1,1]/0.25), min-cosine
};

// Directed edges x = 0..5 as (student j, teacher i): V->L, A->L, L->V, A->V, L->A, V->A (0=l, 1=v, 2=a).
constexpr std::array<std::pair<int, int>, 6> kEdges{{{0, 1}, {0, 2}, {1, 0}, {1, 2}, {2, 0}, {2, 1}}};

struct GraphDistillResult {
  torch::Tensor edges;        // [6,N] per-sample edge weights (softmax over all six; the prior when fixed)
  torch::Tensor reg;          // scalar L_reg (0 when edges are fixed)
  torch::Tensor logit_loss;   // scalar L_logit, teachers detached
  torch::Tensor repr_loss;    // scalar L_repr (L1 for homo: computed, not used in the total; min-cosine for hetero)
};

class GraphDistillImpl : public torch::nn::Module {
 public:
  explicit GraphDistillImpl(const GraphDistillConfig& cfg);
  // logits [3,N,1] (l,v,a), reprs [3,N,hidden]
  GraphDistillResult forward(const torch::Tensor& logits, const torch::Tensor& reprs);
  const GraphDistillConfig& config() const { return cfg_; }

 private:
  GraphDistillConfig cfg_;
  torch::nn::Linear W_logit{nullptr}, W_repr{nullptr}, W_edge{nullptr};
  torch::Tensor prior_;  // [6] constant
};
TORCH_MODULE(GraphDistill);

}  // namespace dmdbench::models
