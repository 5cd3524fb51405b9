#include "reports/published.h"

#include <nlohmann/json.hpp>

#include "harness/experiment/config.h"
#include "harness/experiment/dataset_spec.h"
#include "reports/published_data.h"

namespace dmdbench::reports {

namespace {

std::optional<double> number(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) return std::nullopt;
  return j.at(key).get<double>();
}

PublishedResults parse(const char* text) {
  const auto j = nlohmann::json::parse(text);
  PublishedResults out;
  out.note = j.at("note").get<std::string>();
  for (const auto& [key, citation] : j.at("sources").items()) out.sources[key] = citation.get<std::string>();
  for (const auto& r : j.at("results")) {
    PublishedRow row;
    row.source = r.at("source").get<std::string>();
    row.method = r.at("method").get<std::string>();
    row.text = r.at("text").get<std::string>();
    row.setting = r.at("setting").get<std::string>();
    row.dataset = r.at("dataset").get<std::string>();
    row.acc7 = number(r, "acc7");
    row.acc2 = number(r, "acc2");
    row.f1 = number(r, "f1");
    row.mae = number(r, "mae");
    row.corr = number(r, "corr");
    out.rows.push_back(std::move(row));
  }
  const auto& abl = j.at("ablation_table3");
  out.ablation_source = abl.at("source").get<std::string>();
  out.ablation_setting = abl.at("setting").get<std::string>();
  for (const auto& r : abl.at("rows"))
    out.ablation.push_back({r.at(0).get<bool>(), r.at(1).get<bool>(), r.at(2).get<bool>(), r.at(3).get<bool>(),
                            r.at(4).get<double>(), r.at(5).get<double>(), r.at(6).get<double>(),
                            r.at(7).get<double>()});
  return out;
}

}  // namespace

const char* published_json() { return kPublishedResultsJson; }

std::string published_text_protocol(const PublishedRow& row) {
  if (row.text == "glove") return "features (GloVe 300-d)";
  if (row.text == "bert" && (row.method == "dmd" || row.method == "mult+gd")) return "bert-finetune";
  return "";
}

const PublishedResults& published() {
  static const PublishedResults parsed = parse(kPublishedResultsJson);
  return parsed;
}

std::string real_data_family(const std::string& dataset) {
  try {
    const DatasetSpec spec = parse_dataset_spec(dataset);
    return spec.synthetic ? "" : spec.family;
  } catch (const ConfigError&) {
    return "";  // a stored name this build cannot parse is not real data it knows
  }
}

}  // namespace dmdbench::reports
