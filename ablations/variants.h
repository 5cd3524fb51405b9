// The variant registry: each entry is a name, a one-line description and one small, explicit change to the
// reference configuration. The report prints this table. No LibTorch: a variant only edits a Config, and the
// harness builds the model from the resolved Config.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "harness/experiment/config.h"

namespace dmdbench::ablations {

struct Variant {
  std::string name;         // e.g. "homo-only"
  std::string description;  // one line, for the report's legend
  std::string model;        // "dmd" or "mult": which reference configuration it starts from
  std::string paper_row;    // where the variant sits in the DMD paper ("Table 3 row 2 (...)"), "" for nowhere
  std::function<void(Config&)> change;  // the one explicit change
  int table3_row = 0;  // the DMD paper's Table 3 row (1-6) this variant reproduces, 0 for none
};

// The Table 3 switches of a row (FD, HomoGD, CA, HeteroGD), as the paper's check marks.
struct Table3Switches {
  bool fd, homogd, ca, heterogd;
};
Table3Switches table3_switches(int row);  // row 1..6; ConfigError otherwise

// In report order: dmd first, the ablations, then baselines.
const std::vector<Variant>& registry();
const Variant& find_variant(const std::string& name);  // ConfigError naming the unknown variant
// Named variant sets: "paper-table3" = the six t3-* variants, one per row of the paper's Table 3.
struct VariantSet {
  std::string name, description;
  std::vector<std::string> variants;
};
const std::vector<VariantSet>& variant_sets();
// "all" (every registry entry outside the named sets: the design's variants and baselines), a variant set's
// name, or a comma-separated list of variant names; duplicates and unknown names are refused.
std::vector<std::string> parse_variant_list(const std::string& list);

// reference_config(family, variant.model) -> profile -> variant change -> the text encoder a given BERT
// implies (resolve_text_encoder) -> overrides ("key=value"), then Config::validate (ConfigError naming the first
// value out of range). A text_encoder override applies to DMD variants only: MulT reads the text features, as
// MMSA's MulT does.
Config resolve_config(const std::string& family, const std::string& variant, const std::string& profile,
                      const std::vector<std::string>& overrides, bool have_bert = false);

}  // namespace dmdbench::ablations
