// The BERT text encoder (spec §1.2.1): parity with the golden bert-tiny outputs (../shared/golden/bert-tiny,
// both folder spellings), names and order of the reference's state dict, a per-head re-implementation of
// transformers' eager BertModel for the forward and every gradient, the [PAD] row's gradient, dropout and
// initialisation.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "harness/io/bert_folder.h"
#include "harness/io/checkpoint.h"
#include "harness/io/pickle.h"
#include "models/bert.h"
#include "models/state_dict.h"

namespace m = dmdbench::models;
namespace pk = dmdbench::pickle;
namespace fs = std::filesystem;
using torch::Tensor;

namespace {

const std::string kGolden = std::string(DMDBENCH_SHARED_DIR) + "/golden/bert-tiny";

Tensor to_tensor(const pk::NdArray& a) {
  const auto type = a.dtype == pk::DType::Float64 ? torch::kDouble : torch::kFloat;
  EXPECT_TRUE(a.dtype == pk::DType::Float64 || a.dtype == pk::DType::Float32) << pk::dtype_name(a.dtype);
  EXPECT_FALSE(a.fortran_order);
  Tensor t = torch::empty(a.shape, type);
  std::memcpy(t.data_ptr(), a.data, a.nbytes);
  return t;
}

struct TextBert {
  Tensor ids, mask, types;  // [N,L] int64, float, int64
};

// The test split's text_bert [n,3,50]: channel 0 token ids, 1 attention mask, 2 token type ids (spec §1.2).
const TextBert& golden_text_bert() {
  static const TextBert tb = [] {
    const pk::Value v = pk::load_file(kGolden + "/data.pkl", pk::GlobalPolicy::numpy());
    const Tensor t = to_tensor(v.find("test")->find("text_bert")->array()).to(torch::kFloat);
    return TextBert{t.select(1, 0).to(torch::kLong), t.select(1, 1).contiguous(),
                    t.select(1, 2).to(torch::kLong)};
  }();
  return tb;
}

std::map<std::string, Tensor> golden_expected() {
  const pk::Value v = pk::load_file(kGolden + "/expected_bert.pkl", pk::GlobalPolicy::numpy());
  return {{"last_hidden_state", to_tensor(v.find("last_hidden_state")->array()).to(torch::kFloat)},
          {"pooler_output", to_tensor(v.find("pooler_output")->array()).to(torch::kFloat)}};
}

// Every element within rel of its reference, or within abs for tiny values; returns, for the report, the
// largest relative error over elements of magnitude >= 0.01 (smaller ones are sums that cancelled) and the
// largest absolute error.
std::pair<double, double> check_close(const Tensor& got, const Tensor& want, double rel, double abs,
                                      const std::string& what) {
  EXPECT_EQ(got.sizes(), want.sizes()) << what;
  const Tensor g = got.to(torch::kDouble), w = want.to(torch::kDouble);
  const Tensor err = (g - w).abs();
  const Tensor bad = (err > w.abs() * rel) & (err > abs);
  EXPECT_EQ(bad.sum().item<int64_t>(), 0)
      << what << ": " << bad.sum().item<int64_t>() << " of " << err.numel() << " elements off, max abs err "
      << err.max().item<double>();
  const Tensor big = w.abs() >= 1e-2;
  const double max_rel = big.any().item<bool>()
                             ? (err.masked_select(big) / w.abs().masked_select(big)).max().item<double>()
                             : 0.0;
  return {max_rel, err.max().item<double>()};
}

fs::path temp_dir(const std::string& tag) {
  // one root per process, removed when the test program ends
  static const struct Root {
    fs::path path = fs::temp_directory_path() / ("dmdbench_bert_" + std::to_string(::getpid()));
    ~Root() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } root;
  const fs::path d = root.path / tag;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A folder with config.json and only pytorch_model.bin (bert-base-uncased's spelling).
std::string bin_only_folder() {
  static const std::string dir = [] {
    const fs::path d = temp_dir("bin");
    fs::copy_file(kGolden + "/bert/config.json", d / "config.json");
    fs::copy_file(kGolden + "/bert/pytorch_model.bin", d / "pytorch_model.bin");
    return d.string();
  }();
  return dir;
}

m::BertConfig small_config() {
  m::BertConfig c;
  c.hidden = 24;
  c.layers = 2;
  c.heads = 3;
  c.intermediate = 40;
  c.vocab = 50;
  c.max_positions = 16;
  c.type_vocab = 2;
  c.hidden_dropout = c.attention_dropout = 0.0;
  return c;
}

// A batch with padded tails (id 0, mask 0) of different lengths, as text_bert holds.
TextBert small_batch(int64_t N, int64_t L, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  TextBert b;
  b.ids = torch::randint(1, vocab, {N, L}, torch::kLong);
  b.mask = torch::ones({N, L});
  for (int64_t n = 0; n < N; ++n) {
    const int64_t len = L - (n * 3) % (L - 1);  // 1..L real tokens
    b.ids[n].narrow(0, len, L - len).fill_(0);
    b.mask[n].narrow(0, len, L - len).fill_(0);
  }
  b.types = (torch::arange(L, torch::kLong) >= L / 2).to(torch::kLong).expand({N, L}).contiguous();
  return b;
}

// transformers' eager BertModel, written out as in modeling_bert.py: separate q/k/v Linear calls, a loop over
// heads, division by sqrt(e), the -10000 mask, LayerNorm(dense + input). Uses the module's own tensors.
m::BertOutput reference_bert(m::BertImpl& b, const TextBert& in) {
  namespace F = torch::nn::functional;
  const m::BertConfig& c = b.config();
  std::map<std::string, Tensor> p;
  for (const auto& kv : m::state_dict(b)) p[kv.first] = kv.second;
  const int64_t L = in.ids.size(1), e = c.hidden / c.heads;
  auto ln = [&](const Tensor& x, const std::string& prefix) {
    return torch::layer_norm(x, {c.hidden}, p[prefix + ".weight"], p[prefix + ".bias"], c.eps);
  };
  auto lin = [&](const Tensor& x, const std::string& prefix) {
    return F::linear(x, p[prefix + ".weight"], p[prefix + ".bias"]);
  };
  Tensor x = F::embedding(in.ids, p["embeddings.word_embeddings.weight"],
                          F::EmbeddingFuncOptions().padding_idx(c.pad_token_id)) +
             F::embedding(in.types, p["embeddings.token_type_embeddings.weight"]);
  x = x +
      F::embedding(p["embeddings.position_ids"].narrow(1, 0, L), p["embeddings.position_embeddings.weight"]);
  x = ln(x, "embeddings.LayerNorm");
  const Tensor ext = (1.0 - in.mask.unsqueeze(1)) * -10000.0;  // [N,1,L]
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string l = "encoder.layer." + std::to_string(i);
    const Tensor q = lin(x, l + ".attention.self.query"), k = lin(x, l + ".attention.self.key"),
                 v = lin(x, l + ".attention.self.value");
    std::vector<Tensor> heads;
    for (int64_t hd = 0; hd < c.heads; ++hd) {
      const Tensor qh = q.narrow(2, hd * e, e), kh = k.narrow(2, hd * e, e), vh = v.narrow(2, hd * e, e);
      const Tensor scores = torch::matmul(qh, kh.transpose(1, 2)) / std::sqrt(static_cast<double>(e)) + ext;
      heads.push_back(torch::matmul(torch::softmax(scores, -1), vh));
    }
    const Tensor a =
        ln(lin(torch::cat(heads, 2), l + ".attention.output.dense") + x, l + ".attention.output.LayerNorm");
    const Tensor inter = torch::gelu(lin(a, l + ".intermediate.dense"));
    x = ln(lin(inter, l + ".output.dense") + a, l + ".output.LayerNorm");
  }
  return {x, torch::tanh(lin(x.select(1, 0), "pooler.dense"))};
}

}  // namespace

TEST(ModelsBert, NamesShapesAndOrderEqualTheReferenceStateDict) {
  // The reference DMD's checkpoint holds its BERT as text_model.model.<transformers name>, position_ids
  // first.
  const auto dmd = dmdbench::read_checkpoint(kGolden + "/state_dict.pth");
  const std::string prefix = "text_model.model.";
  m::StateDict want;
  for (const auto& [name, t] : dmd)
    if (name.rfind(prefix, 0) == 0) want.emplace_back(name.substr(prefix.size()), t);
  m::BertConfig c;
  c.hidden = 32, c.layers = 2, c.heads = 4, c.intermediate = 64, c.vocab = 512, c.max_positions = 64;
  m::Bert bert(c);
  const m::StateDict own = m::state_dict(*bert);
  ASSERT_EQ(own.size(), want.size());
  ASSERT_EQ(own.size(), 40u);  // 39 parameters + position_ids
  for (size_t i = 0; i < own.size(); ++i) {
    EXPECT_EQ(own[i].first, want[i].first) << i;
    EXPECT_EQ(own[i].second.sizes(), want[i].second.sizes()) << own[i].first;
    EXPECT_EQ(own[i].second.scalar_type(), want[i].second.scalar_type()) << own[i].first;
  }
  EXPECT_TRUE(torch::equal(bert->position_ids, want[0].second));  // arange(64)
  EXPECT_EQ(bert->parameters().size(), 39u);
  EXPECT_EQ(bert->buffers().size(), 1u);
}

TEST(ModelsBert, GoldenOutputsFromBothFolderSpellings) {
  const auto expected = golden_expected();
  const TextBert& in = golden_text_bert();
  ASSERT_EQ(in.ids.sizes(), (std::vector<int64_t>{12, 50}));
  EXPECT_GT((in.mask == 0).sum().item<int64_t>(), 0);  // the split has padding
  for (const std::string& dir : {kGolden + "/bert", bin_only_folder()}) {
    dmdbench::BertFolder f = dmdbench::load_bert_folder(dir);
    f.model->eval();
    torch::NoGradGuard ng;
    const m::BertOutput o = f.model->forward(in.ids, in.mask, in.types);
    const auto [rel_h, abs_h] = check_close(o.last_hidden_state, expected.at("last_hidden_state"), 1e-5, 1e-6,
                                            dir + " last_hidden_state");
    const auto [rel_p, abs_p] =
        check_close(o.pooler_output, expected.at("pooler_output"), 1e-5, 1e-6, dir + " pooler_output");
    std::cout << "[golden bert] " << f.weights_format << ": last_hidden_state max rel err (|x| >= 0.01) "
              << rel_h << " (abs " << abs_h << "), pooler_output max rel err (|x| >= 0.01) " << rel_p
              << " (abs " << abs_p << ")\n";
  }
}

TEST(ModelsBert, BothSpellingsLoadIdenticalWeights) {
  const dmdbench::BertFolder a = dmdbench::load_bert_folder(kGolden + "/bert");
  const dmdbench::BertFolder b = dmdbench::load_bert_folder(bin_only_folder());
  EXPECT_EQ(a.weights_format, "safetensors");
  EXPECT_EQ(b.weights_format, "torch.save");
  EXPECT_EQ(a.note, "");
  EXPECT_EQ(b.note, "ignored 7 pre-training head tensors (cls.*)");
  EXPECT_EQ(a.config_json, b.config_json);
  const m::StateDict sa = m::state_dict(*a.model), sb = m::state_dict(*b.model);
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << sa[i].first;
  }
}

TEST(ModelsBert, ForwardAndEveryGradientMatchPerHeadTransformersCode) {
  m::BertConfig c = small_config();
  m::Bert bert(c);
  bert->train();  // dropout probabilities are 0: the train path, deterministic
  const TextBert in = small_batch(5, 12, c.vocab, 7);
  const Tensor w_h = torch::randn({5, 12, c.hidden}), w_p = torch::randn({5, c.hidden});
  const auto params = bert->parameters();

  const m::BertOutput ref = reference_bert(*bert, in);
  const auto ref_grads =
      torch::autograd::grad({(ref.last_hidden_state * w_h).sum() + (ref.pooler_output * w_p).sum()}, params);
  const m::BertOutput got = bert->forward(in.ids, in.mask, in.types);
  const auto got_grads = torch::autograd::grad(
      {(got.last_hidden_state * w_h).sum() + (got.pooler_output * w_p).sum()}, params,
      /*grad_outputs=*/{}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);

  check_close(got.last_hidden_state, ref.last_hidden_state, 1e-5, 1e-6, "last_hidden_state");
  check_close(got.pooler_output, ref.pooler_output, 1e-5, 1e-6, "pooler_output");
  const auto names = bert->named_parameters();
  ASSERT_EQ(got_grads.size(), ref_grads.size());
  double worst = 0;
  for (size_t i = 0; i < got_grads.size(); ++i) {
    const std::string& name = names[i].key();
    ASSERT_TRUE(got_grads[i].defined()) << name;
    const double scale = ref_grads[i].abs().max().item<double>();
    const double err = (got_grads[i] - ref_grads[i]).abs().max().item<double>();
    EXPECT_LE(err, 1e-5 * scale + 1e-7) << name << " (largest gradient " << scale << ")";
    // attention.self.key.bias has an analytically zero gradient (softmax ignores a per-query constant): noise
    if (name.find("key.bias") == std::string::npos) worst = std::max(worst, err / scale);
  }
  std::cout << "[bert vs per-head reference] largest gradient error / largest gradient of that tensor: "
            << worst << "\n";
}

TEST(ModelsBert, PaddingRowGetsNoGradientWhileUsedRowsDo) {
  m::BertConfig c = small_config();
  c.hidden_dropout = c.attention_dropout = 0.1;  // train mode as in fine-tuning
  m::Bert bert(c);
  bert->train();
  const TextBert in = small_batch(6, 10, 20, 11);  // ids < 20: rows 20.. are never used
  ASSERT_GT((in.ids == c.pad_token_id).sum().item<int64_t>(), 0);
  const m::BertOutput o = bert->forward(in.ids, in.mask, in.types);
  (o.last_hidden_state.pow(2).sum() + o.pooler_output.sum()).backward();
  const Tensor g = bert->word_embeddings->weight.grad();
  ASSERT_TRUE(g.defined());
  EXPECT_EQ(g[c.pad_token_id].abs().max().item<float>(), 0.0f);  // exactly zero: padding_idx
  for (int64_t id = 1; id < 20; ++id) {
    if ((in.ids == id).any().item<bool>()) {
      EXPECT_GT(g[id].abs().max().item<float>(), 0.0f) << "row " << id;
    }
  }
  EXPECT_EQ(g.narrow(0, 20, c.vocab - 20).abs().max().item<float>(), 0.0f);  // unused rows
  // the pad positions themselves do reach position and token-type embeddings
  EXPECT_GT(bert->position_embeddings->weight.grad()[9].abs().max().item<float>(), 0.0f);
  EXPECT_EQ(bert->position_embeddings->weight.grad().narrow(0, 10, 6).abs().max().item<float>(), 0.0f);
}

TEST(ModelsBert, DropoutIsActiveInTrainModeAndOffInEvalMode) {
  const auto expected = golden_expected();
  const TextBert& in = golden_text_bert();
  dmdbench::BertFolder f = dmdbench::load_bert_folder(kGolden + "/bert");  // dropouts 0.1
  torch::NoGradGuard ng;
  f.model->eval();
  const Tensor eval1 = f.model->forward(in.ids, in.mask, in.types).last_hidden_state;
  const Tensor eval2 = f.model->forward(in.ids, in.mask, in.types).last_hidden_state;
  EXPECT_TRUE(torch::equal(eval1, eval2));  // no randomness in eval mode
  check_close(eval1, expected.at("last_hidden_state"), 1e-5, 1e-6, "eval");

  f.model->train();
  torch::manual_seed(3);
  const Tensor train1 = f.model->forward(in.ids, in.mask, in.types).last_hidden_state;
  torch::manual_seed(3);
  const Tensor train2 = f.model->forward(in.ids, in.mask, in.types).last_hidden_state;
  const Tensor train3 = f.model->forward(in.ids, in.mask, in.types).last_hidden_state;
  EXPECT_TRUE(torch::equal(train1, train2));  // the masks follow torch::manual_seed
  EXPECT_FALSE(torch::equal(train1, train3));
  const double moved = (train1 - eval1).abs().mean().item<double>();
  EXPECT_GT(moved, 0.05) << "mean |train - eval| " << moved;  // LayerNorm'd outputs are O(1)

  // The same model with every dropout probability 0 in train mode gives the eval output.
  m::BertConfig c0 = f.config;
  c0.hidden_dropout = c0.attention_dropout = 0.0;
  m::Bert zero(c0);
  m::load_state_dict(*zero, m::state_dict(*f.model));
  zero->train();
  EXPECT_TRUE(torch::equal(zero->forward(in.ids, in.mask, in.types).last_hidden_state, eval1));
}

TEST(ModelsBert, InitialisationFollowsTransformers) {
  m::BertConfig c = small_config();
  c.hidden = 64, c.heads = 4, c.intermediate = 256, c.vocab = 4000, c.max_positions = 40;
  c.initializer_range = 0.02;
  torch::manual_seed(5);
  m::Bert bert(c);
  for (const auto& p : bert->named_parameters()) {
    const std::string& name = p.key();
    const Tensor& t = p.value();
    if (name.find("LayerNorm.weight") != std::string::npos) {
      EXPECT_TRUE(torch::equal(t, torch::ones_like(t))) << name;
    } else if (name.size() > 5 && name.substr(name.size() - 5) == ".bias") {
      EXPECT_TRUE(torch::equal(t, torch::zeros_like(t))) << name;
    } else if (t.numel() >= 4096) {
      Tensor v = name == "embeddings.word_embeddings.weight" ? t.narrow(0, 1, c.vocab - 1) : t;
      EXPECT_NEAR(v.std().item<double>(), 0.02, 0.02 * 5 / std::sqrt(static_cast<double>(v.numel()))) << name;
      EXPECT_NEAR(v.mean().item<double>(), 0.0, 0.02 * 5 / std::sqrt(static_cast<double>(v.numel()))) << name;
    }
  }
  EXPECT_TRUE(torch::equal(bert->word_embeddings->weight[0], torch::zeros({c.hidden})));  // padding row
  EXPECT_TRUE(torch::equal(bert->position_ids, torch::arange(40, torch::kLong).unsqueeze(0)));
}

TEST(ModelsBert, BadInputsAreRefusedInOneSentence) {
  m::BertConfig c = small_config();
  m::Bert bert(c);
  const TextBert in = small_batch(2, 8, c.vocab, 1);
  auto expect_error = [](auto&& f, const std::string& part) {
    try {
      f();
      ADD_FAILURE() << "no error; expected: " << part;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  };
  const Tensor too_big = in.ids + c.vocab;
  expect_error(
      [&] { bert->forward(too_big, in.mask, in.types); },
      "bert token id " + std::to_string(too_big.max().item<int64_t>()) + " is outside the vocabulary of 50");
  expect_error([&] { bert->forward(in.ids - 1, in.mask, in.types); },
               "bert token id -1 is outside the vocabulary");
  expect_error([&] { bert->forward(in.ids, in.mask, in.types + 2); },
               "bert token type id 3 is outside the 2 token types");
  const TextBert longer = small_batch(1, 17, c.vocab, 1);
  expect_error([&] { bert->forward(longer.ids, longer.mask, longer.types); },
               "bert input of 17 tokens is longer than 16 positions");
  expect_error([&] { bert->forward(in.ids, in.mask.narrow(1, 0, 4), in.types); },
               "bert attention_mask must have the shape of input_ids [2,8], got [2,4]");
  m::BertConfig bad = c;
  bad.heads = 5;
  expect_error([&] { m::Bert b(bad); },
               "bert config hidden_size 24 is not a multiple of num_attention_heads 5");
}
