#include "reports/judgments.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <boost/math/distributions/non_central_t.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/experiment/config.h"
#include "reports/published.h"

namespace dmdbench::reports {

namespace {

constexpr const char* kFullModel = "dmd";
constexpr double kInf = std::numeric_limits<double>::infinity();

// Two-sided power of the pooled t-test with critical value tc and noncentrality delta.
double t_test_power(const boost::math::non_central_t& nct, double tc) {
  return boost::math::cdf(boost::math::complement(nct, tc)) + boost::math::cdf(nct, -tc);
}

// The noncentrality at which the two-sided test of level alpha with df degrees of freedom has the given power.
double required_noncentrality(double df, double alpha, double power) {
  const double tc = boost::math::quantile(boost::math::complement(boost::math::students_t(df), alpha / 2));
  auto power_at = [&](double delta) { return t_test_power(boost::math::non_central_t(df, delta), tc); };
  double lo = 0, hi = 1;
  while (power_at(hi) < power) lo = hi, hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = (lo + hi) / 2;
    (power_at(mid) < power ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

int config_int(const nlohmann::json& config, const char* key) {
  if (config.is_object() && config.contains(key) && config[key].is_number_integer()) return config[key].get<int>();
  return 0;
}

// A configuration value as shown: strings plain, everything else as JSON.
std::string config_text(const nlohmann::json& config, const std::string& key) {
  if (!config.is_object() || !config.contains(key)) return "(not recorded)";
  const auto& v = config[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// Each protocol key on which the runs differ, named with its values and which variants hold them.
std::vector<std::string> mismatches_among(const Collected& c, const std::vector<size_t>& runs) {
  std::vector<std::string> out;
  std::vector<std::vector<std::pair<std::string, std::string>>> protocols;
  for (size_t i : runs) protocols.push_back(protocol_of(c.runs[i]));
  for (size_t key_index = 0; key_index < protocol_keys().size(); ++key_index) {
    const std::string& key = protocol_keys()[key_index];
    // value -> variant -> count, in first-seen order of values
    std::vector<std::pair<std::string, std::map<std::string, int>>> values;
    for (size_t k = 0; k < runs.size(); ++k) {
      const std::string& v = protocols[k][key_index].second;
      auto it = std::find_if(values.begin(), values.end(), [&](const auto& p) { return p.first == v; });
      if (it == values.end()) {
        values.push_back({v, {}});
        it = std::prev(values.end());
      }
      ++it->second[c.runs[runs[k]].label.empty() ? c.runs[runs[k]].row.spec.variant : c.runs[runs[k]].label];
    }
    if (values.size() < 2) continue;
    std::string text = key + " differs:";
    for (size_t k = 0; k < values.size(); ++k) {
      std::string who;
      for (const auto& [variant, n] : values[k].second)
        who += fmt::format("{}{} ×{}", who.empty() ? "" : ", ", variant, n);
      text += fmt::format("{} `{}` ({})", k ? ";" : "", values[k].first, who);
    }
    out.push_back(text);
  }
  return out;
}

double sample_variance(const std::vector<double>& v) {
  const Summary s = summarize(v);
  return s.std * s.std;
}

std::string fraction(int k, int n) { return fmt::format("{}/{}", k, n); }

}  // namespace

std::vector<std::pair<std::string, std::string>> protocol_of(const RunData& r) {
  const auto config = nlohmann::json::parse(r.row.spec.config_json, nullptr, /*allow_exceptions=*/false);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& key : protocol_keys()) {
    std::string value;
    if (key == "dataset") value = r.row.spec.dataset;
    else if (key == "setting") value = r.setting.empty() ? "(not recorded)" : r.setting;
    else if (key == "profile") value = r.row.spec.profile;
    else if (key == "dataset content") value = r.row.prov.dataset_sha256.substr(0, 12);
    else if (key == "code version") value = r.row.prov.git_commit;
    else value = config_text(config, key);
    out.emplace_back(key, value);
  }
  return out;
}

const std::vector<std::string>& protocol_keys() {
  static const std::vector<std::string> keys = {
      "dataset",     "setting",         "dataset content", "family",       "synthetic_scale", "synthetic_seed",
      "zero_nan",    "text_encoder",    "profile",         "max_epochs",   "eval_shuffle",    "autocast",
      "cuda_graph",  "code version"};
  return keys;
}

Convergence judge_convergence(const std::vector<results::EpochRow>& epochs, int max_epochs, int early_stop,
                              const ConvergenceRule& rule) {
  Convergence j;
  j.max_epochs = max_epochs, j.early_stop = early_stop;
  if (epochs.empty()) return j;
  j.known = true;
  const int n = static_cast<int>(epochs.size());
  j.epochs = epochs.back().epoch;
  // Best epoch as the trainer selects it: an improvement of more than 1e-6.
  double best = kInf;
  for (const auto& e : epochs)
    if (e.valid_loss <= best - 1e-6) best = e.valid_loss, j.best_epoch = e.epoch;
  const bool early_stopped = early_stop > 0 && j.epochs - j.best_epoch >= early_stop;
  j.capped = max_epochs > 0 && j.epochs >= max_epochs && !early_stopped;
  const int k = std::max(1, rule.window);
  j.best_in_window = j.best_epoch > j.epochs - k;
  if (n <= k) {
    j.improvement = kInf;  // nothing before the window to compare with
  } else {
    double before = kInf, within = kInf;
    for (int i = 0; i < n; ++i) {
      double& slot = i < n - k ? before : within;
      slot = std::min(slot, epochs[i].valid_loss);
    }
    j.improvement = before > 0 ? (before - within) / before : (within < before ? kInf : 0.0);
  }
  j.not_converged = j.capped && j.improvement > rule.threshold;
  return j;
}

double pooled_sd(const Summary& a, const Summary& b) {
  const int df = std::max(0, a.n - 1) + std::max(0, b.n - 1);
  if (df == 0) return 0;
  return std::sqrt((std::max(0, a.n - 1) * a.std * a.std + std::max(0, b.n - 1) * b.std * b.std) / df);
}

double minimal_detectable_difference(double sd, int n_a, int n_b, double alpha, double power) {
  const int df = n_a + n_b - 2;
  if (n_a < 1 || n_b < 1 || df < 1) return std::numeric_limits<double>::quiet_NaN();
  if (sd == 0) return 0;
  return required_noncentrality(df, alpha, power) * sd * std::sqrt(1.0 / n_a + 1.0 / n_b);
}

double minimal_detectable_difference_normal(double sd, int n_a, int n_b, double alpha, double power) {
  if (n_a < 1 || n_b < 1) return std::numeric_limits<double>::quiet_NaN();
  const boost::math::normal z;
  const double zsum = boost::math::quantile(z, 1 - alpha / 2) + boost::math::quantile(z, power);
  return zsum * sd * std::sqrt(1.0 / n_a + 1.0 / n_b);
}

std::optional<int> seeds_to_detect(double diff, double sd, double alpha, double power, int max_n) {
  diff = std::fabs(diff);
  if (diff == 0) return std::nullopt;
  if (sd == 0) return 2;
  auto detects = [&](int n) { return minimal_detectable_difference(sd, n, n, alpha, power) <= diff; };
  if (!detects(max_n)) return std::nullopt;
  int lo = 1, hi = max_n;  // detects(hi), and lo is below the answer (n = 1 has no degrees of freedom per side)
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    (detects(mid) ? hi : lo) = mid;
  }
  return hi;
}

Spread judge_spread(const std::map<std::string, double>& m, const SpreadRule& rule) {
  Spread s;
  auto ratio = m.find("pred_std_ratio");
  if (ratio == m.end()) return s;
  s.known = true;
  s.std_ratio = ratio->second;
  if (auto it = m.find("pred_beyond_1_5"); it != m.end()) s.pred_tail = it->second;
  if (auto it = m.find("label_beyond_1_5"); it != m.end()) s.label_tail = it->second;
  if (s.std_ratio < rule.min_std_ratio) {
    s.collapsed = true;
    s.reason = fmt::format("std(pred)/std(label) {:.2f} < {:.2f}", s.std_ratio, rule.min_std_ratio);
  } else if (s.label_tail >= rule.min_label_tail && s.pred_tail < rule.min_tail_share * s.label_tail) {
    s.collapsed = true;
    s.reason = fmt::format("|pred| > 1.5 for {:.1f}% of samples against {:.1f}% of the labels", 100 * s.pred_tail,
                           100 * s.label_tail);
  }
  return s;
}

bool GroupJudgments::any_capped_not_converged() const {
  for (const auto& [v, j] : variants)
    if (j.not_converged > 0) return true;
  return false;
}

bool GroupJudgments::mixes_converged_and_capped() const {
  bool some_converged = false, some_not = false;
  for (const auto& [v, j] : variants) {
    if (j.runs == 0) continue;
    (j.not_converged > 0 ? some_not : some_converged) = true;
  }
  return some_converged && some_not;
}

std::vector<std::string> published_protocol_notes(const Collected& c, const Group& g) {
  const std::string family = real_data_family(g.dataset);
  auto dmd = g.completed.find(kFullModel);
  if (family.empty() || dmd == g.completed.end()) return {};
  const nlohmann::ordered_json reference = reference_config(family, "dmd").json();
  // Keys that only name the data source or add measurements, not part of the recipe.
  static const std::set<std::string> ignored = {"synthetic_scale", "synthetic_seed", "test_shuffles", "text_encoder"};
  std::vector<std::string> text, changed;
  for (size_t i : dmd->second) {
    const auto config = nlohmann::json::parse(c.runs[i].row.spec.config_json, nullptr, false);
    if (!config.is_object()) continue;
    const std::string t = config_text(config, "text_encoder");
    if (std::find(text.begin(), text.end(), t) == text.end()) text.push_back(t);
    for (auto it = reference.begin(); it != reference.end(); ++it) {
      if (ignored.count(it.key()) || !config.contains(it.key()) || config[it.key()].dump() == it.value().dump()) continue;
      const std::string note = fmt::format("{} {} (reference {})", it.key(), config_text(config, it.key()),
                                           it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
      if (std::find(changed.begin(), changed.end(), note) == changed.end()) changed.push_back(note);
    }
  }
  std::vector<std::string> out;
  for (const auto& t : text)
    out.push_back(fmt::format("text input `{}` here; the paper fine-tunes BERT with the model", t));
  if (!changed.empty()) {
    std::string list;
    for (const auto& n : changed) list += (list.empty() ? "" : ", ") + n;
    out.push_back(fmt::format("profile {} changes the reference configuration: {}", g.profile, list));
  }
  return out;
}

GroupJudgments judge_group(const Collected& c, const Group& g) {
  GroupJudgments out;
  std::vector<size_t> counted;
  std::set<int> caps;
  for (const auto& variant : g.variants) {
    auto it = g.completed.find(variant);
    if (it == g.completed.end()) continue;
    VariantJudgment vj;
    for (size_t i : it->second) {
      const auto& r = c.runs[i];
      counted.push_back(i);
      const auto config = nlohmann::json::parse(r.row.spec.config_json, nullptr, /*allow_exceptions=*/false);
      const int cap = config_int(config, "max_epochs");
      caps.insert(cap);
      const Convergence conv =
          judge_convergence(r.epochs, cap, config_int(config, "early_stop"), out.convergence_rule);
      const Spread spread = judge_spread(r.test, out.spread_rule);
      out.convergence[i] = conv;
      out.spread[i] = spread;
      ++vj.runs;
      vj.capped += conv.capped;
      vj.not_converged += conv.not_converged;
      vj.unknown_history += !conv.known;
      vj.collapsed += spread.collapsed;
    }
    if (vj.not_converged) vj.flags.push_back("not converged " + fraction(vj.not_converged, vj.runs));
    if (vj.unknown_history) vj.flags.push_back("no epoch history " + fraction(vj.unknown_history, vj.runs));
    if (vj.collapsed) vj.flags.push_back("collapsed toward the mean " + fraction(vj.collapsed, vj.runs));
    out.variants[variant] = vj;

    // Test-batch sensitivity: clean pass plus the shuffled passes of each run, against the spread over seeds.
    for (const auto* m : table_metrics()) {
      EvalSensitivity s;
      std::vector<double> variances;
      for (size_t i : it->second) {
        const auto& r = c.runs[i];
        std::vector<double> passes;
        if (auto clean = r.test.find(m->name); clean != r.test.end()) passes.push_back(clean->second);
        for (const auto& [split, metrics] : r.shuffled)
          if (auto v = metrics.find(m->name); v != metrics.end()) passes.push_back(v->second);
        if (passes.size() < 2) continue;
        variances.push_back(sample_variance(passes));
        s.passes = std::max<int>(s.passes, static_cast<int>(passes.size()));
      }
      s.runs = static_cast<int>(variances.size());
      if (s.runs == 0) continue;
      double mean_var = 0;
      for (double v : variances) mean_var += v / variances.size();
      s.eval_sd = std::sqrt(mean_var);
      s.seed_sd = summarize(g.values(c, variant, m->name)).std;
      out.sensitivity[variant][m->name] = s;
    }
  }
  out.max_epochs = caps.size() == 1 ? *caps.begin() : 0;
  out.group_mismatches = mismatches_among(c, counted);

  auto dmd = g.completed.find(kFullModel);
  if (dmd == g.completed.end()) return out;
  const VariantJudgment& full = out.variants[kFullModel];
  for (const auto& variant : g.variants) {
    if (variant == kFullModel || g.completed.count(variant) == 0) continue;
    Comparison cmp;
    cmp.variant = variant;
    for (const auto* m : table_metrics()) {
      const auto a = g.values(c, kFullModel, m->name), b = g.values(c, variant, m->name);
      if (a.empty() || b.empty()) continue;
      PowerCell cell;
      const WelchResult w = welch_test(a, b);
      cell.testable = w.testable;
      cell.diff = w.diff, cell.p = w.p, cell.note = w.note;
      cell.sd = pooled_sd(summarize(a), summarize(b));
      if (w.testable) {
        cell.mdd = minimal_detectable_difference(cell.sd, static_cast<int>(a.size()), static_cast<int>(b.size()));
        cell.underpowered = std::fabs(cell.diff) < cell.mdd;
      }
      cmp.power[m->name] = cell;
    }
    std::vector<size_t> both = dmd->second;
    const auto& other = g.completed.at(variant);
    both.insert(both.end(), other.begin(), other.end());
    cmp.mismatches = mismatches_among(c, both);
    for (const auto& f : full.flags) cmp.reasons.push_back(std::string(kFullModel) + ": " + f);
    for (const auto& f : out.variants[variant].flags) cmp.reasons.push_back(variant + ": " + f);
    for (const auto& mm : cmp.mismatches) cmp.reasons.push_back(mm);
    out.comparisons.push_back(std::move(cmp));
  }
  return out;
}

}  // namespace dmdbench::reports
