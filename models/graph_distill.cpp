// Graph distillation unit (spec §2). Shape legend: M = 3 modalities (l, v, a), N = batch, g = gd_size,
// H = repr width, X = 6 directed edges in kEdges order.
#include "models/graph_distill.h"

#include <cmath>

namespace dmdbench::models {

using torch::Tensor;

namespace {

std::array<double, 6> softmax_prior(const std::array<double, 6>& logits, double temperature) {
  std::array<double, 6> out{};
  double mx = logits[0];
  for (double v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (size_t i = 0; i < 6; ++i) sum += (out[i] = std::exp((logits[i] - mx) / temperature));
  for (double& v : out) v /= sum;
  return out;
}

}  // namespace

GraphDistillConfig GraphDistillConfig::homo(int64_t d) {
  GraphDistillConfig c;
  c.hidden = d;
  c.gd_size = 64;
  c.prior = softmax_prior({0, 0, 1, 0, 1, 0}, 0.25);  // favours L->V and L->A
  c.repr_metric = ReprMetric::L1;
  return c;
}

GraphDistillConfig GraphDistillConfig::hetero(int64_t d) {
  GraphDistillConfig c;
  c.hidden = 2 * d;
  c.gd_size = 32;
  c.prior = softmax_prior({0, 0, 1, 0, 1, 1}, 0.25);  // plus V->A
  c.repr_metric = ReprMetric::MinCosine;
  return c;
}

GraphDistillImpl::GraphDistillImpl(const GraphDistillConfig& cfg) : cfg_(cfg) {
  if (cfg.learn_edges) {
    W_logit = register_module("W_logit", torch::nn::Linear(1, cfg.gd_size));
    W_repr = register_module("W_repr", torch::nn::Linear(cfg.hidden, cfg.gd_size));
    W_edge = register_module("W_edge", torch::nn::Linear(4 * cfg.gd_size, 1));
  }
  // The prior is a constant of the method, not state: neither a parameter nor a (saved) buffer.
  prior_ = torch::tensor(std::vector<double>(cfg.prior.begin(), cfg.prior.end()), torch::kFloat);
}

GraphDistillResult GraphDistillImpl::forward(const Tensor& logits, const Tensor& reprs) {
  TORCH_CHECK(logits.dim() == 3 && logits.size(0) == 3, "graph distillation expects logits [3,N,C], got ",
              logits.sizes());
  TORCH_CHECK(reprs.dim() == 3 && reprs.size(0) == 3 && reprs.size(1) == logits.size(1),
              "graph distillation expects reprs [3,N,H], got ", reprs.sizes());
  TORCH_CHECK(reprs.size(2) == cfg_.hidden, "graph distillation built for repr width ", cfg_.hidden, ", got ",
              reprs.size(2));
  const int64_t N = logits.size(1);
  const auto opts = torch::TensorOptions().dtype(torch::kLong).device(logits.device());
  const Tensor student = torch::tensor({0, 0, 1, 1, 2, 2}, opts);  // j of edge x = (j, i)
  const Tensor teacher = torch::tensor({1, 2, 0, 2, 0, 1}, opts);  // i
  const Tensor prior = prior_.to(logits.options());                // [X]

  GraphDistillResult r;
  if (cfg_.learn_edges) {
    // z_m = [W_logit(logit_m), W_repr(repr_m)] per sample, e_x = W_edge([z_j ; z_i]).              [M,N,2g]
    Tensor z = torch::cat({W_logit(logits), W_repr(reprs)}, 2);
    Tensor pair = torch::cat({z.index_select(0, student), z.index_select(0, teacher)}, 2);  // [X,N,4g]
    Tensor e = W_edge(pair).squeeze(2);                                                     // [X,N]
    r.edges = torch::softmax(e * cfg_.alpha, 0);  // jointly over the six edges, per sample       [X,N]
    r.reg = (r.edges.mean(1) - prior).pow(2).sum() * cfg_.gd_reg;
  } else {
    // Fixed-edges ablation: E = prior for every sample, so the regulariser is exactly zero. The distillation
    // weights keep the reference formula w_x = E[x,:] + prior[x], which here is 2*prior[x].
    r.edges = prior.unsqueeze(1).expand({6, N});
    r.reg = torch::zeros({}, logits.options());
  }
  const Tensor w = r.edges + prior.unsqueeze(1);  // [X,N] distillation weights, edge part not detached

  // Students keep their gradient, teachers are detached.
  const Tensor t_logits = logits.detach();
  const Tensor t_reprs = reprs.detach();
  Tensor logit_dist =
      (logits.index_select(0, student) - t_logits.index_select(0, teacher)).abs().sum(2);  // [X,N]
  r.logit_loss = (logit_dist * w).mean(1).sum() * cfg_.w_logit;

  Tensor rs = reprs.index_select(0, student), rt = t_reprs.index_select(0, teacher);  // [X,N,H]
  if (cfg_.repr_metric == GraphDistillConfig::ReprMetric::L1) {
    r.repr_loss = ((rs - rt).abs().sum(2) * w).mean(1).sum() * cfg_.w_repr;
  } else {
    // CosineEmbeddingLoss(target -1, margin 0): mean_n max(0, cos), cos = <a,b>/sqrt((|a|^2+eps)(|b|^2+eps)),
    // eps 1e-12; the batch-mean scalar is then weighted by the mean edge weight.
    constexpr double kEps = 1e-12;
    Tensor prod = (rs * rt).sum(2);
    const Tensor eps = torch::full({}, kEps, prod.options());
    Tensor denom = (((rs * rs).sum(2) + eps) * ((rt * rt).sum(2) + eps)).sqrt();
    Tensor c = (prod / denom).clamp_min(0).mean(1);  // [X]
    r.repr_loss = (c * w.mean(1)).sum() * cfg_.w_repr;
  }
  return r;
}

}  // namespace dmdbench::models
