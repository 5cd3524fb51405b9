// Hugging Face model folders of a BERT (config.json + model.safetensors or pytorch_model.bin), loaded into
// models::Bert strictly and with provenance.
#pragma once

#include <stdexcept>
#include <string>

#include "models/bert.h"

namespace dmdbench {

struct BertFolderError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct BertFolder {
  models::Bert model{nullptr};  // weights loaded, in train mode (call eval() for inference)
  models::BertConfig config;
  std::string config_json;     // the resolved configuration, transformers' keys, as one-line JSON text
  std::string weights_path;    // the file read: <dir>/model.safetensors or <dir>/pytorch_model.bin
  std::string weights_format;  // "safetensors" | "torch.save"
  std::string weights_sha256;  // of the weights file, lowercase hex
  std::string note;  // e.g. "ignored 7 pre-training head tensors (cls.*)"; empty when nothing ignored
};

// transformers' config.json text -> BertConfig. Absent keys take BertConfig's defaults (bert-base-uncased,
// as transformers' BertConfig); hidden_act must be "gelu", position_embedding_type absent or "absolute" and
// model_type absent or "bert". `what` (the path) starts every error message. Throws BertFolderError.
models::BertConfig parse_bert_config(const std::string& json_text, const std::string& what);

// The resolved configuration as transformers' keys, one-line JSON.
std::string bert_config_json(const models::BertConfig& cfg);

// What identifies a folder's model without loading it: config.json parsed and checked, the weights file found
// and hashed (what load_bert_folder reports for the same folder). Errors: BertFolderError.
struct BertFolderIdentity {
  models::BertConfig config;
  std::string config_json, weights_path, weights_format, weights_sha256;
};
BertFolderIdentity bert_folder_identity(const std::string& dir);

// Writes a folder that load_bert_folder reads back exactly: config.json (bert_config_json's keys) and
// model.safetensors (float32, transformers' current names, position_ids as int64). For tests, smoke runs and
// benchmarks: a random BERT of a given architecture without a download. Errors: BertFolderError.
void write_bert_folder(const std::string& dir, const models::BertConfig& config, models::BertImpl& model);

// Reads dir/config.json, then dir/model.safetensors if present, else dir/pytorch_model.bin. Both spellings of
// the names are accepted: a "bert." prefix is stripped, LayerNorm "gamma"/"beta" become "weight"/"bias", the
// pre-training heads "cls.*" are ignored (and counted in `note`), embeddings.position_ids may be absent. The
// load is strict: every missing, unexpected or mis-shaped tensor is named (with both shapes), and a model is
// handed back only when everything loaded. Errors: BertFolderError, one sentence naming the path.
BertFolder load_bert_folder(const std::string& dir);

}  // namespace dmdbench
