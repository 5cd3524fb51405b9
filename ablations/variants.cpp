#include "ablations/variants.h"

#include <fmt/format.h>

#include <set>
#include <sstream>

namespace dmdbench::ablations {

namespace {

// The paper's Table 3 (FD, HomoGD, CA, HeteroGD per row); reports/published-results.json holds its numbers.
constexpr Table3Switches kTable3[6] = {{true, true, true, true},    {true, true, true, false},
                                       {true, true, false, true},   {true, true, false, false},
                                       {true, false, false, false}, {false, false, false, false}};

// "Table 3 row 3 (FD ✓, HomoGD ✓, CA ×, HeteroGD ✓)"
std::string row_text(int row) {
  const Table3Switches s = table3_switches(row);
  auto mark = [](bool b) { return b ? "✓" : "×"; };
  return fmt::format("Table 3 row {} (FD {}, HomoGD {}, CA {}, HeteroGD {})", row, mark(s.fd), mark(s.homogd),
                     mark(s.ca), mark(s.heterogd));
}

// The configuration of a Table 3 row, built from the same switches as the other variants: FD off = the
// no-decoupling change, a GD unit off = its losses removed, CA off = cross_modal_attention off.
void table3_change(Config& c, int row) {
  const Table3Switches s = table3_switches(row);
  if (!s.fd) c.set("decouple", false);
  if (!s.homogd) c.set("use_homo_gd", false);
  if (!s.ca) c.set("cross_modal_attention", false);
  if (!s.heterogd) c.set("use_hetero_gd", false);
}

Variant table3_variant(const char* name, int row, const char* what) {
  return {name,          fmt::format("{}: {}", row_text(row), what),  "dmd",
          row_text(row), [row](Config& c) { table3_change(c, row); }, row};
}

}  // namespace

Table3Switches table3_switches(int row) {
  if (row < 1 || row > 6) throw ConfigError(fmt::format("the paper's Table 3 has rows 1 to 6, not {}", row));
  return kTable3[row - 1];
}

const std::vector<Variant>& registry() {
  static const std::vector<Variant> list = {
      {"dmd", "full DMD: the reference model and recipe", "dmd", row_text(1) + ", the full model",
       [](Config&) {}, 1},
      {"no-decoupling",
       "no feature decoupling: c_m = s_m = projected features; decoders and recon/cycle/ortho/margin losses "
       "dropped",
       "dmd", "none (FD off but HomoGD, CA and HeteroGD kept)", [](Config& c) { c.set("decouple", false); }},
      {"fixed-edges", "both GD units use their prior as fixed edge weights (no edge network, no regulariser)",
       "dmd", "none (no fixed-edge variant in the paper)", [](Config& c) { c.set("learn_edges", false); }},
      {"homo-only", "HeteroGD's losses removed; HomoGD stays; architecture unchanged", "dmd", row_text(2),
       [](Config& c) { c.set("use_hetero_gd", false); }, 2},
      {"hetero-only", "HomoGD's losses removed; HeteroGD stays; architecture unchanged", "dmd",
       "none (HomoGD off with CA and HeteroGD on)", [](Config& c) { c.set("use_homo_gd", false); }},
      {"no-distill", "both GD units' losses removed", "dmd", "none (both GD units off with CA on)",
       [](Config& c) {
         c.set("use_homo_gd", false);
         c.set("use_hetero_gd", false);
       }},
      table3_variant("t3-full", 1, "full DMD (the same configuration as dmd, run under the Table 3 name)"),
      table3_variant("t3-no-heterogd", 2, "HeteroGD's losses removed (the same configuration as homo-only)"),
      table3_variant("t3-no-ca", 3,
                     "cross_modal_attention off: each crossmodal transformer attends to its own modality's "
                     "exclusive features (query, key and value); same shapes and parameters"),
      table3_variant("t3-fd-homogd", 4, "CA off and HeteroGD's losses removed"),
      table3_variant("t3-fd-only", 5, "CA off and both GD units' losses removed"),
      table3_variant(
          "t3-none", 6,
          "no decoupling (as no-decoupling), CA off and both GD units' losses removed: task loss only"),
      {"mult", "MulT baseline (MMSA recipe, positional embedding on; MMSA trains it unaligned)", "mult",
       "MulT baseline (Tables 1-2)", [](Config&) {}},
  };
  return list;
}

const std::vector<VariantSet>& variant_sets() {
  static const std::vector<VariantSet> sets = {
      {"paper-table3",
       "the six rows of the DMD paper's Table 3 (FD / HomoGD / CA / HeteroGD switched off in turn)",
       {"t3-full", "t3-no-heterogd", "t3-no-ca", "t3-fd-homogd", "t3-fd-only", "t3-none"}},
  };
  return sets;
}

const Variant& find_variant(const std::string& name) {
  for (const auto& v : registry())
    if (v.name == name) return v;
  std::string known;
  for (const auto& v : registry()) known += (known.empty() ? "" : ", ") + v.name;
  throw ConfigError(fmt::format("unknown variant '{}', expected one of: {}", name, known));
}

std::vector<std::string> parse_variant_list(const std::string& list) {
  std::vector<std::string> out;
  if (list == "all") {  // the design's variants and baselines; a named set is asked for by its name
    std::set<std::string> in_sets;
    for (const auto& set : variant_sets()) in_sets.insert(set.variants.begin(), set.variants.end());
    for (const auto& v : registry())
      if (in_sets.count(v.name) == 0) out.push_back(v.name);
    return out;
  }
  for (const auto& set : variant_sets())
    if (list == set.name) return set.variants;
  std::set<std::string> seen;
  std::stringstream ss(list);
  for (std::string name; std::getline(ss, name, ',');) {
    if (name.empty()) throw ConfigError(fmt::format("variant list '{}' has an empty entry", list));
    find_variant(name);
    if (!seen.insert(name).second) throw ConfigError(fmt::format("variant '{}' is listed twice", name));
    out.push_back(name);
  }
  if (out.empty()) throw ConfigError("the variant list is empty");
  return out;
}

Config resolve_config(const std::string& family, const std::string& variant, const std::string& profile,
                      const std::vector<std::string>& overrides, bool have_bert) {
  const Variant& v = find_variant(variant);
  Config cfg = reference_config(family, v.model);
  apply_profile(cfg, find_profile(profile));
  v.change(cfg);
  resolve_text_encoder(cfg, have_bert);
  for (const auto& o : overrides) {
    // The text encoder is DMD's choice; MulT reads the features as MMSA's MulT does (its reference).
    if (o.rfind("text_encoder=", 0) == 0 && v.model != "dmd") continue;
    cfg.set_from_string(o);
  }
  cfg.validate();
  return cfg;
}

}  // namespace dmdbench::ablations
