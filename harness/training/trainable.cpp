#include "harness/training/trainable.h"

#include <algorithm>

#include "models/compat.h"
#include "models/dmd.h"
#include "models/graph_distill.h"
#include "models/loss.h"

namespace dmdbench {
namespace {

models::StateDict cloned(models::StateDict s, const std::string& prefix = "") {
  for (auto& [name, t] : s) {
    name = prefix + name;
    t = t.detach().clone();
  }
  return s;
}

models::StateDict with_prefix(const models::StateDict& s, const std::string& prefix) {
  models::StateDict out;
  for (const auto& [name, t] : s)
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

}  // namespace

models::DMDConfig dmd_config_of(const Config& c, const FeatureDims& d, const models::BertConfig* bert) {
  models::DMDConfig m;
  m.text_dim = d.text, m.audio_dim = d.audio, m.vision_dim = d.vision;
  m.seq_len = d.text_len, m.audio_len = d.audio_len, m.vision_len = d.vision_len;
  if (c.str("model") == "dmd" && uses_text_model(c)) {
    if (!bert) require_text_model(c, false);
    m.text_bert = true;
    m.text_finetune = c.str("text_encoder") == "bert-finetune";
    m.bert = *bert;
    m.text_dim = bert->hidden;
    if (d.text_bert_len > 0) m.seq_len = d.text_bert_len;
  }
  m.d = c.integer("d"), m.heads = c.integer("heads"), m.nlevels = c.integer("nlevels");
  m.kernel_l = c.integer("kernel_l"), m.kernel_a = c.integer("kernel_a"), m.kernel_v = c.integer("kernel_v");
  m.attn_dropout = c.num("attn_dropout"), m.attn_dropout_a = c.num("attn_dropout_a");
  m.attn_dropout_v = c.num("attn_dropout_v"), m.relu_dropout = c.num("relu_dropout");
  m.embed_dropout = c.num("embed_dropout"), m.res_dropout = c.num("res_dropout");
  m.text_dropout = c.num("text_dropout"), m.output_dropout = c.num("output_dropout");
  m.attn_mask = c.flag("attn_mask");
  if (c.has("decouple")) m.decouple = c.flag("decouple");
  if (c.has("cross_modal_attention")) m.cross_modal_attention = c.flag("cross_modal_attention");
  return m;
}

baselines::MulTConfig mult_config_of(const Config& c, const FeatureDims& dims) {
  baselines::MulTConfig m;
  m.base = dmd_config_of(c, dims);
  m.position_embedding = c.flag("position_embedding");
  return m;
}

models::LossConfig loss_config_of(const Config& c) {
  models::LossConfig l;
  l.w_task = c.num("w_task"), l.w_homo = c.num("w_homo"), l.w_hetero = c.num("w_hetero");
  l.w_decouple = c.num("w_decouple"), l.w_sim_ort = c.num("w_sim_ort");
  l.use_homo_gd = c.flag("use_homo_gd"), l.use_hetero_gd = c.flag("use_hetero_gd");
  l.decouple_losses = c.flag("decouple");
  l.ortho_per_position = c.flag("ortho_per_position");
  return l;
}

models::GraphDistillConfig homo_config_of(const Config& c) {
  auto g = models::GraphDistillConfig::homo(c.integer("d"));
  g.learn_edges = c.flag("learn_edges");
  return g;
}

models::GraphDistillConfig hetero_config_of(const Config& c) {
  auto g = models::GraphDistillConfig::hetero(c.integer("d"));
  g.learn_edges = c.flag("learn_edges");
  return g;
}

namespace {

const std::string kPositionIds = "text_model.model.embeddings.position_ids";

class DMDTrainable : public Trainable {
 public:
  DMDTrainable(const Config& c, const FeatureDims& dims, torch::Device device, const BertFolder* bert)
      : net_(dmd_config_of(c, dims, bert ? &bert->config : nullptr)),
        homo_(homo_config_of(c)),
        hetero_(hetero_config_of(c)),
        loss_(loss_config_of(c)) {
    if (net_->text_model()) models::load_state_dict(*net_->text_model(), models::state_dict(*bert->model));
    net_->to(device), homo_->to(device), hetero_->to(device);
  }

  std::vector<torch::Tensor> parameters() override {
    auto p = net_->parameters();
    for (const auto& m : {homo_->parameters(), hetero_->parameters()}) p.insert(p.end(), m.begin(), m.end());
    return p;
  }
  void train(bool on) override { net_->train(on), homo_->train(on), hetero_->train(on); }

  StepLoss loss(const Batch& b) override {
    const models::DMDOutput out = net_->forward(text_of(b), b.audio, b.vision);
    const models::LossTerms t = models::dmd_loss(out, b.labels, homo_, hetero_, loss_);
    StepLoss s{t.total, {}};
    const std::pair<const char*, const torch::Tensor*> parts[] = {
        {"task", &t.task},           {"recon", &t.recon},           {"cycle", &t.cycle},
        {"ortho", &t.ortho},         {"margin", &t.margin},         {"homo_reg", &t.homo_reg},
        {"homo_logit", &t.homo_logit}, {"hetero_reg", &t.hetero_reg}, {"hetero_logit", &t.hetero_logit},
        {"hetero_repr", &t.hetero_repr}};
    for (const auto& [name, term] : parts)
      if (term->defined()) s.terms.emplace_back(name, term->detach());
    return s;
  }

  torch::Tensor predict(const Batch& b, std::vector<torch::Tensor>* edges,
                        std::vector<std::pair<std::string, torch::Tensor>>* heads) override {
    const models::DMDOutput out = net_->forward(text_of(b), b.audio, b.vision);
    if (heads)
      *heads = {{"logits_c", out.logits_c.view({-1})},
                {"logits_l_homo", out.logits_l_homo.view({-1})},
                {"logits_v_homo", out.logits_v_homo.view({-1})},
                {"logits_a_homo", out.logits_a_homo.view({-1})},
                {"logits_l_hetero", out.logits_l_hetero.view({-1})},
                {"logits_v_hetero", out.logits_v_hetero.view({-1})},
                {"logits_a_hetero", out.logits_a_hetero.view({-1})}};
    if (edges) {
      edges->clear();
      if (loss_.use_homo_gd)
        edges->push_back(homo_->forward(torch::stack({out.logits_l_homo, out.logits_v_homo, out.logits_a_homo}),
                                        torch::stack({out.repr_l_homo, out.repr_v_homo, out.repr_a_homo}))
                             .edges);
      if (loss_.use_hetero_gd)
        edges->push_back(
            hetero_->forward(torch::stack({out.logits_l_hetero, out.logits_v_hetero, out.logits_a_hetero}),
                             torch::stack({out.repr_l_hetero, out.repr_v_hetero, out.repr_a_hetero}))
                .edges);
    }
    return out.output_logit.view({-1});
  }

  std::vector<std::string> edge_spaces() const override {
    std::vector<std::string> s;
    if (loss_.use_homo_gd) s.push_back("homo");
    if (loss_.use_hetero_gd) s.push_back("hetero");
    return s;
  }

  models::StateDict snapshot() override {
    auto s = cloned(models::state_dict(*net_), "dmd.");
    for (const auto& part : {cloned(models::state_dict(*homo_), "homo_gd."),
                             cloned(models::state_dict(*hetero_), "hetero_gd.")})
      s.insert(s.end(), part.begin(), part.end());
    return s;
  }
  void restore(const models::StateDict& s) override {
    models::load_state_dict(*net_, with_prefix(s, "dmd."));
    models::load_state_dict(*homo_, with_prefix(s, "homo_gd."));
    models::load_state_dict(*hetero_, with_prefix(s, "hetero_gd."));
  }
  models::StateDict network_state() override { return cloned(models::state_dict(*net_)); }
  // A checkpoint saved with transformers >= 4.31 has no embeddings.position_ids buffer: ours is kept then.
  void load_network_state(const models::StateDict& s) override {
    const bool missing_position_ids =
        net_->text_model() &&
        std::none_of(s.begin(), s.end(), [](const auto& kv) { return kv.first == kPositionIds; });
    if (!missing_position_ids) return models::load_state_dict(*net_, s);
    models::StateDict with = s;
    with.emplace_back(kPositionIds, net_->text_model()->position_ids.clone());
    models::load_state_dict(*net_, with);
  }
  std::vector<std::string> network_parameter_names() override { return net_->named_parameters().keys(); }
  int64_t parameter_count() override {
    return models::count_parameters(*net_) + models::count_parameters(*homo_) + models::count_parameters(*hetero_);
  }

 private:
  // The text input: text_bert for the text model, else the features.
  const torch::Tensor& text_of(const Batch& b) const {
    if (!net_->text_model()) return b.text;
    TORCH_CHECK(b.text_bert.defined(), "the text model reads text_bert, and this batch has none");
    return b.text_bert;
  }

  models::DMD net_;
  models::GraphDistill homo_, hetero_;
  models::LossConfig loss_;
};

class MulTTrainable : public Trainable {
 public:
  MulTTrainable(const Config& c, const FeatureDims& dims, torch::Device device) : net_(mult_config_of(c, dims)) {
    net_->to(device);
  }
  std::vector<torch::Tensor> parameters() override { return net_->parameters(); }
  void train(bool on) override { net_->train(on); }
  StepLoss loss(const Batch& b) override {
    const torch::Tensor task = torch::l1_loss(net_->forward(b.text, b.audio, b.vision).view({-1}), b.labels);
    return {task, {{"task", task.detach()}}};
  }
  torch::Tensor predict(const Batch& b, std::vector<torch::Tensor>* edges,
                        std::vector<std::pair<std::string, torch::Tensor>>* heads) override {
    if (edges) edges->clear();
    if (heads) heads->clear();
    return net_->forward(b.text, b.audio, b.vision).view({-1});
  }
  models::StateDict snapshot() override { return cloned(models::state_dict(*net_)); }
  void restore(const models::StateDict& s) override { models::load_state_dict(*net_, s); }
  models::StateDict network_state() override { return snapshot(); }
  void load_network_state(const models::StateDict& s) override { restore(s); }
  std::vector<std::string> network_parameter_names() override { return net_->named_parameters().keys(); }
  int64_t parameter_count() override { return models::count_parameters(*net_); }

 private:
  baselines::MulT net_;
};

}  // namespace

std::unique_ptr<Trainable> build_trainable(const Config& cfg, const FeatureDims& dims, torch::Device device,
                                           const BertFolder* bert) {
  if (cfg.str("model") == "mult") return std::make_unique<MulTTrainable>(cfg, dims, device);
  return std::make_unique<DMDTrainable>(cfg, dims, device, bert);
}

StepLoss loss_and_backward(Trainable& model, const Batch& b, bool autocast_bf16) {
  StepLoss loss;
  {
    models::compat::AutocastGuard autocast(b.text.device().type(), autocast_bf16);
    loss = model.loss(b);
  }
  loss.total.backward();
  return loss;
}

std::string non_finite_term(const StepLoss& loss) {
  for (const auto& [name, t] : loss.terms)
    if (!torch::isfinite(t).all().item<bool>()) return name;
  return loss.total.defined() && !torch::isfinite(loss.total).all().item<bool>() ? "total" : "";
}

void accumulate_edges(const torch::Tensor& edges_6xB, EdgeMatrix& sum) {
  const torch::Tensor per_edge = edges_6xB.detach().to(torch::kCPU, torch::kDouble).sum(1);  // [6]
  for (std::size_t x = 0; x < models::kEdges.size(); ++x) {
    const auto [student, teacher] = models::kEdges[x];
    sum[teacher][student] += per_edge[x].item<double>();
  }
}

}  // namespace dmdbench
