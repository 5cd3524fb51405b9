// The DMD network (spec §1). Shape legend in dmd.h; internally the per-modality sequences are kept
// batch-first and time-major, [N,T',d] (proj_x, s, c, recon, s_r), and the outputs that the reference returns
// channel-major
// ([N,d,T']) or sequence-first ([T',N,d]) are views of those.
#include "models/dmd.h"

#include <stdexcept>

#include "models/jobs.h"
#include "models/ops.h"
#include "models/transformer.h"

namespace dmdbench::models {

using torch::Tensor;
using torch::nn::Conv1d;
using torch::nn::Conv1dOptions;
using torch::nn::Linear;

namespace {

Tensor conv1x1(const Tensor& x, const Conv1d& conv) {
  return ops::linear(x, conv->weight.squeeze(2));
}

Tensor maybe_dropout(const Tensor& x, double p, bool training) {
  return ops::dropout(x, p, training);
}

Linear linear(int64_t in, int64_t out) {
  return Linear(in, out);
}

}  // namespace

struct DMDImpl::Parts {
  Conv1d proj_l{nullptr}, proj_a{nullptr}, proj_v{nullptr};
  Conv1d encoder_s_l{nullptr}, encoder_s_v{nullptr}, encoder_s_a{nullptr}, encoder_c{nullptr};
  Conv1d decoder_l{nullptr}, decoder_v{nullptr}, decoder_a{nullptr};
  Linear proj_cosine_l{nullptr}, proj_cosine_v{nullptr}, proj_cosine_a{nullptr};
  Linear align_c_l{nullptr}, align_c_v{nullptr}, align_c_a{nullptr};
  TransformerEncoder self_attentions_c_l{nullptr}, self_attentions_c_v{nullptr}, self_attentions_c_a{nullptr};
  Linear proj1_c{nullptr}, proj2_c{nullptr}, out_layer_c{nullptr};
  TransformerEncoder trans_l_with_a{nullptr}, trans_l_with_v{nullptr}, trans_a_with_l{nullptr},
      trans_a_with_v{nullptr}, trans_v_with_l{nullptr}, trans_v_with_a{nullptr};
  TransformerEncoder trans_l_mem{nullptr}, trans_a_mem{nullptr}, trans_v_mem{nullptr};
  Linear proj1_l_low{nullptr}, proj2_l_low{nullptr}, out_layer_l_low{nullptr};
  Linear proj1_v_low{nullptr}, proj2_v_low{nullptr}, out_layer_v_low{nullptr};
  Linear proj1_a_low{nullptr}, proj2_a_low{nullptr}, out_layer_a_low{nullptr};
  Linear proj1_l_high{nullptr}, proj2_l_high{nullptr}, out_layer_l_high{nullptr};
  Linear proj1_v_high{nullptr}, proj2_v_high{nullptr}, out_layer_v_high{nullptr};
  Linear proj1_a_high{nullptr}, proj2_a_high{nullptr}, out_layer_a_high{nullptr};
  Linear weight_l{nullptr}, weight_v{nullptr}, weight_a{nullptr}, weight_c{nullptr};
  Linear proj1{nullptr}, proj2{nullptr}, out_layer{nullptr};
  // What steps 4 and 5 keep between calls (jobs.h: seeds and times per job), in evaluation [0] and training
  // [1].
  jobs::CallSite call_sites[2];
};

DMDImpl::DMDImpl(const DMDConfig& cfg) : cfg_(cfg), p_(std::make_shared<Parts>()) {
  const int64_t d = cfg.d;
  const int64_t tl = cfg.seq_len - cfg.kernel_l + 1, ta = cfg.audio_len - cfg.kernel_a + 1,
                tv = cfg.vision_len - cfg.kernel_v + 1;  // T' per modality
  TORCH_CHECK(tl > 0 && ta > 0 && tv > 0, "sequence lengths must exceed the conv kernels");
  Parts& p = *p_;
  auto conv = [&](const char* name, int64_t in, int64_t out, int64_t k) {
    return register_module(name, Conv1d(Conv1dOptions(in, out, k).padding(0).bias(false)));
  };
  auto lin = [&](const char* name, int64_t in, int64_t out) {
    return register_module(name, linear(in, out));
  };
  auto encoder = [&](const char* name, int64_t width, double attn_dropout) {
    TransformerEncoderOptions o;
    o.embed_dim = width, o.heads = cfg.heads, o.layers = cfg.nlevels;
    o.attn_dropout = attn_dropout, o.relu_dropout = cfg.relu_dropout, o.res_dropout = cfg.res_dropout;
    o.embed_dropout = cfg.embed_dropout, o.attn_mask = cfg.attn_mask;
    return register_module(name, TransformerEncoder(o));
  };
  auto mem_encoder = [&](const char* name) {
    TransformerEncoderOptions o;
    o.embed_dim = 2 * d, o.heads = cfg.heads, o.layers = std::max<int64_t>(cfg.nlevels, 3);
    o.attn_dropout = cfg.attn_dropout, o.relu_dropout = cfg.relu_dropout, o.res_dropout = cfg.res_dropout;
    o.embed_dropout = cfg.embed_dropout, o.attn_mask = cfg.attn_mask;
    // The concatenated crossmodal outputs are a contiguous [T',N,2d] tensor in the reference: time-major.
    o.position_layout = PositionLayout::TimeMajor;
    return register_module(name, TransformerEncoder(o));
  };

  // Registration order = the reference's state_dict order: the text model first (dmd.py builds it first).
  if (cfg.text_bert) {
    TORCH_CHECK(cfg.text_dim == cfg.bert.hidden, "the text projection reads the BERT's hidden size ",
                cfg.bert.hidden, ", got text_dim ", cfg.text_dim);
    auto text_model = register_module("text_model", std::make_shared<torch::nn::Module>());
    text_model_ = text_model->register_module("model", Bert(cfg.bert));
  }
  p.proj_l = conv("proj_l", cfg.text_dim, d, cfg.kernel_l);
  p.proj_a = conv("proj_a", cfg.audio_dim, d, cfg.kernel_a);
  p.proj_v = conv("proj_v", cfg.vision_dim, d, cfg.kernel_v);
  if (cfg.decouple) {
    p.encoder_s_l = conv("encoder_s_l", d, d, 1);
    p.encoder_s_v = conv("encoder_s_v", d, d, 1);
    p.encoder_s_a = conv("encoder_s_a", d, d, 1);
    p.encoder_c = conv("encoder_c", d, d, 1);
    p.decoder_l = conv("decoder_l", 2 * d, d, 1);
    p.decoder_v = conv("decoder_v", 2 * d, d, 1);
    p.decoder_a = conv("decoder_a", 2 * d, d, 1);
    p.proj_cosine_l = lin("proj_cosine_l", d * tl, d);
    p.proj_cosine_v = lin("proj_cosine_v", d * tv, d);
    p.proj_cosine_a = lin("proj_cosine_a", d * ta, d);
    p.align_c_l = lin("align_c_l", d * tl, d);
    p.align_c_v = lin("align_c_v", d * tv, d);
    p.align_c_a = lin("align_c_a", d * ta, d);
  }
  p.self_attentions_c_l = encoder("self_attentions_c_l", d, cfg.attn_dropout);
  p.self_attentions_c_v = encoder("self_attentions_c_v", d, cfg.attn_dropout_v);
  p.self_attentions_c_a = encoder("self_attentions_c_a", d, cfg.attn_dropout_a);
  p.proj1_c = lin("proj1_c", 3 * d, 3 * d);
  p.proj2_c = lin("proj2_c", 3 * d, 3 * d);
  p.out_layer_c = lin("out_layer_c", 3 * d, 1);
  p.trans_l_with_a = encoder("trans_l_with_a", d, cfg.attn_dropout_a);
  p.trans_l_with_v = encoder("trans_l_with_v", d, cfg.attn_dropout_v);
  p.trans_a_with_l = encoder("trans_a_with_l", d, cfg.attn_dropout);
  p.trans_a_with_v = encoder("trans_a_with_v", d, cfg.attn_dropout_v);
  p.trans_v_with_l = encoder("trans_v_with_l", d, cfg.attn_dropout);
  p.trans_v_with_a = encoder("trans_v_with_a", d, cfg.attn_dropout_a);
  p.trans_l_mem = mem_encoder("trans_l_mem");
  p.trans_a_mem = mem_encoder("trans_a_mem");
  p.trans_v_mem = mem_encoder("trans_v_mem");
  p.proj1_l_low = lin("proj1_l_low", d * tl, d);
  p.proj2_l_low = lin("proj2_l_low", d, d * tl);
  p.out_layer_l_low = lin("out_layer_l_low", d * tl, 1);
  p.proj1_v_low = lin("proj1_v_low", d * tv, d);
  p.proj2_v_low = lin("proj2_v_low", d, d * tv);
  p.out_layer_v_low = lin("out_layer_v_low", d * tv, 1);
  p.proj1_a_low = lin("proj1_a_low", d * ta, d);
  p.proj2_a_low = lin("proj2_a_low", d, d * ta);
  p.out_layer_a_low = lin("out_layer_a_low", d * ta, 1);
  p.proj1_l_high = lin("proj1_l_high", 2 * d, 2 * d);
  p.proj2_l_high = lin("proj2_l_high", 2 * d, 2 * d);
  p.out_layer_l_high = lin("out_layer_l_high", 2 * d, 1);
  p.proj1_v_high = lin("proj1_v_high", 2 * d, 2 * d);
  p.proj2_v_high = lin("proj2_v_high", 2 * d, 2 * d);
  p.out_layer_v_high = lin("out_layer_v_high", 2 * d, 1);
  p.proj1_a_high = lin("proj1_a_high", 2 * d, 2 * d);
  p.proj2_a_high = lin("proj2_a_high", 2 * d, 2 * d);
  p.out_layer_a_high = lin("out_layer_a_high", 2 * d, 1);
  p.weight_l = lin("weight_l", 2 * d, 2 * d);
  p.weight_v = lin("weight_v", 2 * d, 2 * d);
  p.weight_a = lin("weight_a", 2 * d, 2 * d);
  p.weight_c = lin("weight_c", 3 * d, 3 * d);
  p.proj1 = lin("proj1", 9 * d, 9 * d);
  p.proj2 = lin("proj2", 9 * d, 9 * d);
  p.out_layer = lin("out_layer", 9 * d, 1);
}

DMDOutput DMDImpl::forward(const Tensor& text, const Tensor& audio, const Tensor& vision) {
  Parts& p = *p_;
  const bool training = is_training();
  const double pout = cfg_.output_dropout;
  TORCH_CHECK(text.dim() == 3 && audio.dim() == 3 && vision.dim() == 3,
              "DMD expects batch-first [N,T,D] text, audio and vision");
  TORCH_CHECK(!cfg_.text_bert || text.size(1) == 3, "DMD with a text model expects text_bert [N,3,T], got ",
              text.sizes());
  const int64_t text_len = cfg_.text_bert ? text.size(2) : text.size(1);
  TORCH_CHECK(
      text_len == cfg_.seq_len && audio.size(1) == cfg_.audio_len && vision.size(1) == cfg_.vision_len,
      "DMD was built for lengths (l,a,v) = (", cfg_.seq_len, ",", cfg_.audio_len, ",", cfg_.vision_len,
      "), got (", text_len, ",", audio.size(1), ",", vision.size(1), ")");
  const int64_t N = text.size(0);
  DMDOutput out;

  // 0. Text model: BERT's last hidden state replaces the features (spec §1.2).                      [N,T,H]
  Tensor features = text;
  if (cfg_.text_bert) {
    const Tensor ids = text.select(1, 0).to(torch::kLong), mask = text.select(1, 1),
                 types = text.select(1, 2).to(torch::kLong);  // [N,T] each
    if (cfg_.text_finetune) {
      features = text_model_->forward(ids, mask, types).last_hidden_state;
    } else {
      torch::NoGradGuard no_grad;
      features = text_model_->forward(ids, mask, types).last_hidden_state;
    }
  }

  // 1. Temporal projection (conv without bias), text dropout first.               [N,T',d] time-major
  Tensor x_l = maybe_dropout(features, cfg_.text_dropout, training);
  Tensor proj_l = ops::temporal_conv(x_l, p.proj_l->weight);
  Tensor proj_a = ops::temporal_conv(audio, p.proj_a->weight);
  Tensor proj_v = ops::temporal_conv(vision, p.proj_v->weight);
  out.origin_l = proj_l.transpose(1, 2);  // [N,d,T'] views
  out.origin_v = proj_v.transpose(1, 2);
  out.origin_a = proj_a.transpose(1, 2);

  // 2. Decoupling: exclusive s_m, shared c_m, reconstruction and its re-encoding.  [N,T',d]
  Tensor s_l, s_v, s_a, c_l, c_v, c_a;
  if (cfg_.decouple) {
    s_l = conv1x1(proj_l, p.encoder_s_l), s_v = conv1x1(proj_v, p.encoder_s_v),
    s_a = conv1x1(proj_a, p.encoder_s_a);
    c_l = conv1x1(proj_l, p.encoder_c), c_v = conv1x1(proj_v, p.encoder_c),
    c_a = conv1x1(proj_a, p.encoder_c);
    // align_c reads c channel-major ([N,d,T'] flattened: index ch*T' + t).                              [N,d]
    out.c_l_sim = p.align_c_l(c_l.transpose(1, 2).reshape({N, -1}));
    out.c_v_sim = p.align_c_v(c_v.transpose(1, 2).reshape({N, -1}));
    out.c_a_sim = p.align_c_a(c_a.transpose(1, 2).reshape({N, -1}));
    Tensor recon_l = conv1x1(torch::cat({s_l, c_l}, 2), p.decoder_l);  // [N,T',d]
    Tensor recon_v = conv1x1(torch::cat({s_v, c_v}, 2), p.decoder_v);
    Tensor recon_a = conv1x1(torch::cat({s_a, c_a}, 2), p.decoder_a);
    out.recon_l = recon_l.transpose(1, 2), out.recon_v = recon_v.transpose(1, 2),
    out.recon_a = recon_a.transpose(1, 2);
    out.s_l_r = conv1x1(recon_l, p.encoder_s_l).transpose(1, 2);  // [N,d,T'] views
    out.s_v_r = conv1x1(recon_v, p.encoder_s_v).transpose(1, 2);
    out.s_a_r = conv1x1(recon_a, p.encoder_s_a).transpose(1, 2);
    // proj_cosine reads s time-major; returned, never used in a loss.                                   [N,d]
    out.proj_s_l = p.proj_cosine_l(s_l.reshape({N, -1}));
    out.proj_s_v = p.proj_cosine_v(s_v.reshape({N, -1}));
    out.proj_s_a = p.proj_cosine_a(s_a.reshape({N, -1}));
  } else {  // no-decoupling ablation: both branches see the projected features
    s_l = c_l = proj_l, s_v = c_v = proj_v, s_a = c_a = proj_a;
  }
  out.s_l = s_l.transpose(0, 1), out.s_v = s_v.transpose(0, 1),
  out.s_a = s_a.transpose(0, 1);  // [T',N,d] views
  out.c_l = c_l.transpose(0, 1), out.c_v = c_v.transpose(0, 1), out.c_a = c_a.transpose(0, 1);

  // 3. Homogeneous heads on c flattened time-major (index t*d + ch); repr is the post-ReLU bottleneck.
  auto low_head = [&](const Tensor& c, Linear& proj1, Linear& proj2, Linear& head, Tensor& repr) {
    Tensor h = c.reshape({N, -1});                               // [N,T'd]
    repr = proj1(h).relu_();                                     // [N,d]
    Tensor hp = proj2(maybe_dropout(repr, pout, training)) + h;  // [N,T'd]
    return head(hp);                                             // [N,1]
  };
  out.logits_l_homo = low_head(c_l, p.proj1_l_low, p.proj2_l_low, p.out_layer_l_low, out.repr_l_homo);
  out.logits_v_homo = low_head(c_v, p.proj1_v_low, p.proj2_v_low, p.out_layer_v_low, out.repr_v_homo);
  out.logits_a_homo = low_head(c_a, p.proj1_a_low, p.proj2_a_low, p.out_layer_a_low, out.repr_a_homo);

  // 4-5. The transformers and the c head as jobs (jobs.h): on two or more threads they run at once. Slots 0-2
  // are c_l, c_v, c_a (time-major [T',N,d]); s_l, s_v, s_a are slots 3-5 (decoupled) or the same as c.
  Tensor c_l_seq = out.c_l.contiguous(), c_v_seq = out.c_v.contiguous(), c_a_seq = out.c_a.contiguous();
  std::vector<Tensor> inputs = {c_l_seq, c_v_seq, c_a_seq};
  if (cfg_.decouple)
    inputs.insert(inputs.end(), {out.s_l.contiguous(), out.s_v.contiguous(), out.s_a.contiguous()});
  const int s0 = cfg_.decouple ? 3 : 0, sl = s0, sv = s0 + 1, sa = s0 + 2;
  jobs::Graph g(std::move(inputs));

  // 4. Self-attention on c (last time step only) and the c head.                                      [N,3d]
  const int c_att = add_last_step_job(g, p.self_attentions_c_l, {0});  // [N,d] each
  add_last_step_job(g, p.self_attentions_c_v, {1});
  add_last_step_job(g, p.self_attentions_c_a, {2});
  const int c_head =
      g.add({c_att, c_att + 1, c_att + 2}, 2, [&p, pout, training](const std::vector<Tensor>& in) {
        Tensor c_fusion = torch::cat(in, 1);  // [N,3d]
        Tensor c_proj = p.proj2_c(maybe_dropout(p.proj1_c(c_fusion).relu_(), pout, training)) + c_fusion;
        return std::vector<Tensor>{c_fusion, p.out_layer_c(c_proj)};  // [N,3d], [N,1]
      });

  // 5. Heterogeneous branch: crossmodal transformers on s ([T'_m,N,d] query, [T'_k,N,d] key = value ->
  // [T'_m,N,d]), memory transformers on the two outputs of a modality ([T'_m,N,2d] -> last step [N,2d]). Key
  // and value: the other modality, or (cross_modal_attention off) the query's own, so that trans_m_with_k
  // becomes self-attention on s_m.
  auto crossmodal = [&](const TransformerEncoder& enc, int query, int other) {
    return add_crossmodal_job(g, enc, query, cfg_.cross_modal_attention ? other : query);
  };
  const int l_cross = crossmodal(p.trans_l_with_a, sl, sa);
  crossmodal(p.trans_l_with_v, sl, sv);
  const int l_mem = add_last_step_job(g, p.trans_l_mem, {l_cross, l_cross + 1});
  const int a_cross = crossmodal(p.trans_a_with_l, sa, sl);
  crossmodal(p.trans_a_with_v, sa, sv);
  const int a_mem = add_last_step_job(g, p.trans_a_mem, {a_cross, a_cross + 1});
  const int v_cross = crossmodal(p.trans_v_with_l, sv, sl);
  crossmodal(p.trans_v_with_a, sv, sa);
  const int v_mem = add_last_step_job(g, p.trans_v_mem, {v_cross, v_cross + 1});
  const std::vector<Tensor> r = g.run({c_head, c_head + 1, l_mem, a_mem, v_mem}, p.call_sites[training]);
  const Tensor c_fusion = r[0];
  out.logits_c = r[1], out.last_h_l = r[2], out.last_h_a = r[3], out.last_h_v = r[4];

  // 6. Hetero heads; repr is the post-residual vector.
  auto high_head = [&](const Tensor& h, Linear& proj1, Linear& proj2, Linear& head, Tensor& repr) {
    repr = proj2(maybe_dropout(proj1(h).relu_(), pout, training)) + h;  // [N,2d]
    return head(repr);                                                  // [N,1]
  };
  out.logits_l_hetero =
      high_head(out.last_h_l, p.proj1_l_high, p.proj2_l_high, p.out_layer_l_high, out.repr_l_hetero);
  out.logits_v_hetero =
      high_head(out.last_h_v, p.proj1_v_high, p.proj2_v_high, p.out_layer_v_high, out.repr_v_hetero);
  out.logits_a_hetero =
      high_head(out.last_h_a, p.proj1_a_high, p.proj2_a_high, p.out_layer_a_high, out.repr_a_hetero);

  // 7. Fusion: the sigmoid outputs replace the features (no gating), residual MLP, output.          [N,9d]
  Tensor z = torch::cat({torch::sigmoid(p.weight_l(out.last_h_l)), torch::sigmoid(p.weight_v(out.last_h_v)),
                         torch::sigmoid(p.weight_a(out.last_h_a)), torch::sigmoid(p.weight_c(c_fusion))},
                        1);
  Tensor zp = p.proj2(maybe_dropout(p.proj1(z).relu_(), pout, training)) + z;
  out.output_logit = p.out_layer(zp);
  return out;
}

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& t : m.parameters(/*recurse=*/true)) n += t.numel();
  return n;
}

}  // namespace dmdbench::models
