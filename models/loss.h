// The DMD training loss, term by term as spec §3.3 composes it.
#pragma once

#include <torch/torch.h>

#include "models/dmd.h"
#include "models/graph_distill.h"

namespace dmdbench::models {

struct LossConfig {
  // total = w_task*task + w_homo*(homo_logit + homo_reg) + w_hetero*(hetero_logit + hetero_repr + hetero_reg)
  //         + w_decouple*(cycle + recon + w_sim_ort*(margin + ortho))
  double w_task = 1.0, w_homo = 0.05, w_hetero = 0.05, w_decouple = 0.1, w_sim_ort = 0.1;
  bool use_homo_gd = true, use_hetero_gd = true;  // homo-only / hetero-only / no-distill switch these off
  bool decouple_losses = true;                    // no-decoupling: recon, cycle, ortho, margin dropped
  bool ortho_per_position = false;                // legacy batch-axis cosine by default (spec §3.3)
  double margin_scale = 0.15;                     // the 0.15*|y_a - y_q| margin of the sim loss
};

struct LossTerms {
  torch::Tensor task, recon, cycle, ortho, margin;
  torch::Tensor homo_reg, homo_logit, homo_repr, hetero_reg, hetero_logit, hetero_repr;
  torch::Tensor total;
  torch::Tensor homo_edges, hetero_edges;  // [6,N] per-sample edge weights (undefined when the unit is off)
};

// labels: [N] or [N,1]. A switched-off GD unit (use_homo_gd / use_hetero_gd false) is not run: its terms are
// zero and its edges undefined. decouple_losses needs a decoupled model (throws std::invalid_argument otherwise).
// Every term is a scalar tensor; homo_repr is computed but, as in the reference trainer, not in total.
LossTerms dmd_loss(const DMDOutput& out, const torch::Tensor& labels, GraphDistill& homo, GraphDistill& hetero,
                   const LossConfig& cfg);

// Individual terms, exposed for tests.
torch::Tensor task_loss(const DMDOutput& out, const torch::Tensor& labels_n1);      // sum of 8 L1 means
torch::Tensor ortho_loss(const torch::Tensor& s, const torch::Tensor& c, bool per_position);  // [T',N,d] each
// Margin ("sim") loss over 3N rows [c_l_sim(i), c_v_sim(i), c_a_sim(i)], vectorised.
torch::Tensor margin_loss(const torch::Tensor& c_l_sim, const torch::Tensor& c_v_sim, const torch::Tensor& c_a_sim,
                          const torch::Tensor& labels_n, double margin_scale = 0.15);

}  // namespace dmdbench::models
