#include "ablations/variants.h"

#include <fmt/format.h>

#include <set>
#include <sstream>

namespace dmdbench::ablations {

const std::vector<Variant>& registry() {
  static const std::vector<Variant> list = {
      {"dmd", "full DMD: the reference model and recipe", "dmd", "FD + HomoGD + CA + HeteroGD (full model)",
       [](Config&) {}},
      {"no-decoupling",
       "no feature decoupling: c_m = s_m = projected features; decoders and recon/cycle/ortho/margin losses dropped",
       "dmd", "", [](Config& c) { c.set("decouple", false); }},
      {"fixed-edges", "both GD units use their prior as fixed edge weights (no edge network, no regulariser)", "dmd",
       "", [](Config& c) { c.set("learn_edges", false); }},
      {"homo-only", "HeteroGD's losses removed; HomoGD stays; architecture unchanged", "dmd",
       "FD + HomoGD + CA, HeteroGD off", [](Config& c) { c.set("use_hetero_gd", false); }},
      {"hetero-only", "HomoGD's losses removed; HeteroGD stays; architecture unchanged", "dmd", "",
       [](Config& c) { c.set("use_homo_gd", false); }},
      {"no-distill", "both GD units' losses removed", "dmd", "",
       [](Config& c) {
         c.set("use_homo_gd", false);
         c.set("use_hetero_gd", false);
       }},
      {"mult", "MulT baseline (MMSA recipe, positional embedding on)", "mult", "MulT baseline (Tables 1-2)",
       [](Config&) {}},
  };
  return list;
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
  if (list == "all") {
    for (const auto& v : registry()) out.push_back(v.name);
    return out;
  }
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
