// Hugging Face BERT folders (see bert_folder.h).
#include "harness/io/bert_folder.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "harness/io/checkpoint.h"
#include "harness/io/pickle.h"
#include "harness/io/safetensors_tensors.h"
#include "harness/io/sha256.h"
#include "models/state_dict.h"

namespace dmdbench {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

std::string type_of(const Json& j) {
  if (j.is_number_integer()) return "an integer";
  if (j.is_number()) return "a number";
  const std::string name = j.type_name();
  return (name == "array" || name == "object" ? "an " : "a ") + name;
}

// A JSON value as it appears in a message: short, on one line.
std::string shown(const Json& j) {
  std::string s = j.dump(-1, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace);
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

void read_int(const Json& root, const char* key, int64_t* out, const std::string& what) {
  auto it = root.find(key);
  if (it == root.end()) return;
  if (!it->is_number_integer())
    throw BertFolderError(fmt::format("{}: {} is {}, expected an integer", what, key, shown(*it)));
  *out = it->get<int64_t>();
}

void read_number(const Json& root, const char* key, double* out, const std::string& what) {
  auto it = root.find(key);
  if (it == root.end()) return;
  if (!it->is_number())
    throw BertFolderError(fmt::format("{}: {} is {}, expected a number", what, key, shown(*it)));
  *out = it->get<double>();
}

// Absent, or the one string value we compute.
void require_string(const Json& root, const char* key, const char* only, const std::string& what) {
  auto it = root.find(key);
  if (it == root.end()) return;
  if (!it->is_string() || it->get_ref<const std::string&>() != only)
    throw BertFolderError(
        fmt::format("{}: {} {} is not supported (only \"{}\")", what, key, shown(*it), only));
}

// Parameter count the configuration implies (double: a hostile config must not overflow).
double parameter_count(const models::BertConfig& c) {
  const double H = static_cast<double>(c.hidden), I = static_cast<double>(c.intermediate);
  const double embeddings = (static_cast<double>(c.vocab) + static_cast<double>(c.max_positions) +
                             static_cast<double>(c.type_vocab)) *
                                H +
                            2 * H;
  const double layer = 4 * (H * H + H) + 2 * H + (I * H + I) + (H * I + H) + 2 * H;
  return embeddings + static_cast<double>(c.layers) * layer + H * H + H;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BertFolderError(fmt::format("cannot read {}", path.string()));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

models::BertConfig parse_bert_config(const std::string& json_text, const std::string& what) {
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::parse_error& e) {
    throw BertFolderError(fmt::format("{}: not valid JSON (error at byte {})", what, e.byte));
  } catch (const Json::exception& e) {
    throw BertFolderError(fmt::format("{}: not valid JSON (error {})", what, e.id));
  }
  if (!root.is_object())
    throw BertFolderError(fmt::format("{}: holds {}, expected a JSON object", what, type_of(root)));

  require_string(root, "model_type", "bert", what);
  require_string(root, "hidden_act", "gelu", what);
  require_string(root, "position_embedding_type", "absolute", what);
  if (auto it = root.find("is_decoder"); it != root.end() && !(it->is_boolean() && !it->get<bool>()))
    throw BertFolderError(fmt::format("{}: is_decoder {} is not supported (only false)", what, shown(*it)));

  models::BertConfig c;
  read_int(root, "hidden_size", &c.hidden, what);
  read_int(root, "num_hidden_layers", &c.layers, what);
  read_int(root, "num_attention_heads", &c.heads, what);
  read_int(root, "intermediate_size", &c.intermediate, what);
  read_int(root, "vocab_size", &c.vocab, what);
  read_int(root, "max_position_embeddings", &c.max_positions, what);
  read_int(root, "type_vocab_size", &c.type_vocab, what);
  read_number(root, "layer_norm_eps", &c.eps, what);
  read_number(root, "hidden_dropout_prob", &c.hidden_dropout, what);
  read_number(root, "attention_probs_dropout_prob", &c.attention_dropout, what);
  read_number(root, "initializer_range", &c.initializer_range, what);
  if (auto it = root.find("pad_token_id"); it != root.end()) {
    if (it->is_null()) {
      c.pad_token_id = -1;  // nn.Embedding(padding_idx=None)
    } else if (it->is_number_integer() && it->get<int64_t>() >= 0) {
      c.pad_token_id = it->get<int64_t>();
    } else {
      throw BertFolderError(
          fmt::format("{}: pad_token_id is {}, expected a non-negative integer or null", what, shown(*it)));
    }
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw BertFolderError(fmt::format("{}: {}", what, e.what()));
  }
  return c;
}

std::string bert_config_json(const models::BertConfig& c) {
  Json j;
  j["model_type"] = "bert";
  j["hidden_size"] = c.hidden;
  j["num_hidden_layers"] = c.layers;
  j["num_attention_heads"] = c.heads;
  j["intermediate_size"] = c.intermediate;
  j["hidden_act"] = "gelu";
  j["vocab_size"] = c.vocab;
  j["max_position_embeddings"] = c.max_positions;
  j["type_vocab_size"] = c.type_vocab;
  j["layer_norm_eps"] = c.eps;
  j["hidden_dropout_prob"] = c.hidden_dropout;
  j["attention_probs_dropout_prob"] = c.attention_dropout;
  j["initializer_range"] = c.initializer_range;
  j["pad_token_id"] = c.pad_token_id >= 0 ? Json(c.pad_token_id) : Json(nullptr);
  j["position_embedding_type"] = "absolute";
  return j.dump();
}

namespace {

// config.json checked and parsed; the weights file the folder offers (safetensors first).
BertFolderIdentity open_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw BertFolderError(fmt::format("bert folder {} does not exist or is not a directory", dir));
  const fs::path config_path = fs::path(dir) / "config.json";
  if (!fs::exists(config_path, ec))
    throw BertFolderError(fmt::format("bert folder {} has no config.json", dir));
  BertFolderIdentity id;
  id.config = parse_bert_config(read_text(config_path), config_path.string());
  id.config_json = bert_config_json(id.config);
  const fs::path safetensors_path = fs::path(dir) / "model.safetensors",
                 bin_path = fs::path(dir) / "pytorch_model.bin";
  if (fs::exists(safetensors_path, ec)) {
    id.weights_path = safetensors_path.string(), id.weights_format = "safetensors";
  } else if (fs::exists(bin_path, ec)) {
    id.weights_path = bin_path.string(), id.weights_format = "torch.save";
  } else {
    throw BertFolderError(
        fmt::format("bert folder {} has neither model.safetensors nor pytorch_model.bin", dir));
  }
  return id;
}

}  // namespace

BertFolderIdentity bert_folder_identity(const std::string& dir) {
  BertFolderIdentity id = open_folder(dir);
  try {
    id.weights_sha256 = sha256_file(id.weights_path);
  } catch (const std::exception& e) {
    throw BertFolderError(fmt::format("cannot read {}: {}", id.weights_path, e.what()));
  }
  return id;
}

void write_bert_folder(const std::string& dir, const models::BertConfig& config, models::BertImpl& model) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw BertFolderError(fmt::format("cannot create bert folder {}: {}", dir, ec.message()));
  {
    std::ofstream out(fs::path(dir) / "config.json", std::ios::trunc);
    out << Json::parse(bert_config_json(config)).dump(2) << "\n";
    if (!out) throw BertFolderError(fmt::format("cannot write {}/config.json", dir));
  }
  Json header = Json::object();
  std::string data;
  for (const auto& [name, t] : models::state_dict(model)) {
    const torch::Tensor c = t.is_floating_point() ? t.detach().to(torch::kCPU, torch::kFloat).contiguous()
                                                  : t.detach().to(torch::kCPU, torch::kLong).contiguous();
    const auto bytes = static_cast<std::size_t>(c.numel() * c.element_size());
    header[name] = {{"dtype", c.is_floating_point() ? "F32" : "I64"},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {data.size(), data.size() + bytes}}};
    data.append(static_cast<const char*>(c.data_ptr()), bytes);  // little-endian hosts only (x86-64, aarch64)
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  std::ofstream out(fs::path(dir) / "model.safetensors", std::ios::binary | std::ios::trunc);
  out.write(file.data(), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw BertFolderError(fmt::format("cannot write {}/model.safetensors", dir));
}

BertFolder load_bert_folder(const std::string& dir) {
  std::error_code ec;
  const BertFolderIdentity id = open_folder(dir);
  BertFolder out;
  out.config = id.config;
  out.config_json = id.config_json;

  const fs::path safetensors_path = fs::path(dir) / "model.safetensors",
                 bin_path = fs::path(dir) / "pytorch_model.bin";
  models::StateDict file;
  if (fs::exists(safetensors_path, ec)) {
    out.weights_path = safetensors_path.string();
    out.weights_format = "safetensors";
    try {
      const pickle::MappedFile mapped = pickle::map_file(out.weights_path);
      const safetensors::Header h = safetensors::parse(mapped.data, mapped.size, out.weights_path);
      for (const auto& e : h.tensors) file.emplace_back(e.name, safetensors::to_tensor(e, mapped.data));
      out.weights_sha256 = sha256_bytes(mapped.data, mapped.size);
    } catch (const pickle::PickleError& e) {  // map_file: cannot open / read
      throw BertFolderError(e.what());
    } catch (const safetensors::SafetensorsError& e) {
      throw BertFolderError(e.what());
    }
  } else if (fs::exists(bin_path, ec)) {
    out.weights_path = bin_path.string();
    out.weights_format = "torch.save";
    try {
      file = read_checkpoint(out.weights_path);
      out.weights_sha256 = sha256_file(out.weights_path);
    } catch (const CheckpointError& e) {
      throw BertFolderError(e.what());
    } catch (const std::runtime_error& e) {
      throw BertFolderError(fmt::format("{}: {}", out.weights_path, e.what()));
    }
  } else {
    throw BertFolderError(
        fmt::format("bert folder {} has neither model.safetensors nor pytorch_model.bin", dir));
  }

  // Both spellings to transformers' current names.
  models::StateDict state;
  int64_t ignored = 0;
  double values = 0;
  bool has_position_ids = false;
  for (auto& [name, tensor] : file) {
    if (name.rfind("cls.", 0) == 0) {
      ++ignored;
      continue;
    }
    std::string key = name.rfind("bert.", 0) == 0 ? name.substr(5) : name;
    if (ends_with(key, ".gamma")) key = key.substr(0, key.size() - 6) + ".weight";
    if (ends_with(key, ".beta")) key = key.substr(0, key.size() - 5) + ".bias";
    const bool is_position_ids = key == "embeddings.position_ids";
    if (is_position_ids == tensor.is_floating_point())
      throw BertFolderError(fmt::format("{}: tensor {} has dtype {}, expected {}", out.weights_path, name,
                                        c10::toString(tensor.scalar_type()),
                                        is_position_ids ? "an integer type" : "a floating-point type"));
    has_position_ids = has_position_ids || is_position_ids;
    values += static_cast<double>(tensor.numel());
    state.emplace_back(std::move(key), std::move(tensor));
  }
  if (ignored > 0) out.note = fmt::format("ignored {} pre-training head tensors (cls.*)", ignored);

  // A configuration far larger than the file is refused before it is allocated.
  const double wanted = parameter_count(out.config);
  if (wanted > values + double(1 << 28))
    throw BertFolderError(
        fmt::format("{}: config.json describes {:.0f} parameters, but {} holds only {:.0f} values", dir,
                    wanted, out.weights_path, values));

  // A fresh module, handed back only when every tensor loaded.
  models::Bert model(out.config);
  if (!has_position_ids) state.emplace_back("embeddings.position_ids", model->position_ids.clone());
  try {
    models::load_state_dict(*model, state);
  } catch (const models::StateDictMismatch& e) {
    throw BertFolderError(fmt::format("{}: {}", out.weights_path, e.what()));
  }
  const torch::Tensor& pos = model->position_ids;
  if (pos.numel() > 0 &&
      (pos.min().item<int64_t>() < 0 || pos.max().item<int64_t>() >= out.config.max_positions))
    throw BertFolderError(fmt::format("{}: embeddings.position_ids holds values outside 0..{}",
                                      out.weights_path, out.config.max_positions - 1));
  out.model = model;
  return out;
}

}  // namespace dmdbench
