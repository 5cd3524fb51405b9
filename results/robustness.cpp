#include "results/robustness.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace dmdbench::results {

const char* const kRobustnessMetrics[3] = {"mae", "acc2_non0", "f1_non0"};
const char* const kModalities[3] = {"text", "audio", "vision"};

namespace {

const char* kind_name(PerturbKind k) {
  switch (k) {
    case PerturbKind::Drop: return "drop";
    case PerturbKind::Missing: return "missing";
    case PerturbKind::Noise: return "noise";
  }
  return "?";
}

bool known_modality(const std::string& m, bool all_allowed) {
  return m == "text" || m == "audio" || m == "vision" || (all_allowed && m == "all");
}

}  // namespace

std::string Perturbation::family() const { return std::string(kind_name(kind)) + ":" + modality; }

std::string Perturbation::name() const {
  return kind == PerturbKind::Drop ? family() : fmt::format("{}@{:g}", family(), level);
}

Perturbation perturbation_of(const std::string& family, double level) {
  const auto colon = family.find(':');
  const std::string kind = family.substr(0, colon), modality = colon == std::string::npos ? "" : family.substr(colon + 1);
  Perturbation p;
  p.modality = modality;
  p.level = level;
  if (kind == "drop") {
    p.kind = PerturbKind::Drop;
    if (!known_modality(modality, false) || level != 1)
      throw std::invalid_argument(fmt::format("perturbation '{}' is invalid, expected drop:text, drop:audio or "
                                              "drop:vision", family));
  } else if (kind == "missing" || kind == "noise") {
    p.kind = kind == "missing" ? PerturbKind::Missing : PerturbKind::Noise;
    if (!known_modality(modality, true))
      throw std::invalid_argument(fmt::format("perturbation '{}' names an unknown modality, expected text, audio, "
                                              "vision or all", family));
    if (!std::isfinite(level) || level < 0 || (p.kind == PerturbKind::Missing && level > 1))
      throw std::invalid_argument(fmt::format("level {} of perturbation '{}' is invalid, expected {}", level, family,
                                              p.kind == PerturbKind::Missing ? "a rate in [0, 1]" : "a scale >= 0"));
  } else {
    throw std::invalid_argument(fmt::format("perturbation '{}' is unknown, expected drop:<m>, missing:<m|all>@r or "
                                            "noise:<m|all>@s", family));
  }
  return p;
}

Perturbation parse_perturbation(const std::string& name) {
  const auto at = name.find('@');
  if (at == std::string::npos) {
    if (name.rfind("drop:", 0) == 0) return perturbation_of(name, 1);
    throw std::invalid_argument(fmt::format("perturbation '{}' has no level, expected e.g. missing:all@0.3", name));
  }
  double level = 0;
  std::size_t used = 0;
  try {
    level = std::stod(name.substr(at + 1), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != name.size() - at - 1)
    throw std::invalid_argument(fmt::format("perturbation '{}' has no numeric level after '@'", name));
  return perturbation_of(name.substr(0, at), level);
}

std::vector<Perturbation> robustness_grid(const std::string& name) {
  std::vector<Perturbation> grid;
  if (name == "off") return grid;
  if (name != "default" && name != "full")
    throw std::invalid_argument(fmt::format("robustness grid '{}' is unknown, expected default, full or off", name));
  for (const char* m : kModalities) grid.push_back({PerturbKind::Drop, m, 1});
  const bool full = name == "full";
  const std::vector<std::string> modalities = full ? std::vector<std::string>{"text", "audio", "vision", "all"}
                                                   : std::vector<std::string>{"all"};
  for (const auto& m : modalities)
    for (int i = full ? 1 : 3; i <= 9; i += full ? 1 : 3) grid.push_back({PerturbKind::Missing, m, i / 10.0});
  if (full)
    for (const auto& m : modalities)
      for (int i = 1; i <= 10; ++i) grid.push_back({PerturbKind::Noise, m, i / 10.0});
  return grid;
}

std::optional<double> relative_robustness(const Curve& curve) {
  if (curve.size() < 2 || curve.back().first <= curve.front().first || curve.front().first != 0) return std::nullopt;
  double area = 0;
  for (std::size_t i = 1; i < curve.size(); ++i)
    area += (curve[i].first - curve[i - 1].first) * (curve[i].second + curve[i - 1].second) / 2;
  return area / curve.back().first;
}

namespace {

std::optional<double> at_level(const Curve& c, double level) {
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (c[i].first == level) return c[i].second;
    if (i > 0 && c[i - 1].first < level && level < c[i].first) {
      const double w = (level - c[i - 1].first) / (c[i].first - c[i - 1].first);
      return c[i - 1].second + w * (c[i].second - c[i - 1].second);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<double> effective_robustness(const Curve& curve, const Curve& reference) {
  if (curve.empty()) return std::nullopt;
  const auto ref0 = at_level(reference, 0);
  if (!ref0) return std::nullopt;
  Curve diff;
  for (const auto& [level, value] : curve) {
    const auto ref = at_level(reference, level);
    if (!ref) return std::nullopt;
    diff.emplace_back(level, value - (*ref - *ref0 + curve.front().second));
  }
  return relative_robustness(diff);
}

Curve curve_of(const std::vector<RobustnessRow>& rows, const std::string& family, const std::string& metric,
               double clean) {
  Curve c{{0.0, clean}};
  for (const auto& r : rows)
    if (r.perturbation == family && r.metric == metric && r.level > 0) c.emplace_back(r.level, r.value);
  std::sort(c.begin(), c.end());
  return c;
}

std::map<std::string, double> robustness_summary(const std::map<std::string, double>& clean,
                                                 const std::vector<RobustnessRow>& rows,
                                                 const std::map<std::string, Curve>& reference) {
  std::map<std::string, double> out;
  for (const char* metric : kRobustnessMetrics) {
    const auto c = clean.find(metric);
    if (c == clean.end()) continue;
    const Curve curve = curve_of(rows, "missing:all", metric, c->second);
    if (const auto rr = relative_robustness(curve)) out[std::string("rr_") + metric] = *rr;
    if (const auto ref = reference.find(metric); ref != reference.end())
      if (const auto er = effective_robustness(curve, ref->second)) out[std::string("er_") + metric] = *er;
    for (const char* m : kModalities)
      for (const auto& r : rows)
        if (r.perturbation == std::string("drop:") + m && r.metric == metric)
          out[fmt::format("drop_{}_{}", m, metric)] = r.value - c->second;
  }
  return out;
}

}  // namespace dmdbench::results
