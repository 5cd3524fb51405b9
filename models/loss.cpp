// DMD training loss (spec §3.3). Shape legend: N = batch, T' = length after the conv, d = width,
// R = 3N rows of the margin loss.
#include "models/loss.h"

#include <stdexcept>

namespace dmdbench::models {

using torch::Tensor;

Tensor task_loss(const DMDOutput& out, const Tensor& labels_n1) {
  Tensor total;
  for (const Tensor* logit :
       {&out.output_logit, &out.logits_l_homo, &out.logits_v_homo, &out.logits_a_homo, &out.logits_l_hetero,
        &out.logits_v_hetero, &out.logits_a_hetero, &out.logits_c}) {
    Tensor l1 = torch::l1_loss(*logit, labels_n1);
    total = total.defined() ? total + l1 : l1;
  }
  return total;
}

Tensor ortho_loss(const Tensor& s, const Tensor& c, bool per_position) {
  TORCH_CHECK(s.dim() == 3 && s.sizes() == c.sizes(), "ortho loss expects two [T',N,d] tensors, got ",
              s.sizes(), " and ", c.sizes());
  // CosineEmbeddingLoss with target -1 and margin 0: max(0, cos). Legacy semantics (PyTorch <= 1.10 on 3-D
  // inputs): the sums run over dim 1, the batch axis, giving one cosine per (t, channel). Per-position: one
  // cosine per (t, n) over the channels.
  const int64_t dim = per_position ? 2 : 1;
  constexpr double kEps = 1e-12;
  Tensor prod = (s * c).sum(dim);
  Tensor denom = (((s * s).sum(dim) + kEps) * ((c * c).sum(dim) + kEps)).sqrt();
  return (prod / denom).clamp_min(0).mean();
}

Tensor margin_loss(const Tensor& c_l_sim, const Tensor& c_v_sim, const Tensor& c_a_sim,
                   const Tensor& labels_n, double margin_scale) {
  const int64_t N = c_l_sim.size(0);
  const Tensor feats =
      torch::stack({c_l_sim, c_v_sim, c_a_sim}, 1).reshape({3 * N, -1});                // rows 3i, 3i+1, 3i+2
  const Tensor y = labels_n.reshape({N}).to(feats.scalar_type()).repeat_interleave(3);  // [R]
  const int64_t R = 3 * N;

  // cos(a,b) = a.b / (max(sqrt(|a|^2 + 1e-8), 1e-8) * max(sqrt(|b|^2 + 1e-8), 1e-8))
  Tensor norm = ((feats * feats).sum(1) + 1e-8).sqrt().clamp_min(1e-8);           // [R]
  Tensor cosine = feats.mm(feats.t()) / (norm.unsqueeze(1) * norm.unsqueeze(0));  // [R,R]

  const Tensor same = y.unsqueeze(1).eq(y.unsqueeze(0));  // exact float equality, as the reference
  const Tensor eye = torch::eye(R, torch::TensorOptions().dtype(torch::kBool).device(feats.device()));
  const Tensor pos = same.logical_and(eye.logical_not());  // P: same label, other row         [R,R]
  const Tensor neg = same.logical_not();                   // Q: different label               [R,R]
  const Tensor n_pos = pos.sum(1), n_neg = neg.sum(1);     // [R]
  const Tensor valid = n_pos.gt(0).logical_and(n_neg.gt(0));
  const Tensor margin = (y.unsqueeze(1) - y.unsqueeze(0)).abs() * margin_scale;  // [R,R] = 0.15|y_a - y_q|

  // L_a = sum_{p in P, q in Q} max(0, m_aq - cos_ap + cos_aq) / (|P||Q|), as a masked [a,p,q] broadcast over
  // blocks of anchors so that the cube stays small for large batches.
  const Tensor negterm = (margin + cosine) * neg.to(cosine.scalar_type());  // m_aq + cos_aq, 0 outside Q
  const Tensor posf = pos.to(cosine.scalar_type()), negf = neg.to(cosine.scalar_type());
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(R, (int64_t{1} << 22) / (R * R)));
  std::vector<Tensor> sums;
  for (int64_t a0 = 0; a0 < R; a0 += block) {
    const int64_t nb = std::min(block, R - a0);
    Tensor hinge =
        (negterm.narrow(0, a0, nb).unsqueeze(1) - cosine.narrow(0, a0, nb).unsqueeze(2)).clamp_min(0);
    // zero the pairs outside P x Q                                                              [b,R(p),R(q)]
    hinge = hinge * posf.narrow(0, a0, nb).unsqueeze(2) * negf.narrow(0, a0, nb).unsqueeze(1);
    sums.push_back(hinge.sum({1, 2}));
  }
  Tensor per_anchor = torch::cat(sums) / (n_pos * n_neg).clamp_min(1).to(cosine.scalar_type());  // [R]
  const Tensor n_valid = valid.sum();
  if (n_valid.item<int64_t>() == 0) return torch::zeros({}, feats.options());
  return per_anchor.masked_select(valid).sum() / n_valid.to(cosine.scalar_type());
}

namespace {

Tensor zero_like_scalar(const Tensor& ref) {
  return torch::zeros({}, ref.options());
}

}  // namespace

LossTerms dmd_loss(const DMDOutput& out, const Tensor& labels, GraphDistill& homo, GraphDistill& hetero,
                   const LossConfig& cfg) {
  TORCH_CHECK(out.output_logit.defined(), "dmd_loss needs a DMD forward output");
  const Tensor y = labels.reshape({-1, 1}).to(out.output_logit.scalar_type());  // [N,1]
  const Tensor zero = zero_like_scalar(out.output_logit);
  LossTerms t;
  t.task = task_loss(out, y);

  if (cfg.decouple_losses) {
    if (!out.recon_l.defined()) {
      throw std::invalid_argument(
          "decoupling losses need a decoupled model (DMDConfig::decouple); switch "
          "LossConfig::decouple_losses off");
    }
    // MSE is the plain mean over elements; the targets are not detached.
    t.recon = torch::mse_loss(out.recon_l, out.origin_l) + torch::mse_loss(out.recon_v, out.origin_v) +
              torch::mse_loss(out.recon_a, out.origin_a);
    // s_m [T',N,d] back to [N,d,T'] against the re-encoded reconstruction.
    t.cycle = torch::mse_loss(out.s_l.permute({1, 2, 0}), out.s_l_r) +
              torch::mse_loss(out.s_v.permute({1, 2, 0}), out.s_v_r) +
              torch::mse_loss(out.s_a.permute({1, 2, 0}), out.s_a_r);
    t.ortho = ortho_loss(out.s_l, out.c_l, cfg.ortho_per_position) +
              ortho_loss(out.s_v, out.c_v, cfg.ortho_per_position) +
              ortho_loss(out.s_a, out.c_a, cfg.ortho_per_position);
    t.margin = margin_loss(out.c_l_sim, out.c_v_sim, out.c_a_sim, y, cfg.margin_scale);
  } else {
    t.recon = t.cycle = t.ortho = t.margin = zero;
  }

  if (cfg.use_homo_gd) {
    auto r = homo->forward(torch::stack({out.logits_l_homo, out.logits_v_homo, out.logits_a_homo}),
                           torch::stack({out.repr_l_homo, out.repr_v_homo, out.repr_a_homo}));
    t.homo_reg = r.reg, t.homo_logit = r.logit_loss, t.homo_repr = r.repr_loss, t.homo_edges = r.edges;
  } else {
    t.homo_reg = t.homo_logit = t.homo_repr = zero;
  }
  if (cfg.use_hetero_gd) {
    auto r = hetero->forward(torch::stack({out.logits_l_hetero, out.logits_v_hetero, out.logits_a_hetero}),
                             torch::stack({out.repr_l_hetero, out.repr_v_hetero, out.repr_a_hetero}));
    t.hetero_reg = r.reg, t.hetero_logit = r.logit_loss, t.hetero_repr = r.repr_loss,
    t.hetero_edges = r.edges;
  } else {
    t.hetero_reg = t.hetero_logit = t.hetero_repr = zero;
  }

  // The homo repr term is computed but, as in the reference trainer, not part of the total.
  t.total = t.task * cfg.w_task + (t.homo_logit + t.homo_reg) * cfg.w_homo +
            (t.hetero_logit + t.hetero_repr + t.hetero_reg) * cfg.w_hetero +
            (t.cycle + t.recon + (t.margin + t.ortho) * cfg.w_sim_ort) * cfg.w_decouple;
  return t;
}

}  // namespace dmdbench::models
