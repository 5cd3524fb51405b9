#include "reports/judgment_text.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "reports/markdown.h"

namespace dmdbench::reports {

namespace {

using md::code;
using md::header;
using md::kNone;
using md::row;
using results::format_shown;
using results::MetricDef;
using results::shown_value;

constexpr const char* kFullModel = "dmd";
// The two headline metrics of the power analysis and the differences the seeds are counted for (stored units).
constexpr const char* kMae = "mae";
constexpr const char* kAcc2 = "acc2_non0";
constexpr double kMaeTarget = 0.01;   // 0.01 MAE
constexpr double kAcc2Target = 0.01;  // 1 point of Acc-2 non0

std::string join(const std::vector<std::string>& parts, const std::string& sep = "; ") {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// "a", "a and b", "a, b and c"
std::string list_words(const std::vector<std::string>& parts) {
  if (parts.empty()) return "";
  if (parts.size() == 1) return parts[0];
  std::string out;
  for (size_t i = 0; i + 1 < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out + " and " + parts.back();
}

std::string percent(double fraction, int digits = 1) { return fmt::format("{:.{}f}%", 100 * fraction, digits); }

std::string shown(const MetricDef& m, double stored) { return format_shown(m, shown_value(m, stored)); }

// "0.05" or "0.05–0.09" for a range of shown values.
std::string range_text(const MetricDef& m, std::vector<double> stored) {
  if (stored.empty()) return kNone;
  const auto [lo, hi] = std::minmax_element(stored.begin(), stored.end());
  const std::string a = shown(m, *lo), b = shown(m, *hi);
  return a == b ? a : a + "–" + b;
}

std::string seeds_text(const std::optional<int>& n) { return n ? std::to_string(*n) : "> 1000"; }

std::string group_prefix(const Collected& c, const Group& g) {
  return c.groups.size() > 1 ? fmt::format("*{}:* ", g.title()) : "";
}

int total_runs(const GroupJudgments& j) {
  int n = 0;
  for (const auto& [v, vj] : j.variants) n += vj.runs;
  return n;
}

std::vector<std::string> variants_where(const GroupJudgments& j, const std::vector<std::string>& order,
                                        bool (*pred)(const VariantJudgment&)) {
  std::vector<std::string> out;
  for (const auto& v : order) {
    auto it = j.variants.find(v);
    if (it != j.variants.end() && it->second.runs > 0 && pred(it->second)) out.push_back(v);
  }
  return out;
}

std::vector<std::string> as_code(std::vector<std::string> names) {
  for (auto& n : names) n = code(n);
  return names;
}

std::string cap_text(const GroupJudgments& j) {
  return j.max_epochs > 0 ? fmt::format("{}-epoch cap", j.max_epochs) : "epoch cap";
}

std::string rule_text(const ConvergenceRule& r) {
  return fmt::format("the best validation loss of its last {} epochs improved on the best before them by more than "
                     "{}",
                     r.window, percent(r.threshold));
}

// The seeds needed for the named target difference, over the comparisons: "20" or "12–35".
std::string seeds_range(const GroupJudgments& j, const char* metric, double target) {
  std::vector<int> counts;
  bool beyond = false;
  for (const auto& cmp : j.comparisons) {
    auto it = cmp.power.find(metric);
    if (it == cmp.power.end() || !it->second.testable) continue;
    const auto n = seeds_to_detect(target, it->second.sd);
    if (n) counts.push_back(*n);
    else beyond = true;
  }
  if (counts.empty()) return beyond ? "more than 1000" : "";
  const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
  std::string out = *lo == *hi ? std::to_string(*lo) : fmt::format("{}–{}", *lo, *hi);
  return beyond ? out + " (more than 1000 for some)" : out;
}

}  // namespace

std::string variant_judgment_cell(const GroupJudgments& j, const std::string& variant) {
  auto it = j.variants.find(variant);
  if (it == j.variants.end() || it->second.runs == 0) return kNone;
  return it->second.valid() ? "VALID" : "INVALID: " + join(it->second.flags);
}

std::string difference_cell(const MetricDef& m, const PowerCell& cell) {
  std::string text = fmt::format("{:+.{}f}", shown_value(m, cell.diff), m.percent ? 2 : 4);
  if (!cell.testable) return text + " (n too small to test)";
  text += fmt::format(" ({}{}{}, MDD {}", md::format_p(cell.p), cell.p < 0.05 ? "*" : "",
                      cell.note.empty() ? "" : ", " + cell.note, shown(m, cell.mdd));
  return text + (cell.underpowered ? ", underpowered)" : ")");
}

std::string comparison_cell(const Comparison& c) {
  return c.valid() ? "VALID" : "INVALID: " + md::cell_text(join(c.reasons));
}

std::string headline(const Collected& c, const std::vector<GroupJudgments>& judged) {
  std::string out;
  for (size_t gi = 0; gi < c.groups.size(); ++gi) {
    const Group& g = c.groups[gi];
    const GroupJudgments& j = judged[gi];
    if (total_runs(j) == 0) continue;
    std::vector<std::string> lines;
    const auto capped = variants_where(j, g.variants, [](const VariantJudgment& v) { return v.not_converged > 0; });
    const auto converged =
        variants_where(j, g.variants, [](const VariantJudgment& v) { return v.not_converged == 0; });
    if (j.mixes_converged_and_capped())
      lines.push_back(fmt::format(
          "**Warning: this comparison mixes converged and capped variants.** {} {} still improving at the {} while "
          "{} had converged, so their differences measure training length as much as the variants.",
          list_words(as_code(capped)), capped.size() == 1 ? "was" : "were", cap_text(j),
          list_words(as_code(converged))));
    else if (!capped.empty())
      lines.push_back(fmt::format("**Warning: no variant converged.** Every variant had runs still improving at the {}; "
                                  "the tables compare unfinished training.",
                                  cap_text(j)));
    if (!j.comparisons.empty()) {
      int valid = 0, cells = 0, underpowered = 0;
      std::vector<std::string> invalid;
      for (const auto& cmp : j.comparisons) {
        cmp.valid() ? ++valid : (invalid.push_back(code(cmp.variant)), 0);
        for (const auto& [metric, cell] : cmp.power)
          if (cell.testable) ++cells, underpowered += cell.underpowered;
      }
      std::string line = fmt::format("{} of {} comparisons with full DMD are VALID", valid, j.comparisons.size());
      if (!invalid.empty()) line += fmt::format(" (INVALID: {})", list_words(invalid));
      line += fmt::format("; {} of {} differences are smaller than the seeds can detect (underpowered).", underpowered,
                          cells);
      lines.push_back(line);
    } else {
      const auto flagged = variants_where(j, g.variants, [](const VariantJudgment& v) { return !v.valid(); });
      lines.push_back(flagged.empty() ? "Every variant's runs are VALID."
                                      : fmt::format("INVALID runs in {}.", list_words(as_code(flagged))));
    }
    if (!j.group_mismatches.empty())
      lines.push_back("Protocol mismatch: " + join(j.group_mismatches) + ".");
    out += fmt::format("- {}{}\n", group_prefix(c, g), join(lines, " "));
  }
  return out.empty() ? "" : "**Judgments.**\n\n" + out;
}

std::string how_to_read(const Collected& c, const std::vector<GroupJudgments>& judged) {
  std::string out;
  const MetricDef* mae = results::find_metric(kMae);
  const MetricDef* acc2 = results::find_metric(kAcc2);
  for (size_t gi = 0; gi < c.groups.size(); ++gi) {
    const Group& g = c.groups[gi];
    const GroupJudgments& j = judged[gi];
    const int runs = total_runs(j);
    if (runs == 0) continue;
    std::vector<std::string> s;

    // Convergence.
    int not_converged = 0, capped = 0, unknown = 0;
    for (const auto& [v, vj] : j.variants) not_converged += vj.not_converged, capped += vj.capped, unknown += vj.unknown_history;
    const auto late = variants_where(j, g.variants, [](const VariantJudgment& v) { return v.not_converged > 0; });
    if (not_converged > 0) {
      std::vector<std::string> named;
      for (const auto& v : late)
        named.push_back(fmt::format("{} {}/{}", code(v), j.variants.at(v).not_converged, j.variants.at(v).runs));
      s.push_back(fmt::format(
          "{} of {} runs were still improving when the {} stopped them ({}): their numbers are those of unfinished "
          "training, so a difference involving them says how far training got, not what the variant does.",
          not_converged, runs, cap_text(j), join(named, ", ")));
    } else if (unknown < runs) {
      s.push_back(capped == 0
                      ? "Every run stopped by early stopping, before its epoch cap, so the tables compare trained "
                        "models."
                      : fmt::format("Every run had a flat validation loss when it stopped ({} hit the {} with less "
                                    "than {} improvement over their last {} epochs), so the tables compare trained "
                                    "models.",
                                    capped, cap_text(j), percent(j.convergence_rule.threshold),
                                    j.convergence_rule.window));
    }
    if (unknown > 0)
      s.push_back(fmt::format("{} of {} runs have no stored epoch history, so their convergence is not judged.",
                              unknown, runs));

    // Power.
    if (!j.comparisons.empty()) {
      std::vector<double> mdd_mae, mdd_acc2;
      std::vector<int> ns;
      int cells = 0, underpowered = 0;
      for (const auto& cmp : j.comparisons) {
        for (const auto& [metric, cell] : cmp.power) {
          if (!cell.testable) continue;
          ++cells, underpowered += cell.underpowered;
          if (metric == kMae) mdd_mae.push_back(cell.mdd);
          if (metric == kAcc2) mdd_acc2.push_back(cell.mdd);
        }
      }
      for (const auto& [v, idx] : g.completed) ns.push_back(static_cast<int>(idx.size()));
      const auto [nlo, nhi] = std::minmax_element(ns.begin(), ns.end());
      if (cells > 0) {
        s.push_back(fmt::format(
            "With {} seeds per variant, a difference from full DMD has to reach about {} MAE or {} points of Acc-2 "
            "non0 to be detected 80% of the time at α = 0.05 (its minimal detectable difference, MDD); {} of the {} "
            "differences below are smaller than their MDD and are marked underpowered: there a large p-value means "
            "the seeds cannot tell, not that the variants are equal.",
            *nlo == *nhi ? std::to_string(*nlo) : fmt::format("{}–{}", *nlo, *nhi), range_text(*mae, mdd_mae),
            range_text(*acc2, mdd_acc2), underpowered, cells));
        const std::string n_mae = seeds_range(j, kMae, kMaeTarget);
        const std::string n_acc2 = seeds_range(j, kAcc2, kAcc2Target);
        if (!n_mae.empty() && !n_acc2.empty())
          s.push_back(fmt::format("Detecting a 0.01 MAE difference would take {} seeds per variant, a 1-point Acc-2 "
                                  "non0 difference {}.",
                                  n_mae, n_acc2));
      }
    }

    // Prediction spread.
    const auto collapsed = variants_where(j, g.variants, [](const VariantJudgment& v) { return v.collapsed > 0; });
    if (!collapsed.empty()) {
      std::vector<std::string> named;
      for (const auto& v : collapsed) {
        std::string reason;
        for (size_t i : g.completed.at(v))
          if (j.spread.at(i).collapsed) reason = j.spread.at(i).reason;
        named.push_back(fmt::format("{} ({}/{} runs; e.g. {})", code(v), j.variants.at(v).collapsed,
                                    j.variants.at(v).runs, reason));
      }
      s.push_back(fmt::format(
          "Predictions collapsed toward the mean in {}: such a model scores on MAE and Acc-2 by staying near 0, "
          "and its Acc-5 and Acc-7 count only the middle classes.",
          list_words(named)));
    } else {
      std::vector<double> ratios;
      for (const auto& [i, sp] : j.spread)
        if (sp.known) ratios.push_back(sp.std_ratio);
      if (!ratios.empty()) {
        const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
        s.push_back(fmt::format("No model collapsed toward the mean: the predictions' spread is {:.2f}–{:.2f} of the "
                                "labels'.",
                                *lo, *hi));
      }
    }

    // Test-batch sensitivity, for MAE and Acc-2 non0: the share of the seed-to-seed variance that evaluation alone
    // makes.
    std::vector<std::string> moves;
    std::vector<double> shares;
    for (const MetricDef* m : {mae, acc2}) {
      std::vector<double> eval;
      for (const auto& [v, per_metric] : j.sensitivity) {
        auto it = per_metric.find(m->name);
        if (it == per_metric.end()) continue;
        eval.push_back(it->second.eval_sd);
        if (it->second.seed_sd > 0) shares.push_back(std::pow(it->second.eval_sd / it->second.seed_sd, 2));
      }
      if (!eval.empty())
        moves.push_back(fmt::format("{} by σ = {}{}", m->label, range_text(*m, eval), m->percent ? " points" : ""));
    }
    if (!moves.empty()) {
      std::string share;
      if (!shares.empty()) {
        const auto [lo, hi] = std::minmax_element(shares.begin(), shares.end());
        auto pct = [](double x) {
          return x >= 1 ? std::string("all") : x < 0.01 ? std::string("under 1%") : fmt::format("{:.0f}%", 100 * x);
        };
        const std::string range = pct(*lo) == pct(*hi) ? pct(*lo) : pct(*lo) + " to " + pct(*hi);
        share = fmt::format(", which is {} of their variance across seeds{}", range,
                            *hi < 0.1 ? ": the seed-to-seed spread comes from training, not from evaluation"
                                      : *lo >= 0.5 ? ": much of the seed-to-seed spread is evaluation noise" : "");
      }
      s.push_back(fmt::format("For fixed weights, the test batch order alone (spec §1.11) moves {}{}.",
                              list_words(moves), share));
    }

    // Protocol.
    if (!j.group_mismatches.empty())
      s.push_back("Rows of this group were not made under one protocol: " + join(j.group_mismatches) + ".");
    out += fmt::format("{}{}\n\n", group_prefix(c, g), join(s, " "));
  }
  return out;
}

std::string judgments_section(const Collected& c, const Group& g, const GroupJudgments& j) {
  if (total_runs(j) == 0) return "No completed runs to judge.\n";
  std::string out;
  // Convergence.
  out += fmt::format(
      "**Convergence.** A run is *capped* when it stopped at its epoch cap while early stopping had not fired. A "
      "capped run is *not converged* when {} (k = {}, threshold {}). The column before it applies the stricter "
      "reading, a best epoch within the last {} epochs (any improvement). A negative improvement means the last "
      "epochs were worse than the best before them.\n\n",
      rule_text(j.convergence_rule), j.convergence_rule.window, percent(j.convergence_rule.threshold),
      j.convergence_rule.window);
  out += header({"variant", "runs", "epochs run", "best epoch", "capped", "best in last k", "not converged",
                 "improvement over last k"},
                "l");
  for (const auto& v : g.variants) {
    auto it = g.completed.find(v);
    if (it == g.completed.end()) continue;
    std::vector<std::string> epochs, best, improvement;
    int capped = 0, in_window = 0, not_converged = 0;
    for (size_t i : it->second) {
      const Convergence& cv = j.convergence.at(i);
      if (!cv.known) {
        epochs.push_back("?"), best.push_back("?"), improvement.push_back("?");
        continue;
      }
      epochs.push_back(std::to_string(cv.epochs));
      best.push_back(std::to_string(cv.best_epoch));
      improvement.push_back(std::isinf(cv.improvement) ? "n/a" : percent(cv.improvement));
      capped += cv.capped, in_window += cv.capped && cv.best_in_window, not_converged += cv.not_converged;
    }
    const int n = static_cast<int>(it->second.size());
    out += row({code(v), std::to_string(n), join(epochs, ", "), join(best, ", "), fmt::format("{}/{}", capped, n),
                fmt::format("{}/{}", in_window, n), fmt::format("{}/{}", not_converged, n), join(improvement, ", ")});
  }

  // Power.
  const MetricDef* mae = results::find_metric(kMae);
  const MetricDef* acc2 = results::find_metric(kAcc2);
  if (!j.comparisons.empty()) {
    out += "\n**Power.** Minimal detectable difference (MDD) of each difference from full DMD: the smallest |Δ| that "
           "a two-sided two-sample t-test with pooled variance detects with 80% power at α = 0.05, from the exact "
           "noncentral t distribution (df = n₁ + n₂ − 2; Boost.Math), with the pooled standard deviation of the two "
           "variants' seeds. The difference table above shows it beside each Welch p-value; a |Δ| below it is "
           "*underpowered*. \"Seeds for …\" is the number of seeds per variant (equal n, same pooled sd) whose MDD "
           "reaches 0.01 MAE or 1 point of Acc-2 non0.\n\n";
    out += header({"variant", "Δ MAE", "pooled sd", "MDD", "seeds for 0.01 MAE", "Δ Acc-2 non0", "pooled sd", "MDD",
                   "seeds for 1 pt"},
                  "l");
    for (const auto& cmp : j.comparisons) {
      std::vector<std::string> cells = {code(cmp.variant)};
      for (const auto& [m, target] : {std::pair{mae, kMaeTarget}, std::pair{acc2, kAcc2Target}}) {
        auto it = cmp.power.find(m->name);
        if (it == cmp.power.end() || !it->second.testable) {
          cells.insert(cells.end(), {kNone, kNone, kNone, kNone});
          continue;
        }
        const PowerCell& p = it->second;
        cells.push_back(fmt::format("{:+.{}f}{}", shown_value(*m, p.diff), m->percent ? 2 : 4,
                                    p.underpowered ? " (underpowered)" : ""));
        cells.push_back(shown(*m, p.sd));
        cells.push_back(shown(*m, p.mdd));
        cells.push_back(seeds_text(seeds_to_detect(target, p.sd)));
      }
      out += row(cells);
    }
  }

  // Prediction spread.
  out += fmt::format(
      "\n**Prediction spread.** Test predictions against the labels, mean over seeds. A run *collapsed toward the "
      "mean* when std(pred)/std(label) < {:.2f}, or when at least {} of the labels lie beyond ±1.5 and the "
      "predictions reach there less than {:.0f}% as often.\n\n",
      j.spread_rule.min_std_ratio, percent(j.spread_rule.min_label_tail, 0), 100 * j.spread_rule.min_tail_share);
  out += header({"variant", "std(pred)/std(label)", "|pred| > 1.5", "|label| > 1.5", "collapsed"}, "l");
  for (const auto& v : g.variants) {
    auto it = g.completed.find(v);
    if (it == g.completed.end()) continue;
    std::vector<double> ratio, pred, label;
    int collapsed = 0;
    for (size_t i : it->second) {
      const Spread& sp = j.spread.at(i);
      if (!sp.known) continue;
      ratio.push_back(sp.std_ratio), pred.push_back(sp.pred_tail), label.push_back(sp.label_tail);
      collapsed += sp.collapsed;
    }
    if (ratio.empty()) {
      out += row({code(v), kNone, kNone, kNone, "not stored"});
      continue;
    }
    out += row({code(v), fmt::format("{:.2f}", summarize(ratio).mean), percent(summarize(pred).mean),
                percent(summarize(label).mean), fmt::format("{}/{}", collapsed, ratio.size())});
  }

  // Test-batch sensitivity.
  if (!j.sensitivity.empty()) {
    int passes = 0;
    for (const auto& [v, per_metric] : j.sensitivity)
      for (const auto& [m, s] : per_metric) passes = std::max(passes, s.passes);
    out += fmt::format(
        "\n**Test-batch sensitivity.** The reference's memory encoders deal position indices across the batch "
        "(spec §1.11), so a sample's output depends on the samples it is batched with. Each run's best weights were "
        "evaluated on the test split in {} batch orders (the reported pass and {} more, each from a seed stored in "
        "the batch_order table). Cells: σ over batch orders for fixed weights (root mean of the per-run variances) "
        "/ σ over seeds of the reported metric, in the units of the results table.\n\n",
        passes, passes - 1);
    std::vector<std::string> head = {"variant"};
    for (const auto* m : table_metrics()) head.push_back(m->label);
    out += header(head, "l");
    for (const auto& v : g.variants) {
      auto it = j.sensitivity.find(v);
      if (it == j.sensitivity.end()) continue;
      std::vector<std::string> cells = {code(v)};
      for (const auto* m : table_metrics()) {
        auto s = it->second.find(m->name);
        cells.push_back(s == it->second.end()
                            ? kNone
                            : shown(*m, s->second.eval_sd) + " / " + shown(*m, s->second.seed_sd));
      }
      out += row(cells);
    }
  } else {
    out += "\n**Test-batch sensitivity.** No run of this group stored test passes in other batch orders.\n";
  }

  // Protocol.
  out += "\n**Protocol.** ";
  if (j.group_mismatches.empty()) {
    std::vector<std::string> shared;
    for (const auto& [key, value] : protocol_of(c.runs[j.convergence.begin()->first]))
      shared.push_back(fmt::format("{} {}", key, code(value)));
    out += "Every compared row shares one protocol: " + join(shared, ", ") + ".\n";
  } else {
    out += "The rows differ in: " + join(j.group_mismatches) + ".\n";
  }
  return out;
}

}  // namespace dmdbench::reports
