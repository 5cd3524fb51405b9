// The published reference numbers (DMD paper tables, independent reruns), embedded from
// reports/published-results.json. Values are in percent except mae and corr.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dmdbench::reports {

struct PublishedRow {
  std::string source;   // key into PublishedResults::sources
  std::string method;   // "dmd", "mult", "mult+gd"
  std::string text;     // text features: "bert" | "glove"
  std::string setting;  // "aligned" | "unaligned"
  std::string dataset;  // "mosi" | "mosei"
  std::optional<double> acc7, acc2, f1, mae, corr;
};

struct AblationRow {  // the paper's Table 3 (unaligned, GloVe)
  bool fd, homogd, ca, heterogd;
  double mosi_acc7, mosi_f1, mosei_acc7, mosei_f1;
};

struct PublishedResults {
  std::string note;
  std::map<std::string, std::string> sources;  // key -> citation
  std::vector<PublishedRow> rows;
  std::string ablation_source, ablation_setting;
  std::vector<AblationRow> ablation;
};

const char* published_json();             // the embedded JSON text
const PublishedResults& published();      // parsed once

// The text protocol a published row used, in run_text_protocol's words: DMD rows with BERT text are the
// paper's starred rows and reruns of the public code, which fine-tune bert-base-uncased ("bert-finetune");
// GloVe rows used 300-d GloVe features ("features (GloVe 300-d)"); "" when the publication does not say (BERT
// rows of baselines).
std::string published_text_protocol(const PublishedRow& row);

// "mosi" or "mosei" for real-data dataset names ("mosi:PATH", "mosei:PATH"); empty for anything else.
std::string real_data_family(const std::string& dataset);

constexpr const char* kPaperSource = "dmd-cvpr2023";

}  // namespace dmdbench::reports
