// The DMD network (Li et al., CVPR 2023) as the reference code computes it (spec §1).
//
// Shape legend: N = batch, T = input length (50), T' = T - k + 1 after the temporal conv, d = model width,
// D_l/D_a/D_v = raw feature dims. Modalities are ordered l (text), v (vision), a (audio) wherever stacked.
// Parameter and buffer names equal the reference's state_dict keys.
#pragma once

#include <torch/torch.h>

#include <string>

#include "models/bert.h"

namespace dmdbench::models {

// The module's sizes and switches. Its values come only from the configuration table
// (harness/experiment/config.cpp) and the data's widths and lengths; see dmd_config_of in harness/training.
struct DMDConfig {
  int64_t text_dim = 0, audio_dim = 0, vision_dim = 0;  // raw feature dims (l, a, v)
  int64_t seq_len = 0;                                   // T of the text
  int64_t audio_len = 0, vision_len = 0;                 // unaligned lengths may differ from the text's
  int64_t d = 0, heads = 0, nlevels = 0;
  int64_t kernel_l = 0, kernel_a = 0, kernel_v = 0;
  double attn_dropout = 0, attn_dropout_a = 0, attn_dropout_v = 0;
  double relu_dropout = 0, embed_dropout = 0, res_dropout = 0;
  double text_dropout = 0, output_dropout = 0;
  bool attn_mask = true;
  // Ablation switch (off = the no-decoupling variant): shared/exclusive encoders become identity maps,
  // c_m = s_m = proj_x_m; decoders and align/proj_cosine layers are not built.
  bool decouple = true;
  // Ablation switch (off = the paper's Table 3 rows without CA; the paper defines no code for it, this is our
  // reading): each crossmodal transformer of the heterogeneous path (trans_m_with_k) takes its own modality's
  // exclusive features s_m as query, key and value, i.e. self-attention with the same modules, shapes and
  // parameters; no information flows between modalities before the fusion layer.
  bool cross_modal_attention = true;
  // Text encoder (spec §1.2). Off: `text` is precomputed features [N,T,D_l]. On: a BERT registered as
  // text_model.model (transformers' names below it) reads text_bert [N,3,L] (token ids, attention mask, segment
  // ids, stored as float), and its last hidden state [N,L,H] replaces the features; text_dim must equal H.
  // text_finetune off: BERT runs under no_grad (the reference's use_finetune=false), its dropout still active in
  // train mode.
  bool text_bert = false;
  bool text_finetune = true;
  BertConfig bert;
};

// Every output the reference forward returns (spec §1.10). Tensors not produced in a variant are undefined.
struct DMDOutput {
  torch::Tensor output_logit, logits_c;                          // [N,1]
  torch::Tensor logits_l_homo, logits_v_homo, logits_a_homo;     // [N,1]
  torch::Tensor logits_l_hetero, logits_v_hetero, logits_a_hetero;  // [N,1]
  torch::Tensor repr_l_homo, repr_v_homo, repr_a_homo;           // [N,d] post-ReLU
  torch::Tensor repr_l_hetero, repr_v_hetero, repr_a_hetero;     // [N,2d]
  torch::Tensor origin_l, origin_v, origin_a;                    // [N,d,T'] = proj_x
  torch::Tensor s_l, s_v, s_a, c_l, c_v, c_a;                    // [T',N,d]
  torch::Tensor s_l_r, s_v_r, s_a_r, recon_l, recon_v, recon_a;  // [N,d,T']
  torch::Tensor proj_s_l, proj_s_v, proj_s_a;                    // [N,d]
  torch::Tensor c_l_sim, c_v_sim, c_a_sim;                       // [N,d]
  torch::Tensor last_h_l, last_h_v, last_h_a;                    // [N,2d]
};

class DMDImpl : public torch::nn::Module {
 public:
  explicit DMDImpl(const DMDConfig& cfg);
  // text [N,T,D_l] features, or text_bert [N,3,T] with the text model; audio [N,T_a,D_a], vision [N,T_v,D_v]
  // (batch-first, as the data loader gives them).
  DMDOutput forward(const torch::Tensor& text, const torch::Tensor& audio, const torch::Tensor& vision);
  const DMDConfig& config() const { return cfg_; }
  // The BERT under text_model.model (nullptr without the text model).
  Bert text_model() const { return text_model_; }

 private:
  DMDConfig cfg_;
  Bert text_model_{nullptr};
  // submodules registered under the reference's names (proj_l, encoder_s_l, encoder_c, decoder_l, ...)
  struct Parts;
  std::shared_ptr<Parts> p_;
};
TORCH_MODULE(DMD);

// Number of trainable parameters (what the spec's §1.12 counts).
int64_t count_parameters(const torch::nn::Module& m);

}  // namespace dmdbench::models
