// What the trainer, the evaluator and the benchmarks need from a model: the resolved Config picks DMD (with its
// two graph-distillation units and the loss switches of the variant) or the MulT baseline.
#pragma once

#include <torch/torch.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "harness/experiment/config.h"
#include "harness/data/dataset.h"
#include "harness/io/bert_folder.h"
#include "baselines/mult.h"
#include "models/dmd.h"
#include "models/graph_distill.h"
#include "models/loss.h"
#include "models/state_dict.h"

namespace dmdbench {

// Mean learned edge weights, [from][to] over l, v, a (teacher -> student), per space.
using EdgeMatrix = std::array<std::array<double, 3>, 3>;

struct StepLoss {
  torch::Tensor total;  // what backward() runs on
  std::vector<std::pair<std::string, torch::Tensor>> terms;  // its parts by the spec's names (task, recon, ...)
};

class Trainable {
 public:
  virtual ~Trainable() = default;
  virtual std::vector<torch::Tensor> parameters() = 0;   // everything the one Adam optimises
  virtual void train(bool on) = 0;
  virtual StepLoss loss(const Batch& b) = 0;              // training loss of one batch
  // [B] regression output; with `edges`, also the per-sample edge weights [6,B] of each edge space; with
  // `heads`, every other output head the network has, by the reference's name (logits_c, logits_l_homo, ...; [B]).
  virtual torch::Tensor predict(const Batch& b, std::vector<torch::Tensor>* edges = nullptr,
                                std::vector<std::pair<std::string, torch::Tensor>>* heads = nullptr) = 0;
  // The edge spaces whose GD unit is in use ("homo", "hetero"), in the order predict() fills them.
  virtual std::vector<std::string> edge_spaces() const { return {}; }
  // Snapshot and restore of every module's weights (best-epoch selection).
  virtual models::StateDict snapshot() = 0;
  virtual void restore(const models::StateDict& s) = 0;
  // The network's own state_dict, in the reference's format (DMD without the GD units), and its strict load
  // (models::StateDictMismatch names every missing, unexpected and mis-shaped tensor).
  virtual models::StateDict network_state() = 0;
  virtual void load_network_state(const models::StateDict& s) = 0;
  virtual std::vector<std::string> network_parameter_names() = 0;  // the trainable tensors of network_state()
  virtual int64_t parameter_count() = 0;
};

// The model and loss configurations a resolved Config describes (exposed for the variant tests). With a text model
// (text_encoder bert-finetune or bert-frozen) `bert` is its architecture (ConfigError when null): the text
// projection then reads the BERT's hidden size and the text length is text_bert's.
models::DMDConfig dmd_config_of(const Config& cfg, const FeatureDims& dims, const models::BertConfig* bert = nullptr);
baselines::MulTConfig mult_config_of(const Config& cfg, const FeatureDims& dims);
models::LossConfig loss_config_of(const Config& cfg);
models::GraphDistillConfig homo_config_of(const Config& cfg);
models::GraphDistillConfig hetero_config_of(const Config& cfg);

// Builds the model the Config describes on `device` (parameters initialised from the global generator, which the
// caller seeds). With a text model, `bert` gives its architecture and weights (copied into the model's own
// text_model.model; the folder can be dropped afterwards); batches must then carry text_bert.
std::unique_ptr<Trainable> build_trainable(const Config& cfg, const FeatureDims& dims, torch::Device device,
                                           const BertFolder* bert = nullptr);

// The eager training step's forward, loss and backward on one batch (bf16 autocast on the batch's device when
// asked); returns the loss. The trainer, the CUDA-graph capture and the benchmark all step through this.
StepLoss loss_and_backward(Trainable& model, const Batch& b, bool autocast_bf16 = false);

// The name of the first loss term (or "total") that is not finite, "" when all are: a diverged run's diagnosis.
std::string non_finite_term(const StepLoss& loss);

// Sums edge weights over a batch into a 3x3 [from][to] matrix (edge x = (student j, teacher i)).
void accumulate_edges(const torch::Tensor& edges_6xB, EdgeMatrix& sum);

}  // namespace dmdbench
