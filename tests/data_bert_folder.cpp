// Hugging Face BERT folders: provenance of the golden bert-tiny folder, config.json checks, missing files,
// hostile safetensors files, the strict load (missing / unexpected / mis-shaped tensors named), both
// spellings of pytorch_model.bin, position_ids present or absent, F16/BF16 weight files.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>

#include "harness/io/bert_folder.h"
#include "harness/io/checkpoint.h"
#include "harness/io/safetensors_tensors.h"
#include "harness/io/sha256.h"
#include "models/state_dict.h"
#include "tests/safetensors_support.h"

using namespace dmdbench;
namespace fs = std::filesystem;
namespace ts = dmdbench::testing_support;
using torch::Tensor;

namespace {

const std::string kGolden = std::string(DMDBENCH_SHARED_DIR) + "/golden/bert-tiny/bert";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A fresh folder per call: tag names it.
fs::path folder(const std::string& tag) {
  // one root per process, removed when the test program ends
  static const struct Root {
    fs::path path = fs::temp_directory_path() / ("dmdbench_bertdir_" + std::to_string(::getpid()));
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

// config.json of the golden folder with one key changed (null value: key removed).
std::string config_with(const std::string& key, const nlohmann::ordered_json& value) {
  auto j = nlohmann::ordered_json::parse(read_text(kGolden + "/config.json"));
  if (value.is_null())
    j.erase(key);
  else
    j[key] = value;
  return j.dump(2);
}

const models::StateDict& golden_tensors() {
  static const models::StateDict sd = safetensors::read_safetensors(kGolden + "/model.safetensors");
  return sd;
}

// The golden tensors as safetensors entries; float tensors in `dtype` (F32, F16 or BF16).
std::vector<ts::RawTensor> raw_golden(const std::string& dtype = "F32") {
  std::vector<ts::RawTensor> out;
  for (const auto& [name, t] : golden_tensors()) {
    Tensor c = t.contiguous();
    if (dtype == "F16") c = c.to(torch::kHalf);
    if (dtype == "BF16") c = c.to(torch::kBFloat16);
    std::string bytes(static_cast<size_t>(c.numel() * c.element_size()), '\0');
    std::memcpy(bytes.data(), c.data_ptr(), bytes.size());
    out.push_back({name, dtype, c.sizes().vec(), bytes});
  }
  return out;
}

fs::path folder_with(const std::string& tag, const std::string& config,
                     const std::string& safetensors_bytes) {
  const fs::path d = folder(tag);
  ts::write_bytes((d / "config.json").string(), config);
  if (!safetensors_bytes.empty()) ts::write_bytes((d / "model.safetensors").string(), safetensors_bytes);
  return d;
}

// The load fails with one line that contains `part` and, if given, starts with `start`.
void expect_error(const fs::path& dir, const std::string& part, const std::string& start = "") {
  try {
    load_bert_folder(dir.string());
    ADD_FAILURE() << "no BertFolderError for " << dir << "; expected: " << part;
  } catch (const BertFolderError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(part), std::string::npos) << what;
    EXPECT_EQ(what.rfind(start, 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

std::string golden_config() {
  return read_text(kGolden + "/config.json");
}

}  // namespace

TEST(BertFolder, GoldenFolderLoadsWithConfigAndProvenance) {
  const BertFolder f = load_bert_folder(kGolden);
  EXPECT_EQ(f.weights_path, kGolden + "/model.safetensors");
  EXPECT_EQ(f.weights_format, "safetensors");
  EXPECT_EQ(f.weights_sha256, sha256_file(kGolden + "/model.safetensors"));
  EXPECT_EQ(f.weights_sha256.size(), 64u);
  EXPECT_EQ(f.note, "");
  const models::BertConfig& c = f.config;
  EXPECT_EQ(c.hidden, 32);
  EXPECT_EQ(c.layers, 2);
  EXPECT_EQ(c.heads, 4);
  EXPECT_EQ(c.intermediate, 64);
  EXPECT_EQ(c.vocab, 512);
  EXPECT_EQ(c.max_positions, 64);
  EXPECT_EQ(c.type_vocab, 2);
  EXPECT_EQ(c.eps, 1e-12);
  EXPECT_EQ(c.hidden_dropout, 0.1);
  EXPECT_EQ(c.attention_dropout, 0.1);
  EXPECT_EQ(c.pad_token_id, 0);
  const auto resolved = nlohmann::json::parse(f.config_json);
  const auto original = nlohmann::json::parse(golden_config());
  for (const char* key :
       {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
        "vocab_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "hidden_dropout_prob",
        "attention_probs_dropout_prob", "initializer_range", "pad_token_id", "position_embedding_type"})
    EXPECT_EQ(resolved.at(key), original.at(key)) << key;
  EXPECT_EQ(f.config_json.find('\n'), std::string::npos);
  EXPECT_TRUE(f.model->is_training());
  // every tensor equals the file's; position_ids (absent in the file) is 0..63
  const models::StateDict own = models::state_dict(*f.model);
  for (const auto& [name, t] : golden_tensors()) {
    auto it = std::find_if(own.begin(), own.end(), [&](const auto& kv) { return kv.first == name; });
    ASSERT_NE(it, own.end()) << name;
    EXPECT_TRUE(torch::equal(it->second, t)) << name;
  }
  EXPECT_TRUE(torch::equal(f.model->position_ids, torch::arange(64, torch::kLong).unsqueeze(0)));
}

TEST(BertFolder, MissingFilesNameThePath) {
  const fs::path none = folder("none") / "nope";
  expect_error(none, "bert folder " + none.string() + " does not exist or is not a directory");
  const fs::path no_config = folder("no_config");
  fs::copy_file(kGolden + "/model.safetensors", no_config / "model.safetensors");
  expect_error(no_config, "bert folder " + no_config.string() + " has no config.json");
  const fs::path no_weights = folder_with("no_weights", golden_config(), "");
  expect_error(no_weights,
               "bert folder " + no_weights.string() + " has neither model.safetensors nor pytorch_model.bin");
}

TEST(BertFolder, UnsupportedOrBrokenConfigIsRefusedNamingKeyAndValue) {
  const std::string weights = read_text(kGolden + "/model.safetensors");
  auto refused = [&](const std::string& tag, const std::string& config, const std::string& part) {
    const fs::path d = folder_with(tag, config, weights);
    expect_error(d, (d / "config.json").string() + ": " + part);
  };
  refused("relu", config_with("hidden_act", "relu"), "hidden_act \"relu\" is not supported (only \"gelu\")");
  refused("gelu_new", config_with("hidden_act", "gelu_new"), "hidden_act \"gelu_new\" is not supported");
  refused("relative", config_with("position_embedding_type", "relative_key"),
          "position_embedding_type \"relative_key\" is not supported (only \"absolute\")");
  refused("roberta", config_with("model_type", "roberta"),
          "model_type \"roberta\" is not supported (only \"bert\")");
  refused("decoder", config_with("is_decoder", true), "is_decoder true is not supported (only false)");
  refused("string", config_with("hidden_size", "32"), "hidden_size is \"32\", expected an integer");
  refused("heads", config_with("num_attention_heads", 5),
          "bert config hidden_size 32 is not a multiple of num_attention_heads 5");
  refused("json", "{\"hidden_size\": 32,", "not valid JSON");
  refused("array", "[1]", "holds an array, expected a JSON object");
  // position_embedding_type may be absent
  const fs::path d = folder_with("absent", config_with("position_embedding_type", nullptr), weights);
  EXPECT_EQ(load_bert_folder(d.string()).config.hidden, 32);
}

TEST(BertFolder, HostileSafetensorsFilesAreRefusedNamingTheFile) {
  const std::string good = read_text(kGolden + "/model.safetensors");
  auto refused = [&](const std::string& tag, const std::string& bytes, const std::string& part) {
    const fs::path d = folder_with(tag, golden_config(), bytes);
    expect_error(d, part, (d / "model.safetensors").string() + ": ");
  };
  refused("truncated", good.substr(0, good.size() - 100), "past the end of the data");
  std::string long_header = good;
  long_header[3] = '\x01';  // + 16 MB
  refused("header_long", long_header, "runs past the end of the file (150832 bytes)");
  std::string huge_header = good;
  huge_header[4] = '\x01';  // + 4 GB
  refused("header_huge", huge_header, "exceeds the limit of 100000000 bytes");
  auto h = ts::safetensors_header(raw_golden());
  h["pooler.dense.bias"]["data_offsets"][0] = h["pooler.dense.bias"]["data_offsets"][0].get<uint64_t>() - 4;
  h["pooler.dense.bias"]["data_offsets"][1] = h["pooler.dense.bias"]["data_offsets"][1].get<uint64_t>() - 4;
  std::string data;
  for (const auto& t : raw_golden()) data += t.bytes;
  refused("overlap", ts::safetensors_file(h.dump(), data.substr(0, data.size() - 4)),
          "the data of tensors 'pooler.dense.weight' and 'pooler.dense.bias' overlap");
  h = ts::safetensors_header(raw_golden());
  h["pooler.dense.bias"]["dtype"] = "Q8";
  refused("dtype", ts::safetensors_file(h.dump(), data), "tensor 'pooler.dense.bias' has unknown dtype 'Q8'");
}

TEST(BertFolder, StrictLoadNamesMissingUnexpectedAndMisShapedTensors) {
  const std::string config = golden_config();
  // missing
  auto raw = raw_golden();
  raw.erase(
      std::remove_if(raw.begin(), raw.end(), [](const auto& t) { return t.name == "pooler.dense.bias"; }),
      raw.end());
  fs::path d = folder_with("missing", config, ts::safetensors_file(raw));
  expect_error(d, (d / "model.safetensors").string() +
                      ": state dict does not match the model; missing: pooler.dense.bias");
  // mis-shaped: both shapes named
  raw = raw_golden();
  for (auto& t : raw)
    if (t.name == "encoder.layer.1.intermediate.dense.weight") {
      t.shape = {63, 32};
      t.bytes.resize(63 * 32 * 4);
    }
  d = folder_with("shape", config, ts::safetensors_file(raw));
  expect_error(d, "shape: encoder.layer.1.intermediate.dense.weight expected [64,32] got [63,32]");
  // unexpected
  raw = raw_golden();
  raw.push_back({"encoder.layer.2.output.dense.bias", "F32", {32}, std::string(128, '\0')});
  d = folder_with("unexpected", config, ts::safetensors_file(raw));
  expect_error(d, "unexpected: encoder.layer.2.output.dense.bias");
  // a config that disagrees with the weights (3 layers) names every tensor of the missing layer
  d = folder_with("layers", config_with("num_hidden_layers", 3), read_text(kGolden + "/model.safetensors"));
  expect_error(
      d, "missing: encoder.layer.2.attention.self.query.weight, encoder.layer.2.attention.self.query.bias");
  // a config far larger than the file is refused before anything that size is allocated
  d = folder_with("vast", config_with("vocab_size", int64_t{1} << 40),
                  read_text(kGolden + "/model.safetensors"));
  expect_error(d, "config.json describes");
}

TEST(BertFolder, PositionIdsMayBePresentAndMustBeInRange) {
  auto raw = raw_golden();
  std::vector<int64_t> ids(64);
  for (int64_t i = 0; i < 64; ++i) ids[static_cast<size_t>(i)] = i;
  raw.insert(raw.begin(), {"embeddings.position_ids", "I64", {1, 64}, ts::raw_bytes(ids)});
  fs::path d = folder_with("pos", golden_config(), ts::safetensors_file(raw));
  const BertFolder f = load_bert_folder(d.string());
  EXPECT_TRUE(torch::equal(f.model->position_ids, torch::arange(64, torch::kLong).unsqueeze(0)));
  ids[5] = 64;
  raw[0].bytes = ts::raw_bytes(ids);
  d = folder_with("pos_bad", golden_config(), ts::safetensors_file(raw));
  expect_error(d, "embeddings.position_ids holds values outside 0..63");
  // integer weights or float position ids are refused, not converted
  raw[0] = {"embeddings.position_ids", "F32", {1, 64}, std::string(256, '\0')};
  d = folder_with("pos_float", golden_config(), ts::safetensors_file(raw));
  expect_error(d, "tensor embeddings.position_ids has dtype Float, expected an integer type");
  raw = raw_golden();
  raw.back().dtype = "I32";  // pooler.dense.bias, 32 values of 4 bytes
  d = folder_with("int_weight", golden_config(), ts::safetensors_file(raw));
  expect_error(d, "tensor pooler.dense.bias has dtype Int, expected a floating-point type");
}

TEST(BertFolder, HalfAndBfloat16WeightFilesLoadAsRoundedFloat32) {
  for (const std::string dtype : {"F16", "BF16"}) {
    const fs::path d = folder_with(dtype, golden_config(), ts::safetensors_file(raw_golden(dtype)));
    const BertFolder f = load_bert_folder(d.string());
    const models::StateDict own = models::state_dict(*f.model);
    const auto half = dtype == "F16" ? torch::kHalf : torch::kBFloat16;
    for (const auto& [name, t] : golden_tensors()) {
      auto it = std::find_if(own.begin(), own.end(), [&](const auto& kv) { return kv.first == name; });
      ASSERT_NE(it, own.end());
      EXPECT_EQ(it->second.scalar_type(), torch::kFloat);
      EXPECT_TRUE(torch::equal(it->second, t.to(half).to(torch::kFloat))) << dtype << " " << name;
    }
  }
}

TEST(BertFolder, PytorchModelBinInBothSpellings) {
  // bert-base-uncased's spelling (bert. prefix, gamma/beta, cls.* heads) and the plain one, with
  // position_ids, written by our torch.save writer.
  models::StateDict old_style, plain;
  for (const auto& [name, t] : golden_tensors()) {
    std::string key = "bert." + name;
    if (key.size() > 16 && key.substr(key.size() - 16) == "LayerNorm.weight")
      key = key.substr(0, key.size() - 6) + "gamma";
    if (key.size() > 14 && key.substr(key.size() - 14) == "LayerNorm.bias")
      key = key.substr(0, key.size() - 4) + "beta";
    old_style.emplace_back(key, t);
    plain.emplace_back(name, t);
  }
  old_style.emplace_back("cls.predictions.bias", torch::zeros({512}));
  old_style.emplace_back("cls.seq_relationship.weight", torch::zeros({2, 32}));
  plain.insert(plain.begin(), {"embeddings.position_ids", torch::arange(64, torch::kLong).unsqueeze(0)});
  for (const auto& [tag, sd, note] :
       {std::tuple{"old", old_style, "ignored 2 pre-training head tensors (cls.*)"},
        std::tuple{"plain", plain, ""}}) {
    const fs::path d = folder(tag);
    ts::write_bytes((d / "config.json").string(), golden_config());
    write_checkpoint((d / "pytorch_model.bin").string(), sd);
    const BertFolder f = load_bert_folder(d.string());
    EXPECT_EQ(f.weights_format, "torch.save");
    EXPECT_EQ(f.note, note);
    EXPECT_EQ(f.weights_sha256, sha256_file((d / "pytorch_model.bin").string()));
    const models::StateDict own = models::state_dict(*f.model);
    for (const auto& [name, t] : golden_tensors()) {
      auto it = std::find_if(own.begin(), own.end(), [&](const auto& kv) { return kv.first == name; });
      ASSERT_NE(it, own.end());
      EXPECT_TRUE(torch::equal(it->second, t)) << tag << " " << name;
    }
  }
  // a mis-shaped tensor in the old spelling is named by its current name, with both shapes
  models::StateDict bad = old_style;
  for (auto& [name, t] : bad)
    if (name == "bert.pooler.dense.weight") t = torch::zeros({32, 31});
  const fs::path d = folder("bin_bad");
  ts::write_bytes((d / "config.json").string(), golden_config());
  write_checkpoint((d / "pytorch_model.bin").string(), bad);
  expect_error(d, (d / "pytorch_model.bin").string() +
                      ": state dict does not match the model; shape: "
                      "pooler.dense.weight expected [32,32] got [32,31]");
}
