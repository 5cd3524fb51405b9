// `dmdbench data info` and `dmdbench data inspect-checkpoint`: human-readable summaries of inputs.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace dmdbench {

// Splits, shapes, dtypes in the file, label statistics (min / max / mean, share of exact zeros), non-finite
// counts per split and modality, and the SHA-256 of the file (or of the synthetic generator's parameters).
// spec is anything open_dataset() accepts. A pickle holding NaN is not refused here: it is loaded with
// zero_nan and its NaN counts are reported. Returns 0; errors throw (DataError, one lowercase sentence).
int data_info(const std::string& spec, std::ostream& out);

// Tensor names, shapes and dtypes of a torch.save state_dict archive, and the total element count.
// Returns 0; errors throw CheckpointError.
int inspect_checkpoint(const std::string& path, std::ostream& out);

// A Hugging Face model folder with a random BERT of the architecture `config_json_path` describes (transformers'
// config.json keys; its initialiser, from `seed`): out_dir/config.json and out_dir/model.safetensors, for smoke
// runs and tests of the BERT path without a download. Prints what it wrote; errors throw BertFolderError.
int make_random_bert_folder(const std::string& config_json_path, const std::string& out_dir, uint64_t seed,
                            std::ostream& out);

}  // namespace dmdbench
