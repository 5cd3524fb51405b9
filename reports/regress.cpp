#include "reports/regress.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <ostream>

#include <fmt/format.h>

#include "harness/io/output_file.h"
#include <nlohmann/json.hpp>

#include "reports/collect.h"
#include "reports/judgments.h"
#include "reports/published.h"
#include "reports/report.h"
#include "reports/stats.h"
#include "results/metrics.h"

namespace dmdbench::reports {

namespace {

using json = nlohmann::ordered_json;
constexpr double kDefaultK = 3.0;
constexpr const char* kFullModel = "dmd";
constexpr const char* kUnits =
    "acc* and f1* values and tolerances are in percent points; mae and corr are raw. A regression is a move in the "
    "bad direction beyond max(tolerance, k * std / sqrt(n)).";

json default_tolerances() {
  json t;
  for (const auto& m : results::metric_defs()) t[m.name] = m.tolerance;
  return t;
}

// Metrics outside the table (none today) are compared raw, lower is better.
results::Better better_of(const std::string& metric) {
  const auto* m = results::find_metric(metric);
  return m ? m->better : results::Better::Lower;
}

// The value in baseline units: percent for accuracies and F1.
double shown(const std::string& metric, double stored) {
  const auto* m = results::find_metric(metric);
  return m ? results::shown_value(*m, stored) : stored;
}

std::string fmt_value(const std::string& metric, double v) {
  const auto* m = results::find_metric(metric);
  return m ? results::format_shown(*m, v) : fmt::format("{:.4f}", v);
}

std::string fmt_change(const std::string& metric, double v) {
  const auto* m = results::find_metric(metric);
  return fmt::format("{:+.{}f}", v, m && m->percent ? 2 : 4);
}

double round6(double x) { return std::round(x * 1e6) / 1e6; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ReportError(fmt::format("cannot read baseline {}: no such file", path));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

json read_baseline(const std::string& path) {
  const auto text = slurp(path);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    throw ReportError(fmt::format("baseline {} is not a JSON object", path));
  if (!j.contains("variants") || !j["variants"].is_object())
    throw ReportError(fmt::format("baseline {} has no \"variants\" object", path));
  if (!j.contains("dataset") || !j["dataset"].is_string())
    throw ReportError(fmt::format("baseline {} has no \"dataset\" string", path));
  return j;
}

std::string string_field(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// The one group with completed runs that matches; throws when several match.
const Group* pick_group(const Collected& c, const std::string& dataset, const std::string& profile,
                        const std::string& setting) {
  std::vector<const Group*> found;
  for (const auto& g : c.groups) {
    if (g.completed.empty()) continue;
    if (!dataset.empty() && g.dataset != dataset) continue;
    if (!profile.empty() && g.profile != profile) continue;
    if (!setting.empty() && g.setting != setting) continue;
    found.push_back(&g);
  }
  if (found.size() > 1) {
    std::string names;
    for (const auto* g : found) names += (names.empty() ? "" : "; ") + g->title();
    throw ReportError(fmt::format("the results match several datasets or profiles ({}); choose one with --dataset "
                                  "and --profile", names));
  }
  return found.empty() ? nullptr : found.front();
}

// The group's INVALID judgments as "judgment:" lines (only `variants` when given); returns whether there were any.
bool print_judgments(const Collected& c, const Group& g, bool require_valid, std::ostream& out,
                     const std::vector<std::string>& variants = {}) {
  const GroupJudgments j = judge_group(c, g);
  bool invalid = false;
  for (const auto& v : g.variants) {
    if (!variants.empty() && std::find(variants.begin(), variants.end(), v) == variants.end()) continue;
    auto it = j.variants.find(v);
    if (it == j.variants.end() || it->second.valid()) continue;
    std::string flags;
    for (const auto& f : it->second.flags) flags += (flags.empty() ? "" : "; ") + f;
    out << fmt::format("judgment: {} INVALID: {}\n", v, flags);
    invalid = true;
  }
  for (const auto& m : j.group_mismatches) {
    out << fmt::format("judgment: protocol mismatch: {}\n", m);
    invalid = true;
  }
  if (require_valid && !invalid)
    out << "judgment: VALID (every run had a flat validation loss when it stopped, no predictions collapsed toward "
           "the mean, one protocol)\n";
  return invalid;
}

std::string experiment_name(const Collected& c) { return c.experiment_id.empty() ? "(all)" : c.experiment_id; }

int update_baseline(const results::Store& store, const RegressOptions& o, std::ostream& out) {
  json previous;
  if (std::filesystem::exists(o.baseline_path)) previous = read_baseline(o.baseline_path);
  const Collected c = collect(store, o.experiment);
  const std::string dataset = !o.dataset.empty() ? o.dataset : string_field(previous, "dataset");
  const std::string profile = !o.profile.empty() ? o.profile : string_field(previous, "profile");
  const Group* g = pick_group(c, dataset, profile, o.dataset.empty() ? string_field(previous, "setting") : "");
  if (!g)
    throw ReportError(fmt::format("no completed runs{}{} in experiment {} to write a baseline from",
                                  dataset.empty() ? "" : " for dataset " + dataset,
                                  profile.empty() ? "" : ", profile " + profile, experiment_name(c)));
  json j;
  j["dataset"] = g->dataset;
  j["profile"] = g->profile;
  if (!g->setting.empty()) j["setting"] = g->setting;
  j["k"] = previous.contains("k") ? previous["k"] : json(kDefaultK);
  json tolerances = default_tolerances();
  if (previous.contains("tolerances") && previous["tolerances"].is_object())
    for (const auto& [name, value] : previous["tolerances"].items()) tolerances[name] = value;
  j["tolerances"] = tolerances;
  j["units"] = kUnits;
  j["experiment"] = c.experiment_id;
  j["created_at"] = results::utc_now();
  std::vector<std::string> commits;
  for (const auto& [variant, runs] : g->completed)
    for (size_t i : runs)
      if (std::find(commits.begin(), commits.end(), c.runs[i].row.prov.git_commit) == commits.end())
        commits.push_back(c.runs[i].row.prov.git_commit);
  j["git_commit"] = commits.size() == 1 ? json(commits[0]) : json(commits);
  json variants = json::object();
  int metric_count = 0;
  for (const auto& variant : g->variants) {
    auto it = g->completed.find(variant);
    if (it == g->completed.end()) continue;
    std::vector<std::string> names;
    for (const auto& m : results::metric_defs()) names.push_back(m.name);
    for (size_t i : it->second)
      for (const auto& [name, value] : c.runs[i].test)
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    json metrics = json::object();
    for (const auto& name : names) {
      std::vector<double> values;
      for (double v : g->values(c, variant, name)) values.push_back(shown(name, v));
      if (values.empty()) continue;
      const auto s = summarize(values);
      metrics[name] = {{"mean", round6(s.mean)}, {"std", round6(s.std)}, {"n", s.n}};
      ++metric_count;
    }
    variants[variant] = metrics;
  }
  j["variants"] = variants;
  write_file_atomically(o.baseline_path, j.dump(2) + "\n");
  out << fmt::format("wrote baseline {}: {} variants, {} metrics (dataset {}, profile {}, experiment {})\n",
                     o.baseline_path, variants.size(), metric_count, g->dataset, g->profile, experiment_name(c));
  return 0;
}

int against_baseline(const results::Store& store, const RegressOptions& o, std::ostream& out) {
  const json base = read_baseline(o.baseline_path);
  const Collected c = collect(store, o.experiment);
  const std::string dataset = !o.dataset.empty() ? o.dataset : string_field(base, "dataset");
  const std::string profile = !o.profile.empty() ? o.profile : string_field(base, "profile");
  const std::string setting = o.dataset.empty() ? string_field(base, "setting") : "";
  const double k = base.contains("k") && base["k"].is_number() ? base["k"].get<double>() : kDefaultK;
  json tolerances = default_tolerances();
  if (base.contains("tolerances") && base["tolerances"].is_object())
    for (const auto& [name, value] : base["tolerances"].items()) tolerances[name] = value;

  out << fmt::format("regress: experiment {}, dataset {}, profile {} against baseline {} (k = {})\n",
                     experiment_name(c), dataset, profile.empty() ? "(any)" : profile, o.baseline_path, k);
  const Group* g = pick_group(c, dataset, profile, setting);
  if (!g) {
    out << fmt::format("regress: FAIL, no completed runs for dataset {}{} in experiment {}; nothing compared\n",
                       dataset, profile.empty() ? "" : ", profile " + profile, experiment_name(c));
    return 1;
  }
  int regressions = 0, improvements = 0, within = 0, missing = 0;
  for (const auto& [variant, metrics] : base["variants"].items()) {
    if (g->completed.count(variant) == 0) {
      out << fmt::format("{}: missing from the database (in the baseline, no completed runs now)\n", variant);
      ++missing;
      continue;
    }
    for (const auto& [metric, ref] : metrics.items()) {
      const auto values = g->values(c, variant, metric);
      if (values.empty()) {
        out << fmt::format("{} {}: missing from the database (in the baseline)\n", variant, metric);
        ++missing;
        continue;
      }
      std::vector<double> now_values;
      for (double v : values) now_values.push_back(shown(metric, v));
      const auto now = summarize(now_values);
      const double base_mean = ref.value("mean", 0.0), base_std = ref.value("std", 0.0);
      const int base_n = ref.value("n", 1);
      const double abs_tol = tolerances.contains(metric) ? tolerances[metric].get<double>() : 0.0;
      const double tol = std::max(abs_tol, base_n > 0 ? k * base_std / std::sqrt(static_cast<double>(base_n)) : 0.0);
      const double change = now.mean - base_mean;
      const results::Better direction = better_of(metric);
      const bool worse = direction == results::Better::Lower    ? change > tol
                         : direction == results::Better::Higher ? change < -tol
                                                                : std::fabs(change) > tol;
      const bool better = direction == results::Better::Lower    ? change < -tol
                          : direction == results::Better::Higher ? change > tol
                                                                 : false;
      if (!worse && !better) {
        ++within;
        continue;
      }
      out << fmt::format("{} {}: baseline {} ± {} (n={}), now {} (n={}), change {}, tolerance {}: {}\n", variant,
                         metric, fmt_value(metric, base_mean), fmt_value(metric, base_std), base_n,
                         fmt_value(metric, now.mean), now.n, fmt_change(metric, change), fmt_value(metric, tol),
                         worse ? "REGRESSION" : "improved");
      worse ? ++regressions : ++improvements;
    }
  }
  for (const auto& variant : g->variants)
    if (g->completed.count(variant) && !base["variants"].contains(variant)) {
      out << fmt::format("{}: not in the baseline (new variant; --update-baseline adds it)\n", variant);
      ++missing;
    }
  const bool nothing = regressions + improvements + within == 0;
  const bool invalid = print_judgments(c, *g, o.require_valid, out) && o.require_valid;
  const bool fail = regressions || nothing || invalid;
  out << fmt::format("regress: {}, {} regression{}, {} improvement{}, {} within tolerance, {} missing{}\n",
                     fail ? "FAIL" : "PASS", regressions, regressions == 1 ? "" : "s", improvements,
                     improvements == 1 ? "" : "s", within, missing,
                     invalid ? ", results judged INVALID (--require-valid)" : "");
  return fail ? 1 : 0;
}

int against_published(const results::Store& store, const RegressOptions& o, std::ostream& out) {
  const Collected c = collect(store, o.experiment);
  const auto& pub = published();
  const std::pair<const char*, const char*> pairs[] = {{"acc2_non0", "acc2"}, {"f1_non0", "f1"}, {"acc7", "acc7"}};
  int regressions = 0, compared = 0, invalid_groups = 0;
  for (const auto& g : c.groups) {
    if (!o.dataset.empty() && g.dataset != o.dataset) continue;
    if (!o.profile.empty() && g.profile != o.profile) continue;
    const std::string family = real_data_family(g.dataset);
    if (family.empty()) {
      out << fmt::format("{}: no published reference applies to {}\n", g.title(),
                         g.dataset.rfind("synthetic", 0) == 0 ? "synthetic data" : "this dataset (not mosi: or mosei:)");
      continue;
    }
    if (g.completed.count(kFullModel) == 0) {
      out << fmt::format("{}: no completed {} runs to compare with the published numbers\n", g.title(), kFullModel);
      continue;
    }
    const std::string setting = g.setting.empty() ? "aligned" : g.setting;
    if (g.setting.empty()) out << fmt::format("{}: setting unknown, compared as aligned\n", g.title());
    if (print_judgments(c, g, o.require_valid, out, {kFullModel}) && o.require_valid) ++invalid_groups;
    for (const auto& note : published_protocol_notes(c, g))
      out << fmt::format("{}: protocol differs from the published runs: {}\n", g.title(), note);
    // The paper row of our text protocol (GloVe features: the unstarred row; anything else: the starred BERT
    // row, the reference's protocol), labelled with whether the protocol is the same.
    std::vector<std::string> protocols;
    for (size_t i : g.completed.at(kFullModel)) protocols.push_back(c.runs[i].text);
    std::sort(protocols.begin(), protocols.end());
    protocols.erase(std::unique(protocols.begin(), protocols.end()), protocols.end());
    const std::string ours = protocols.size() == 1 ? protocols[0] : "mixed";
    const std::string want_text = ours == "features (GloVe 300-d)" ? "glove" : "bert";
    auto protocol_note = [&](const PublishedRow& r) {
      const std::string theirs = published_text_protocol(r);
      return theirs == ours
                 ? fmt::format("same text protocol, {}", ours)
                 : fmt::format("text protocol {}, ours {}", theirs.empty() ? "unknown" : theirs, ours);
    };
    const PublishedRow* paper = nullptr;
    std::vector<const PublishedRow*> reruns;
    for (const auto& r : pub.rows) {
      if (r.method != kFullModel || r.dataset != family || r.setting != setting) continue;
      if (r.source == kPaperSource) {
        if (!paper || (paper->text != want_text && r.text == want_text)) paper = &r;
      } else {
        reruns.push_back(&r);
      }
    }
    auto compare = [&](const std::string& label, double tolerance,
                       const std::function<std::optional<double>(const char*)>& reference) {
      for (const auto& [ours, theirs] : pairs) {
        const auto ref = reference(theirs);
        const auto values = g.values(c, kFullModel, ours);
        if (!ref || values.empty()) continue;
        const auto now = summarize(values);
        const double now_pct = 100 * now.mean, change = now_pct - *ref;
        const char* verdict = change < -tolerance ? "REGRESSION" : change > tolerance ? "above" : "ok";
        out << fmt::format("{} {} {} vs {}: published {:.2f}, now {:.2f} (n={}), change {:+.2f}, tolerance {:.2f}: {}\n",
                           g.title(), kFullModel, ours, label, *ref, now_pct, now.n, change, tolerance, verdict);
        ++compared;
        if (change < -tolerance) ++regressions;
      }
    };
    if (paper)
      compare(fmt::format("paper ({}, {}, {} text features; {})", paper->source, paper->setting, paper->text,
                          protocol_note(*paper)),
              o.paper_tolerance, [&](const char* name) -> std::optional<double> {
                return std::string(name) == "acc2" ? paper->acc2 : std::string(name) == "f1" ? paper->f1 : paper->acc7;
              });
    if (reruns.empty()) {
      out << fmt::format("{}: no independent reruns are published for the {} setting\n", g.title(), setting);
    } else {
      std::string names;
      for (const auto* r : reruns) names += (names.empty() ? "" : ", ") + r->source;
      compare(fmt::format("rerun mean ({}; {})", names, protocol_note(*reruns.front())), o.rerun_tolerance,
              [&](const char* name) -> std::optional<double> {
                std::vector<double> v;
                for (const auto* r : reruns) {
                  const auto& x = std::string(name) == "acc2" ? r->acc2 : std::string(name) == "f1" ? r->f1 : r->acc7;
                  if (x) v.push_back(*x);
                }
                if (v.empty()) return std::nullopt;
                return summarize(v).mean;
              });
    }
  }
  if (compared == 0) {
    out << "regress: PASS, nothing compared: no published reference applies to these results\n";
    return 0;
  }
  const bool fail = regressions || invalid_groups;
  out << fmt::format("regress: {}, {} of {} comparisons with the published numbers regressed (the paper's Acc-2 "
                     "convention is unstated; ours is non0){}\n",
                     fail ? "FAIL" : "PASS", regressions, compared,
                     invalid_groups ? "; full DMD's runs judged INVALID (--require-valid)" : "");
  return fail ? 1 : 0;
}

}  // namespace

int regress(const results::Store& store, const RegressOptions& o, std::ostream& out) {
  if (o.against == "published") return against_published(store, o, out);
  if (!o.against.empty())
    throw ReportError(fmt::format("unknown --against '{}' (expected 'published', or nothing for the baseline file)",
                                  o.against));
  if (o.baseline_path.empty()) throw ReportError("no baseline file given (--baseline PATH)");
  return o.update_baseline ? update_baseline(store, o, out) : against_baseline(store, o, out);
}

}  // namespace dmdbench::reports
