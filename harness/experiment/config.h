// Run configuration: the reference hyperparameters per dataset family and model, profiles, and --set
// overrides. A Config is an ordered JSON object whose keys and value types are fixed by the defaults, so an
// unknown key or a value of the wrong type is refused. No LibTorch.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace dmdbench {

struct DatasetSpec;

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Config {
 public:
  Config() = default;
  explicit Config(nlohmann::ordered_json j) : j_(std::move(j)) {}

  double num(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  bool flag(const std::string& key) const;
  std::string str(const std::string& key) const;
  bool has(const std::string& key) const { return j_.contains(key); }

  // Typed set: the key must exist and the value must have its type.
  void set(const std::string& key, const nlohmann::json& value);
  // "key=value" from the command line, parsed according to the key's type.
  void set_from_string(const std::string& assignment);

  // ConfigError, in one sentence, for the first value out of its range: sizes and counts that must be positive,
  // probabilities outside [0, 1), a learning rate that is not positive, heads that do not divide d, ...
  void validate() const;

  const nlohmann::ordered_json& json() const { return j_; }
  std::string dump() const { return j_.dump(); }
  std::string pretty() const;  // "key = value" lines, for printing

 private:
  const nlohmann::ordered_json& at(const std::string& key) const;
  nlohmann::ordered_json j_;
};

// The reference's configuration (spec §3, §4, §7) for family "mosi"|"mosei" and model "dmd"|"mult",
// with every deliberate difference present as an option set to the reference's behaviour.
Config reference_config(const std::string& family, const std::string& model);

struct Profile {
  std::string name, description;
  double synthetic_scale;  // fraction of the real split sizes for synthetic datasets
  int64_t max_epochs;      // 0: no cap (the reference's early stopping only)
  // "key=value" departures from the reference recipe (none for paper); "dmd:key=value" for DMD and its variants
  // only (MulT keeps its own recipe for that key).
  std::vector<std::string> recipe_changes;
  std::string robustness_grid;  // run-ablation's default --robustness: off | default | full (results/robustness.h)
};
const std::vector<Profile>& profiles();
// The rate the optimizer and its plateau scheduler start from: learning_rate x lr_scale.
double learning_rate(const Config& cfg);

const Profile& find_profile(const std::string& name);  // ConfigError for an unknown name
void apply_profile(Config& cfg, const Profile& p);
// The profile a verb uses when none is named: paper (the reference, BERT fine-tuned) on a real dataset, quick
// (short, for synthetic data) on a synthetic one.
const std::string& default_profile(const DatasetSpec& data);

// The text encoder (spec §1.2). A BERT given with --bert turns a profile's `features` into `bert-finetune`
// for DMD (applied after the profile and the variant, before --set overrides, which win). uses_text_model:
// the configuration reads text_bert through a BERT. require_text_model: ConfigError (one sentence saying how
// to get bert-base-uncased and that --set text_encoder=features runs the frozen-feature protocol) when it
// does and no BERT was given.
void resolve_text_encoder(Config& cfg, bool have_bert);
bool uses_text_model(const Config& cfg);
void require_text_model(const Config& cfg, bool have_bert);

}  // namespace dmdbench
