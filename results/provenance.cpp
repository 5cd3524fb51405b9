#include "results/provenance.h"

#include <type_traits>

namespace dmdbench::results {

const std::vector<ProvenanceField>& provenance_fields() {
  using P = Provenance;
  static const std::vector<ProvenanceField> fields = {
      {"git_commit", "commit", &P::git_commit, 1},
      {"libtorch_version", "LibTorch", &P::libtorch_version, 1},
      {"device", "device", &P::device, 1},
      {"host", "host", &P::host, 1},
      {"threads", "threads", &P::threads, 1},
      {"deterministic", "deterministic", &P::deterministic, 1},
      {"determinism_flags", "determinism flags", &P::determinism_flags, 1},
      {"dataset_name", "data", &P::dataset_name, 1},
      {"dataset_sha256", "data sha256", &P::dataset_sha256, 1},
      {"text_model_sha256", "text model sha256", &P::text_model_sha256, 3},
      {"text_model_config", "text model config", &P::text_model_config, 3},
      {"text_width", "text width", &P::text_width, 3},
      {"audio_width", "audio width", &P::audio_width, 3},
      {"vision_width", "vision width", &P::vision_width, 3},
      {"slurm_job_id", "Slurm job", &P::slurm_job_id, 5, true},
      {"slurm_array_task", "Slurm array task", &P::slurm_array_task, 5, true},
  };
  return fields;
}

std::string field_text(const Provenance& p, const ProvenanceField& f) {
  return std::visit(
      [&](auto member) -> std::string {
        using T = std::decay_t<decltype(p.*member)>;
        if constexpr (std::is_same_v<T, std::string>) return p.*member;
        else if constexpr (std::is_same_v<T, bool>) return p.*member ? "1" : "0";
        else return std::to_string(p.*member);
      },
      f.member);
}

std::string field_display(const Provenance& p, const ProvenanceField& f) {
  if (const auto* flag = std::get_if<bool Provenance::*>(&f.member)) return p.**flag ? "yes" : "no";
  return field_text(p, f);
}

void set_field_text(Provenance& p, const ProvenanceField& f, const std::string& text) {
  std::visit(
      [&](auto member) {
        using T = std::decay_t<decltype(p.*member)>;
        if constexpr (std::is_same_v<T, std::string>) p.*member = text;
        else if constexpr (std::is_same_v<T, bool>) p.*member = text == "1";
        else p.*member = text.empty() ? 0 : std::stoll(text);
      },
      f.member);
}

}  // namespace dmdbench::results
