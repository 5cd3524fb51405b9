// Fake runs for the report and regression-gate tests (declared in each test file that uses them).
#include <map>
#include <string>

#include "results/store.h"

namespace dmdbench::testing {

using namespace results;

// One finished run with the given final test metrics (fractions, as the trainer stores them), three epochs,
// throughput and, unless `edges` is empty, learned edge weights for the named spaces.
void add_fake_run(Store& store, const std::string& experiment, const std::string& variant, const std::string& dataset,
                  int64_t seed, const std::map<std::string, double>& metrics, const std::vector<std::string>& edges) {
  RunSpec spec;
  spec.run_id = experiment + "-" + variant + "-" + dataset + "-" + std::to_string(seed);
  spec.experiment_id = experiment;
  spec.variant = variant;
  spec.dataset = dataset;
  spec.profile = "smoke";
  spec.seed = seed;
  static int plan_index = 0;  // plan order = the order the runs were added
  spec.plan_index = plan_index++;
  // The text protocol: the reference's fine-tuned BERT on real data, 768-d features on synthetic data, and
  // GloVe features when the dataset's name says glove.
  const bool synthetic = dataset.rfind("synthetic", 0) == 0,
             glove = dataset.find("glove") != std::string::npos;
  spec.config_json =
      synthetic || glove ? R"({"text_encoder":"features"})" : R"({"text_encoder":"bert-finetune"})";
  Provenance prov;
  prov.git_commit = "0123abcd4567";
  prov.libtorch_version = "1.13.1";
  prov.device = "cpu";
  prov.host = "testhost";
  prov.threads = 2;
  prov.determinism_flags = "cpu";
  prov.dataset_name = dataset;
  prov.dataset_sha256 = "ab12";
  prov.text_width = glove ? 300 : 768;
  store.start_run(spec, prov);
  for (int e = 1; e <= 3; ++e)
    store.add_epoch(spec.run_id, {e, 2.0 / e, 1.5 / e + 0.01 * static_cast<double>(seed % 10), 1e-4, 1.0, 0.5},
                    {});
  std::vector<MetricRow> rows;
  for (const auto& [name, value] : metrics) rows.push_back({"test", name, value, -1});
  std::vector<EdgeRow> edge_rows;
  const char* mods[] = {"l", "v", "a"};
  for (const auto& space : edges)
    for (const char* from : mods)
      for (const char* to : mods)
        if (std::string(from) != to) edge_rows.push_back({space, from, to, 1.0 / 6 + 0.01 * (from[0] - to[0]) / 10});
  store.complete_run(spec.run_id, 2, 30.0 + static_cast<double>(seed % 10),
                     rows,
                     {{"train", 16, 500.0 + static_cast<double>(seed % 10), 30.0, 40.0, 64 << 20, 654321, "cpu", 2},
                      {"eval", 16, 2000.0, 7.0, 9.0, 32 << 20, 654321, "cpu", 2}},
                     edge_rows);
}

}  // namespace dmdbench::testing
