#include "reports/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "harness/experiment/config.h"
#include "harness/experiment/dataset_spec.h"
#include "harness/io/output_file.h"
#include "reports/collect.h"
#include "reports/figures.h"
#include "reports/judgment_text.h"
#include "reports/judgments.h"
#include "reports/markdown.h"
#include "reports/published.h"
#include "reports/stats.h"
#include "results/robustness.h"

namespace dmdbench::reports {

namespace fs = std::filesystem;
using results::RunStatus;

namespace {

constexpr const char* kFullModel = "dmd";
using md::cell_text;
using md::code;
using md::format_p;
using md::header;
using md::kNone;
using md::row;

// "a (3 runs), b (1 run)" for values that differ between runs; just "a" when all agree.
std::string distinct(const std::vector<std::string>& values) {
  std::vector<std::pair<std::string, int>> counts;
  for (const auto& v : values) {
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& p) { return p.first == v; });
    if (it == counts.end()) counts.push_back({v, 1});
    else ++it->second;
  }
  if (counts.empty()) return kNone;
  std::stable_sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (counts.size() == 1) return counts[0].first.empty() ? "(not recorded)" : counts[0].first;
  std::string out;
  for (const auto& [v, n] : counts)
    out += fmt::format("{}{} ({} run{})", out.empty() ? "" : ", ", v.empty() ? "(not recorded)" : v, n,
                       n == 1 ? "" : "s");
  return out;
}

using results::format_shown;
using results::MetricDef;
using results::shown_value;

std::string mean_std(const MetricDef& m, const Summary& s) {
  if (s.n == 0) return kNone;
  const std::string mean = format_shown(m, shown_value(m, s.mean));
  return s.n < 2 ? mean : mean + " ± " + format_shown(m, shown_value(m, s.std));
}

// The text protocol(s) of a variant's completed runs.
std::string text_of(const Collected& c, const Group& g, const std::string& variant) {
  auto it = g.completed.find(variant);
  if (it == g.completed.end()) return kNone;
  std::vector<std::string> values;
  for (size_t i : it->second) values.push_back(c.runs[i].text);
  return cell_text(distinct(values));
}

std::string results_table(const Collected& c, const Group& g, const GroupJudgments& j) {
  const auto metrics = table_metrics();
  // The best shown mean per column, compared as displayed so that ties in the printed digits are all bold.
  std::vector<std::string> best(metrics.size());
  for (size_t k = 0; k < metrics.size(); ++k) {
    std::optional<double> best_value;
    for (const auto& v : g.variants) {
      const auto s = summarize(g.values(c, v, metrics[k]->name));
      if (s.n == 0) continue;
      const double shown = shown_value(*metrics[k], s.mean);
      if (!best_value || (metrics[k]->better == results::Better::Lower ? shown < *best_value : shown > *best_value))
        best_value = shown;
    }
    if (!best_value || metrics[k]->better == results::Better::Neither) continue;
    best[k] = format_shown(*metrics[k], *best_value);
    // No bold when every variant shows the best value: nothing is singled out.
    bool all_tied = true;
    for (const auto& v : g.variants) {
      const auto s = summarize(g.values(c, v, metrics[k]->name));
      if (s.n > 0 && format_shown(*metrics[k], shown_value(*metrics[k], s.mean)) != best[k]) all_tied = false;
    }
    if (all_tied) best[k].clear();
  }
  std::vector<std::string> head = {"variant", "text", "n"};
  for (const auto* m : metrics) head.push_back(m->label);
  head.push_back("judgment");
  std::string out = header(head, "ll" + std::string(metrics.size() + 1, 'r') + "l");
  for (const auto& v : g.variants) {
    auto it = g.completed.find(v);
    std::vector<std::string> cells = {code(v), text_of(c, g, v),
                                      std::to_string(it == g.completed.end() ? 0 : it->second.size())};
    for (size_t k = 0; k < metrics.size(); ++k) {
      const auto s = summarize(g.values(c, v, metrics[k]->name));
      std::string text = mean_std(*metrics[k], s);
      if (s.n > 0 && !best[k].empty() && format_shown(*metrics[k], shown_value(*metrics[k], s.mean)) == best[k])
        text = "**" + text + "**";
      cells.push_back(text);
    }
    cells.push_back(variant_judgment_cell(j, v));
    out += row(cells);
  }
  return out;
}

std::string difference_table(const Group& g, const GroupJudgments& j) {
  if (g.completed.count(kFullModel) == 0)
    return fmt::format("No completed full DMD (`{}`) runs in this group, so no differences are computed.\n",
                       kFullModel);
  if (j.comparisons.empty())
    return fmt::format("Only full DMD (`{}`) has completed runs in this group.\n", kFullModel);
  const auto metrics = table_metrics();
  std::vector<std::string> head = {"variant"};
  for (const auto* m : metrics) head.push_back(std::string("Δ ") + m->label);
  head.push_back("comparison");
  const std::string align = "l" + std::string(metrics.size(), 'r') + "l";
  std::string out = fmt::format(
      "Variant minus full DMD (`{}`), in the units of the table above, with the two-sided Welch t-test across "
      "seeds (Welch–Satterthwaite df; * marks p < 0.05) and the minimal detectable difference (MDD: 80% power at "
      "α = 0.05, Judgments below); *underpowered*: |Δ| is below the MDD, so the seeds cannot tell this difference "
      "from none. A comparison is INVALID when either side has runs that did not converge or collapsed toward the "
      "mean, or when the two sides differ in protocol.\n\n",
      kFullModel);
  out += header(head, align);
  for (const auto& cmp : j.comparisons) {
    std::vector<std::string> cells = {code(cmp.variant)};
    for (const auto* m : metrics) {
      auto it = cmp.power.find(m->name);
      cells.push_back(it == cmp.power.end() ? kNone : difference_cell(*m, it->second));
    }
    cells.push_back(comparison_cell(cmp));
    out += row(cells);
  }
  return out;
}

// A variant's values of a metric (mean ± std) and, for other variants, the Welch test against full DMD.
std::string versus_full(const Collected& c, const Group& g, const std::string& variant, const MetricDef& m) {
  const auto values = g.values(c, variant, m.name);
  std::string text = mean_std(m, summarize(values));
  if (values.empty() || variant == kFullModel) return text;
  const auto full = g.values(c, kFullModel, m.name);
  if (full.empty()) return text;
  const auto w = welch_test(full, values);
  if (!w.testable) return text + " (n too small)";
  return text + fmt::format(" (t={:+.2f}, {}{}){}", w.t, format_p(w.p), w.note.empty() ? "" : ", " + w.note,
                            w.p < 0.05 ? "*" : "");
}

// Per group: the modality-drop table, the drop profile, relative and effective robustness (results/robustness.h).
std::string robustness_section(const Collected& c, const Group& g) {
  bool any = false;
  for (size_t i : g.runs) any = any || !c.runs[i].robustness.empty();
  if (!any)
    return "No robustness evaluations are stored for this group (`run-ablation --robustness default|full`, or "
           "`dmdbench robustness` for runs whose weights were kept).\n";
  std::string out =
      "The test split of each run's best weights under test-time perturbations, with the batch size and sample order "
      "of the clean test pass: `drop:<m>` zeroes modality m, `missing:all@r` zeroes each time step of every modality "
      "with probability r (MMSA's `generate_m`), `noise:<m>@s` adds Gaussian noise of s times the training split's "
      "per-channel std to the non-padded frames. Cells are mean ± std over seeds; (t, p) is the two-sided Welch "
      "t-test against full DMD (`dmd`) on the same measure; * marks p < 0.05.\n\n";
  const MetricDef& acc = *results::find_metric("acc2_non0");
  const MetricDef& mae = *results::find_metric("mae");
  // Modality drops: the metric with the modality missing.
  out += "**Modality drops** (the metric with the modality missing entirely):\n\n";
  std::vector<std::string> head = {"variant", "clean " + std::string(acc.label)};
  for (const char* m : results::kModalities) head.push_back(fmt::format("{} drop:{}", acc.label, m));
  for (const char* m : results::kModalities) head.push_back(fmt::format("{} drop:{}", mae.label, m));
  out += header(head);
  auto under = [&](const std::string& variant, const char* modality, const MetricDef& m) {
    // The metric under the drop, as clean + drop measure (both stored per run).
    std::vector<double> full_values, values;
    auto collect_values = [&](const std::string& v, std::vector<double>& into) {
      auto it = g.completed.find(v);
      if (it == g.completed.end()) return;
      for (size_t i : it->second)
        for (const auto& r : c.runs[i].robustness)
          if (r.perturbation == std::string("drop:") + modality && r.metric == m.name) into.push_back(r.value);
    };
    collect_values(variant, values);
    collect_values(kFullModel, full_values);
    std::string text = mean_std(m, summarize(values));
    if (values.empty() || variant == kFullModel || full_values.empty()) return text;
    const auto w = welch_test(full_values, values);
    if (!w.testable) return text + " (n too small)";
    return text + fmt::format(" (t={:+.2f}, {}){}", w.t, format_p(w.p), w.p < 0.05 ? "*" : "");
  };
  for (const auto& v : g.variants) {
    if (g.completed.count(v) == 0) continue;
    std::vector<std::string> cells = {code(v), mean_std(acc, summarize(g.values(c, v, acc.name)))};
    for (const char* m : results::kModalities) cells.push_back(under(v, m, acc));
    for (const char* m : results::kModalities) cells.push_back(under(v, m, mae));
    out += row(cells);
  }
  // Which modality the model leans on: the change of each metric when the modality is dropped.
  out += "\n**Drop profile** (metric under the drop minus the clean metric: the larger the loss, the more the model "
         "leans on that modality):\n\n";
  head = {"variant"};
  for (const char* m : results::kModalities) head.push_back(fmt::format("Δ {} drop:{}", acc.label, m));
  for (const char* m : results::kModalities) head.push_back(fmt::format("Δ {} drop:{}", mae.label, m));
  out += header(head);
  for (const auto& v : g.variants) {
    if (g.completed.count(v) == 0) continue;
    std::vector<std::string> cells = {code(v)};
    for (const MetricDef* metric : {&acc, &mae})
      for (const char* m : results::kModalities)
        cells.push_back(versus_full(c, g, v, *results::find_metric(fmt::format("drop_{}_{}", m, metric->name))));
    out += row(cells);
  }
  // Relative and effective robustness of the missing-rate curve.
  const bool reference = !reference_curves(c, g).empty();
  out += fmt::format(
      "\n**Relative robustness** (RR: area under the metric against the missing rate, trapezoid rule from rate 0 to "
      "the largest, divided by the largest rate: the mean score over the missing rates) and **effective robustness** "
      "(ER: the same area of the run's curve minus the MulT baseline's mean curve shifted to the run's clean score; "
      "positive Acc-2/F1 or negative MAE: holds up better than MulT){}:\n\n",
      reference ? "" : "; no completed MulT (`mult`) runs with robustness rows here, so no ER");
  head = {"variant"};
  std::vector<const MetricDef*> measures;
  for (const char* prefix : {"rr_", "er_"})
    for (const char* m : results::kRobustnessMetrics)
      if (reference || std::string(prefix) == "rr_") measures.push_back(results::find_metric(std::string(prefix) + m));
  for (const auto* m : measures) head.push_back(m->label);
  out += header(head);
  for (const auto& v : g.variants) {
    if (g.completed.count(v) == 0) continue;
    std::vector<std::string> cells = {code(v)};
    for (const auto* m : measures) cells.push_back(versus_full(c, g, v, *m));
    out += row(cells);
  }
  return out;
}

std::string optional_value(const std::optional<double>& v, int digits) {
  return v ? fmt::format("{:.{}f}", *v, digits) : kNone;
}

std::string published_section(const Collected& c, const Group& g) {
  const std::string family = real_data_family(g.dataset);
  if (family.empty()) {
    if (g.dataset.rfind("synthetic", 0) == 0) return "No published reference applies to synthetic data.\n";
    return fmt::format("No published reference applies: dataset `{}` is not named mosi:PATH or mosei:PATH.\n",
                       g.dataset);
  }
  const auto& pub = published();
  std::string out = fmt::format(
      "Published numbers for {} ({}), in percent except MAE and Corr. The paper's Acc-2 convention is "
      "unstated "
      "(has0 or non0; the reference code computes non0), so compare its Acc-2/F1 with the Acc-2 non0 and F1 "
      "non0 "
      "columns above. ",
      family == "mosi" ? "CMU-MOSI" : "CMU-MOSEI",
      g.setting.empty() ? "all settings" : "setting " + g.setting);
  const std::string ours = text_of(c, g, kFullModel);
  out += fmt::format(
      "Our full DMD's text protocol: {}. The paper's starred rows (BERT) and the reruns of the public code "
      "fine-tune bert-base-uncased (bert-finetune); its unstarred rows read 300-d GloVe features; `same "
      "text` marks "
      "the rows whose protocol is ours.\n\n",
      ours);
  out += header(
      {"source", "method", "setting", "text features", "same text", "Acc-7", "Acc-2", "F1", "MAE", "Corr"},
      "lllll");
  std::set<std::string> cited;
  for (const auto& r : pub.rows) {
    if (r.dataset != family || (!g.setting.empty() && r.setting != g.setting)) continue;
    const std::string protocol = published_text_protocol(r);
    const std::string same = protocol.empty() ? "unknown" : protocol == ours ? "yes" : "no";
    out += row({code(r.source), r.method, r.setting, r.text, same, optional_value(r.acc7, 2),
                optional_value(r.acc2, 2), optional_value(r.f1, 2), optional_value(r.mae, 4),
                optional_value(r.corr, 4)});
    cited.insert(r.source);
  }
  if (g.setting.empty() || g.setting == "unaligned") {
    out += fmt::format("\nPaper Table 3 (ablation of components; {}), Acc-7 / F1 on {}:\n\n", pub.ablation_setting,
                       family == "mosi" ? "MOSI" : "MOSEI");
    out += header({"FD", "HomoGD", "CA", "HeteroGD", "Acc-7", "F1"}, "cccc");
    auto mark = [](bool b) { return std::string(b ? "✓" : "×"); };
    for (const auto& a : pub.ablation)
      out += row({mark(a.fd), mark(a.homogd), mark(a.ca), mark(a.heterogd),
                  fmt::format("{:.1f}", family == "mosi" ? a.mosi_acc7 : a.mosei_acc7),
                  fmt::format("{:.1f}", family == "mosi" ? a.mosi_f1 : a.mosei_f1)});
    cited.insert(pub.ablation_source);
  }
  const auto notes = published_protocol_notes(c, g);
  if (!notes.empty()) {
    out += "\nProtocol differences of full DMD's runs here from the published ones:\n\n";
    for (const auto& n : notes) out += "- " + n + "\n";
  }
  out += "\nSources:\n";
  for (const auto& s : cited) {
    auto it = pub.sources.find(s);
    out += fmt::format("- `{}`: {}\n", s, it == pub.sources.end() ? "(no citation recorded)" : it->second);
  }
  return out;
}

// The family a dataset name belongs to, real or synthetic ("" when the name says neither).
std::string family_of(const std::string& dataset) {
  try {
    return parse_dataset_spec(dataset).family;
  } catch (const ConfigError&) {
    return "";
  }
}

// The paper's Table 3 next to our runs of the variants that reproduce its rows: shown when a variant of the
// paper-table3 set ran in the group.
std::string table3_section(const Collected& c, const Group& g, const std::vector<VariantInfo>& variants) {
  bool ran = false;
  for (const auto& v : variants)
    if (v.table3_set)
      for (const auto& [label, runs] : g.completed)
        if (variant_of(label) == v.name && !runs.empty()) ran = true;
  if (!ran) return "";
  const auto& pub = published();
  const std::string family = family_of(g.dataset), real = real_data_family(g.dataset);
  const std::string dataset_name = family == "mosei" ? "CMU-MOSEI" : "CMU-MOSI";
  std::vector<std::string> protocols;
  for (size_t i : g.runs) protocols.push_back(run_text_protocol(c.runs[i].row));
  const std::string ours_text = distinct(protocols);
  const std::string ours_setting = g.setting.empty() ? "setting unknown" : g.setting;
  std::vector<std::string> differences;
  if (real.empty()) differences.push_back("our data is synthetic, not " + dataset_name);
  if (g.setting != "unaligned")
    differences.push_back("our setting is " + ours_setting + ", the paper's unaligned");
  if (ours_text.find("GloVe") == std::string::npos)
    differences.push_back("our text input is " + ours_text + ", the paper's 300-d GloVe features");
  if (g.profile != "paper")
    differences.push_back("profile " + g.profile + " is not the reference recipe (epoch cap, data fraction)");
  std::string out = fmt::format(
      "The paper's Table 3 switches off feature decoupling (FD), HomoGD, the cross-modal attention units "
      "(CA) and "
      "HeteroGD in turn. Paper: {}, {} ({}), Acc-7 / F1 in percent, number of runs unstated. Ours: `{}`, {}, "
      "text {}, Acc-7 and F1 non0 (the reference code's F1) as mean ± std over seeds. CA off is our reading "
      "(the "
      "paper gives no code): each crossmodal transformer attends to its own modality's exclusive features "
      "(`cross_modal_attention=false`).\n\n",
      dataset_name, pub.ablation_setting, pub.ablation_source, g.dataset, ours_setting, ours_text);
  if (differences.empty()) {
    out += "Comparable: same data, setting and text protocol as the paper.\n\n";
  } else {
    out += "**Not comparable with the paper's numbers**: ";
    for (size_t i = 0; i < differences.size(); ++i) out += (i ? "; " : "") + differences[i];
    out += ".\n\n";
  }
  const auto* acc7 = results::find_metric("acc7");
  const auto* f1 = results::find_metric("f1_non0");
  out += header({"row", "FD", "HomoGD", "CA", "HeteroGD", "variant", "n", "Acc-7 (ours)", "F1 non0 (ours)",
                 "Acc-7 (paper)", "F1 (paper)"},
                "lcccclr");
  auto mark = [](bool b) { return std::string(b ? "✓" : "×"); };
  for (int row_no = 1; row_no <= static_cast<int>(pub.ablation.size()); ++row_no) {
    const auto& a = pub.ablation[static_cast<size_t>(row_no - 1)];
    const std::string paper_acc7 = fmt::format("{:.1f}", family == "mosei" ? a.mosei_acc7 : a.mosi_acc7);
    const std::string paper_f1 = fmt::format("{:.1f}", family == "mosei" ? a.mosei_f1 : a.mosi_f1);
    std::vector<std::string> labels;  // the group's rows of variants that reproduce this Table 3 row
    for (const auto& v : variants)
      if (v.table3_row == row_no)
        for (const auto& label : g.variants)
          if (variant_of(label) == v.name && g.completed.count(label)) labels.push_back(label);
    if (labels.empty()) labels.push_back("");
    for (const auto& label : labels) {
      const auto sa = summarize(g.values(c, label, "acc7")), sf = summarize(g.values(c, label, "f1_non0"));
      out += row({std::to_string(row_no), mark(a.fd), mark(a.homogd), mark(a.ca), mark(a.heterogd),
                  label.empty() ? kNone : code(label), std::to_string(sa.n), mean_std(*acc7, sa),
                  mean_std(*f1, sf), paper_acc7, paper_f1});
    }
  }
  return out;
}

std::string throughput_table(const Collected& c, const Group& g) {
  std::string body;
  for (const auto& v : g.variants) {
    auto it = g.completed.find(v);
    if (it == g.completed.end()) continue;
    std::map<std::string, std::vector<const results::ThroughputRow*>> by_phase;
    std::vector<std::string> devices, threads, batches;
    for (size_t i : it->second)
      for (const auto& t : c.runs[i].throughput) {
        by_phase[t.phase].push_back(&t);
        devices.push_back(t.device);
        threads.push_back(std::to_string(t.threads));
        batches.push_back(t.phase + " " + std::to_string(t.batch_size));
      }
    if (by_phase.empty()) continue;
    auto phase_stats = [&](const std::string& phase, std::string& rate, std::string& latency) {
      auto p = by_phase.find(phase);
      if (p == by_phase.end()) {
        rate = latency = kNone;
        return;
      }
      std::vector<double> r, p50, p95;
      for (const auto* t : p->second) {
        r.push_back(t->samples_per_s);
        p50.push_back(t->latency_p50_ms);
        p95.push_back(t->latency_p95_ms);
      }
      rate = fmt::format("{:.1f}", summarize(r).mean);
      latency = fmt::format("{:.2f} / {:.2f}", summarize(p50).mean, summarize(p95).mean);
    };
    std::string train_rate, train_latency, eval_rate, eval_latency;
    phase_stats("train", train_rate, train_latency);
    phase_stats("eval", eval_rate, eval_latency);
    int64_t peak = 0, params = 0;
    for (const auto& [phase, rows] : by_phase)
      for (const auto* t : rows) {
        peak = std::max(peak, t->peak_memory_bytes);
        params = std::max(params, t->parameters);
      }
    std::sort(batches.begin(), batches.end());
    batches.erase(std::unique(batches.begin(), batches.end()), batches.end());
    std::string batch_text;
    for (const auto& b : batches) batch_text += (batch_text.empty() ? "" : ", ") + b;
    body += row({code(v), cell_text(distinct(devices)), distinct(threads), batch_text, train_rate, eval_rate,
                 train_latency, eval_latency, fmt::format("{:.1f}", peak / (1024.0 * 1024.0)),
                 fmt::format("{}", params)});
  }
  if (body.empty()) return "No throughput was measured for this group.\n";
  return "Mean over seeds; latency is per batch; peak memory is the largest over phases and seeds.\n\n" +
         header({"variant", "device", "threads", "batch", "train samples/s", "eval samples/s",
                 "train latency p50 / p95 (ms)", "eval latency p50 / p95 (ms)", "peak memory (MiB)", "parameters"},
                "llrl") +
         body;
}

std::string runs_table(const Collected& c, const Group& g) {
  std::vector<size_t> order = g.runs;
  auto rank = [&](const std::string& v) {
    return std::find(g.variants.begin(), g.variants.end(), v) - g.variants.begin();
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_pair(rank(c.runs[a].label), c.runs[a].row.spec.seed) <
           std::make_pair(rank(c.runs[b].label), c.runs[b].row.spec.seed);
  });
  std::set<size_t> counted;
  for (const auto& [v, idx] : g.completed) counted.insert(idx.begin(), idx.end());
  std::vector<const MetricDef*> shown;
  for (const auto& m : results::metric_defs())
    if (m.in_summary) shown.push_back(&m);
  std::vector<std::string> head = {"variant", "seed", "status", "best epoch", "wall (s)"};
  for (const auto* m : shown) head.push_back(m->label);
  head.push_back("checks");
  head.push_back("run");
  std::string out = header(head, "lrl");
  std::string problems;
  for (size_t i : order) {
    const auto& r = c.runs[i];
    std::string status = results::status_name(r.row.status);
    if (r.row.status == RunStatus::Completed && counted.count(i) == 0) status += " (superseded by a later run)";
    std::vector<std::string> cells = {code(r.label), std::to_string(r.row.spec.seed), status,
                                      r.row.best_epoch >= 0 ? std::to_string(r.row.best_epoch) : kNone,
                                      fmt::format("{:.1f}", r.row.wall_seconds)};
    for (const auto* m : shown) {
      auto it = r.test.find(m->name);
      cells.push_back(it == r.test.end() ? kNone : results::format_stored(*m, it->second));
    }
    std::string checks;  // what the run recorded about itself, e.g. the CUDA graph's gradient check
    for (const auto& [name, value] : r.train) {
      const auto* m = results::find_metric(name);
      checks += fmt::format("{}{} {:.3g}", checks.empty() ? "" : "; ", m ? m->label : name.c_str(), value);
    }
    cells.push_back(checks.empty() ? kNone : cell_text(checks));
    cells.push_back(code(r.row.spec.run_id.substr(0, 12)));
    out += row(cells);
    if (r.row.status == RunStatus::Failed || r.row.status == RunStatus::Interrupted)
      problems += fmt::format("- `{}` seed {} (run `{}`), {}: {}\n", r.row.spec.variant, r.row.spec.seed,
                              r.row.spec.run_id.substr(0, 12), results::status_name(r.row.status),
                              r.row.error.empty() ? "(no error recorded)" : cell_text(r.row.error));
  }
  if (!problems.empty()) out += "\nFailed and interrupted runs:\n\n" + problems;
  return out;
}

std::string bench_section(const results::Store& store) {
  const auto rows = store.bench();
  if (rows.empty()) return "No benchmark results are stored in this database.\n";
  std::string facts;
  for (const auto& f : results::provenance_fields()) {
    const std::string v = results::field_display(rows.front().prov, f);
    if (!v.empty()) facts += fmt::format("{}{} {}", facts.empty() ? "" : ", ", f.label, v);
  }
  std::string out = fmt::format(
      "Latest set `{}`: {}. Peak memory is the largest amount of CPU tensor memory allocated during the "
      "case's "
      "iterations beyond what was live before them (the model, its gradients and the optimizer state stay "
      "resident "
      "between steps and are not counted). GFLOP/s: the FLOPs the case needs (matrix products and the "
      "attention's "
      "products) times its samples/s; products: the matrix products' FLOPs over the profiled time inside "
      "them; "
      "each with its share of LibTorch's 512x512x512 product rate at the same thread count, measured right "
      "after "
      "the cases (CPU sets).\n\n",
      rows.front().bench_set, facts);
  out += header({"case", "median (ms)", "p95 (ms)", "samples/s", "repetitions", "peak memory (MiB)",
                 "GFLOP/s (of mm)", "products GFLOP/s (of mm)"},
                "l");
  for (const auto& b : rows) {
    std::string step = kNone, products = kNone;
    if (b.mm_gflops > 0 && b.flops_per_sample > 0) {
      const double gflops = b.flops_per_sample * b.samples_per_s / 1e9;
      step = fmt::format("{:.1f} ({:.0f}%)", gflops, 100 * gflops / b.mm_gflops);
      if (b.product_ms_per_sample > 0) {
        const double pg = b.product_flops_per_sample / (b.product_ms_per_sample * 1e-3) / 1e9;
        products = fmt::format("{:.1f} ({:.0f}%)", pg, 100 * pg / b.mm_gflops);
      }
    }
    out += row({code(b.name), fmt::format("{:.3f}", b.median_ns / 1e6), fmt::format("{:.3f}", b.p95_ns / 1e6),
                fmt::format("{:.1f}", b.samples_per_s), std::to_string(b.repetitions),
                fmt::format("{:.1f}", b.peak_memory_bytes / (1024.0 * 1024.0)), step, products});
  }
  return out;
}

std::string provenance(const results::Store& store, const Collected& c, const ReportOptions& o) {
  std::string out;
  for (const auto& f : results::provenance_fields()) {
    std::vector<std::string> values;
    for (const auto& r : c.runs)
      if (r.row.status != RunStatus::Queued) values.push_back(results::field_display(r.row.prov, f));
    if (f.only_when_set && std::all_of(values.begin(), values.end(), [](const auto& v) { return v.empty(); }))
      continue;
    out += fmt::format("- {}: {}\n", f.label, cell_text(distinct(values)));
  }
  out += fmt::format("- database: `{}`\n", o.db_path.empty() ? store.path() : o.db_path);
  out += fmt::format("- generated: {} (UTC)\n", results::utc_now());
  out += o.command.empty() ? "- regenerate: (command not recorded)\n"
                           : fmt::format("- regenerate: `{}`\n", o.command);
  return out;
}

}  // namespace

void write_report(const results::Store& store, const ReportOptions& o) {
  std::vector<std::string> order;
  for (const auto& v : o.variants) order.push_back(v.name);
  const Collected c = collect(store, o.experiment, order);
  if (c.runs.empty())
    throw ReportError(fmt::format("nothing to report: database {} has no runs{}", store.path(),
                                  c.experiment_id.empty() ? "" : " in experiment " + c.experiment_id));

  const fs::path out_path(o.out_path);
  const std::string fig_name = out_path.stem().string() + "-figures";
  const fs::path fig_dir = out_path.parent_path() / fig_name;

  std::string md = "# dmdbench report\n\n";
  if (c.experiment_id.empty()) {
    md += "All experiments in the database.\n";
  } else {
    md += fmt::format("Experiment `{}`", c.experiment_id);
    if (c.experiment && !c.experiment->created_at.empty()) md += fmt::format(" (created {})", c.experiment->created_at);
    if (c.experiment && !c.experiment->description.empty()) {
      md += ": " + c.experiment->description;
      if (md.back() != '.') md += '.';
    } else {
      md += ".";
    }
    if (c.experiment && !c.experiment->command.empty()) md += fmt::format(" Command: `{}`.", c.experiment->command);
    md += "\n";
  }
  std::map<RunStatus, int> by_status;
  for (const auto& r : c.runs) ++by_status[r.row.status];
  md += fmt::format("\nRuns: {} completed, {} failed, {} interrupted, {} running, {} queued.\n\n",
                    by_status[RunStatus::Completed], by_status[RunStatus::Failed], by_status[RunStatus::Interrupted],
                    by_status[RunStatus::Running], by_status[RunStatus::Queued]);
  std::vector<GroupJudgments> judged;
  for (const auto& g : c.groups) judged.push_back(judge_group(c, g));
  const std::string headline_text = headline(c, judged);
  if (!headline_text.empty()) md += headline_text + "\n";

  md += "Cells are mean ± std over seeds (sample std, n − 1; n = seeds with a completed run). MAE and Corr are raw; "
        "accuracies and F1 are in percent (the database stores fractions). Acc-2/F1 has0 is negative vs "
        "non-negative; non0 leaves out the samples labelled exactly 0. Bold marks the best mean per column (MAE: "
        "lower is better; every other column: higher). The judgment column says VALID, or what makes the variant's "
        "numbers untrustworthy (each group's Judgments section says how it is decided).\n\n";
  const std::string reading = how_to_read(c, judged);
  if (!reading.empty()) md += "## How to read this report\n\n" + reading;

  // Legend: the variants that appear, in registry order, then unknown names.
  std::vector<std::string> seen;
  for (const auto& g : c.groups)
    for (const auto& label : g.variants)
      if (std::find(seen.begin(), seen.end(), variant_of(label)) == seen.end()) seen.push_back(variant_of(label));
  md += "## Variants\n\n" + header({"variant", "description", "in the DMD paper"}, "lll");
  for (const auto& v : o.variants)
    if (std::find(seen.begin(), seen.end(), v.name) != seen.end())
      md += row(
          {code(v.name), cell_text(v.description), cell_text(v.paper_row.empty() ? "none" : v.paper_row)});
  for (const auto& v : seen)
    if (std::find(order.begin(), order.end(), v) == order.end())
      md += row({code(v), "(not in the variant registry)", kNone});

  for (size_t gi = 0; gi < c.groups.size(); ++gi) {
    const auto& g = c.groups[gi];
    md += fmt::format("\n## {}\n\n### Results\n\n", g.title());
    md += results_table(c, g, judged[gi]);
    md += "\n### Difference from full DMD\n\n" + difference_table(g, judged[gi]);
    md += "\n### Judgments\n\n" + judgments_section(c, g, judged[gi]);
    if (const std::string t3 = table3_section(c, g, o.variants); !t3.empty())
      md += "\n### Paper Table 3\n\n" + t3;
    md += "\n### Published reference\n\n" + published_section(c, g);
    md += "\n### Robustness\n\n" + robustness_section(c, g);
    md += "\n### Throughput\n\n" + throughput_table(c, g);
    md += "\n### Figures\n\n";
    const auto figures = draw_group_figures(c, g, static_cast<int>(gi + 1), fig_dir.string(), o.gnuplot);
    for (const auto& f : figures.figures)
      md += fmt::format("![{}]({}/{})\n\n", f.caption, fig_name, f.file);
    if (!figures.note.empty()) md += figures.note + "\n";
    md += "\n### Runs\n\n" + runs_table(c, g);
  }
  md += "\n## Benchmarks\n\n" + bench_section(store);
  md += "\n## Provenance\n\n" + provenance(store, c, o);
  write_file_atomically(o.out_path, md);
}

}  // namespace dmdbench::reports
