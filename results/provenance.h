// Where a stored number came from, as one field list: the run and bench tables' provenance columns, the store's
// reads and writes, merge, and the report's provenance footer all read provenance_fields(). Adding a field is one
// member here, one line in provenance_fields() with the schema version that adds its column, and a bump of
// kSchemaVersion (store.h). No LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace dmdbench::results {

struct Provenance {
  std::string git_commit, libtorch_version, device, host;
  int64_t threads = 1;
  bool deterministic = true;
  std::string determinism_flags;  // e.g. "cpu" or "cuda:deterministic_algorithms,no_tf32,cublas_ws=:4096:8"
  std::string dataset_name, dataset_sha256;
  // The text encoder: the BERT's weights file SHA-256 and its resolved configuration (transformers' keys,
  // one-line JSON) when the run read text through a BERT, else empty.
  std::string text_model_sha256, text_model_config;
  // The widths the model's input projections read, from the data: text (the BERT's hidden size with a text
  // model, else the text features' width: 768 for BERT features, 300 for GloVe), audio and vision.
  int64_t text_width = 0, audio_width = 0, vision_width = 0;
  // Under Slurm (empty elsewhere): the task's own job id (SLURM_JOB_ID) and its array task as ARRAYJOB_TASK
  // (SLURM_ARRAY_JOB_ID _ SLURM_ARRAY_TASK_ID), the name scontrol, squeue and scancel take.
  std::string slurm_job_id, slurm_array_task;
};

struct ProvenanceField {
  const char* column;  // SQL column (run and bench tables)
  const char* label;   // the report footer's wording
  std::variant<std::string Provenance::*, int64_t Provenance::*, bool Provenance::*> member;
  int since_schema;    // the schema version whose migration adds the column
  bool only_when_set = false;  // the report's footer leaves it out when no run has a value (Slurm ids)
};

const std::vector<ProvenanceField>& provenance_fields();

// The field's value as text ("1"/"0" for flags), and back.
std::string field_text(const Provenance& p, const ProvenanceField& f);
void set_field_text(Provenance& p, const ProvenanceField& f, const std::string& text);
// For people: flags as "yes"/"no", everything else as field_text.
std::string field_display(const Provenance& p, const ProvenanceField& f);

}  // namespace dmdbench::results
