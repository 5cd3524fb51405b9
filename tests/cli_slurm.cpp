// run-ablation --slurm and `dmdbench slurm` against a real Slurm cluster (scripts/slurm-test.sh starts one and
// runs these with SLURM_CONF set; .ci/run does). Without a cluster the Slurm tests are skipped with the reason.
// The cost balancing and scontrol's task ranges are tested without one.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "harness/cli/slurm.h"
#include "harness/experiment/plan.h"
#include "results/store.h"
#include "tests/cli_support.h"

namespace fs = std::filesystem;
using dmdbench::results::RunStatus;
using dmdbench::results::Store;
using Clock = std::chrono::steady_clock;

namespace {

using Result = dmdbench::testing::CommandResult;
Result run(const std::string& args) { return dmdbench::testing::run_dmdbench(args); }

Result shell(const std::string& cmd) {
  Result r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

#define REQUIRE_SLURM()                                                                                           \
  do {                                                                                                            \
    if (std::getenv("SLURM_CONF") == nullptr || shell("command -v sbatch").code != 0)                              \
      GTEST_SKIP() << "no Slurm cluster (SLURM_CONF unset or sbatch missing); run: scripts/slurm-test.sh -- "     \
                      "build/tests/test_cli --gtest_filter='Slurm*'";                                             \
  } while (0)

// The run ids of a database with their test metrics (name -> value), COMPLETED runs only; and every status.
std::map<std::string, std::map<std::string, double>> completed_metrics(const fs::path& db) {
  Store s(db.string(), true);
  std::map<std::string, std::map<std::string, double>> out;
  for (const auto& r : s.runs()) {
    if (r.status != RunStatus::Completed) continue;
    auto& m = out[r.spec.run_id];
    for (const auto& row : s.metrics(r.spec.run_id))
      if (row.split == "test") m[row.name] = row.value;
  }
  return out;
}

nlohmann::json experiment_json(const fs::path& dir) {
  std::ifstream in(dir / "experiment.json");
  return nlohmann::json::parse(in);
}

// The experiment folder run-ablation --slurm printed.
fs::path folder_of(const std::string& out) {
  const std::string key = "folder ";
  const auto at = out.find(key);
  if (at == std::string::npos) return {};
  return out.substr(at + key.size(), out.find('\n', at) - at - key.size());
}

std::string job_of(const fs::path& dir, int submission = 0) {
  return experiment_json(dir)["submissions"][submission]["job_id"].get<std::string>();
}

// Waits until Slurm shows array task JOB_TASK in a final state; returns that state.
std::string wait_final(const std::string& job_task, int timeout_s = 180) {
  const auto end = Clock::now() + std::chrono::seconds(timeout_s);
  while (Clock::now() < end) {
    const Result r = shell("scontrol -o show job " + job_task);
    const auto at = r.out.find("JobState=");
    if (at != std::string::npos) {
      const std::string state = r.out.substr(at + 9, r.out.find(' ', at) - at - 9);
      if (!dmdbench::cli::slurm::active_state(state)) return state;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  return "TIMEOUT waiting";
}

bool wait_for_text(const fs::path& file, const std::string& text, int timeout_s = 120) {
  const auto end = Clock::now() + std::chrono::seconds(timeout_s);
  while (Clock::now() < end) {
    std::ifstream in(file);
    const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (s.find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

TEST(SlurmPlan, ShardsAreBalancedByCostNotCount) {
  // One MOSEI run (cost 13) and twelve MOSI runs (cost 1) in two shards: the MOSEI run alone in one shard, the MOSI
  // runs in the other (13 vs 12), where splitting by count would put 6.5 runs' worth against 19.
  std::vector<std::pair<int, double>> items = {{0, 13.0}};
  for (int i = 1; i <= 12; ++i) items.emplace_back(i, 1.0);
  const auto groups = dmdbench::balance_by_cost(items, 2);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0], std::vector<int>{0});
  EXPECT_EQ(groups[1].size(), 12u);
  // More shards than runs: no empty shard.
  EXPECT_EQ(dmdbench::balance_by_cost({{0, 1.0}, {1, 1.0}}, 5).size(), 2u);
}

TEST(SlurmPlan, RunCostFollowsDatasetEpochsAndFraction) {
  dmdbench::PlannedRun mosi, mosei;
  mosi.dataset = "synthetic-mosi@0.5", mosei.dataset = "synthetic-mosei@0.5";
  mosi.config = dmdbench::reference_config("mosi", "dmd");
  mosei.config = dmdbench::reference_config("mosei", "dmd");
  mosi.config.set("max_epochs", 4), mosei.config.set("max_epochs", 4);
  mosi.config.set("text_encoder", std::string("features")), mosei.config.set("text_encoder", std::string("features"));
  // 16326 / 1284 training samples: 12.7x; half the data for 4 epochs: 2 full-MOSI epochs.
  EXPECT_DOUBLE_EQ(dmdbench::run_cost(mosi), 2.0);
  EXPECT_DOUBLE_EQ(dmdbench::run_cost(mosei), 2.0 * 16326.0 / 1284.0);
  // A BERT in the step: 13x fine-tuned, 4.5x frozen.
  mosi.config.set("text_encoder", std::string("bert-finetune"));
  EXPECT_DOUBLE_EQ(dmdbench::run_cost(mosi), 26.0);
  mosi.config.set("text_encoder", std::string("bert-frozen"));
  EXPECT_DOUBLE_EQ(dmdbench::run_cost(mosi), 9.0);
}

TEST(SlurmPlan, ScontrolTaskRangesAndStates) {
  using dmdbench::cli::slurm::parse_task_ids;
  EXPECT_EQ(parse_task_ids("0-2,5"), (std::vector<int>{0, 1, 2, 5}));
  EXPECT_EQ(parse_task_ids("1-3%1"), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(parse_task_ids("[4,7-8]"), (std::vector<int>{4, 7, 8}));
  EXPECT_EQ(parse_task_ids("0-6:3"), (std::vector<int>{0, 3, 6}));
  EXPECT_TRUE(dmdbench::cli::slurm::active_state("COMPLETING"));
  EXPECT_FALSE(dmdbench::cli::slurm::active_state("PREEMPTED"));
}

TEST(SlurmCluster, SmokeSweepInThreeShardsEqualsALocalRun) {
  REQUIRE_SLURM();
  const fs::path dir = dmdbench::testing::fresh_dir("slurm", "smoke");
  const std::string plan = "run-ablation --variants all --seeds 1111,1112 --profile smoke --dataset "
                           "synthetic-mosi@0.02 --set max_epochs=1 ";
  auto t = Clock::now();
  const Result local = run(plan + "--jobs 2 --db " + (dir / "local.sqlite").string() + " --report " +
                           (dir / "local.md").string());
  const double local_s = seconds_since(t);
  ASSERT_EQ(local.code, 0) << local.out;
  t = Clock::now();
  const Result slurm = run(plan + "--slurm --shards 3 --db " + (dir / "slurm.sqlite").string() + " --report " +
                           (dir / "slurm.md").string());
  const double slurm_s = seconds_since(t);
  ASSERT_EQ(slurm.code, 0) << slurm.out;
  std::cout << "smoke sweep wall time: local (2 jobs) " << local_s << " s, Slurm (3 shards) " << slurm_s << " s\n";
  const auto a = completed_metrics(dir / "local.sqlite"), b = completed_metrics(dir / "slurm.sqlite");
  EXPECT_GE(a.size(), 14u);
  EXPECT_EQ(a, b) << "the merged database differs from the local run (run ids or metrics)";
  // The report's results and difference tables are the same too (throughput and provenance differ by nature).
  auto tables = [](const fs::path& report) {
    std::ifstream in(report);
    const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string out;
    for (auto at = s.find("### Results"); at != std::string::npos; at = s.find("### Results", at + 1))
      out += s.substr(at, s.find("### Published reference", at) - at);
    return out;
  };
  EXPECT_NE(tables(dir / "local.md").find("| `dmd`"), std::string::npos) << tables(dir / "local.md");
  EXPECT_EQ(tables(dir / "local.md"), tables(dir / "slurm.md"));
  // Three shard databases and exit files; every run carries its Slurm task and host.
  const fs::path folder = folder_of(slurm.out);
  ASSERT_FALSE(folder.empty()) << slurm.out;
  const std::string job = job_of(folder);
  std::set<std::string> tasks;
  for (const auto& r : Store((dir / "slurm.sqlite").string(), true).runs()) {
    EXPECT_EQ(r.prov.slurm_array_task.rfind(job + "_", 0), 0u) << r.prov.slurm_array_task;
    EXPECT_FALSE(r.prov.slurm_job_id.empty());
    EXPECT_FALSE(r.prov.host.empty());
    tasks.insert(r.prov.slurm_array_task);
  }
  EXPECT_EQ(tasks.size(), 3u);
  for (int s = 0; s < 3; ++s) {
    std::ifstream exit_file(folder / ("shard-" + std::to_string(s) + ".exit"));
    int rc = -1;
    exit_file >> rc;
    EXPECT_EQ(rc, 0) << "shard " << s;
  }
  fs::remove_all(dir);
}

TEST(SlurmCluster, ScancelMidRunThenResubmitCompletesExactlyTheMissingRuns) {
  REQUIRE_SLURM();
  const fs::path dir = dmdbench::testing::fresh_dir("slurm", "scancel");
  const fs::path db = dir / "r.sqlite";
  const std::string plan = "run-ablation --variants dmd,mult --seeds 1111,1112 --profile smoke --dataset "
                           "synthetic-mosi@0.02 --set max_epochs=12 --no-report --db " + db.string();
  const Result sub = run(plan + " --slurm --shards 2 --no-wait");
  ASSERT_EQ(sub.code, 0) << sub.out;
  const fs::path folder = folder_of(sub.out);
  const std::string job = job_of(folder);
  // Shard 0 is cancelled while its first run trains (its log shows an epoch).
  ASSERT_TRUE(wait_for_text(folder / "shard-0.log", "epoch 2/12")) << "shard 0 never trained";
  ASSERT_EQ(shell("scancel " + job + "_0").code, 0);
  EXPECT_EQ(wait_final(job + "_0"), "CANCELLED");
  EXPECT_EQ(wait_final(job + "_1"), "COMPLETED");
  // Its run is INTERRUPTED with the reason; the status names the shard CANCELLED.
  std::set<std::string> interrupted;
  for (const auto& r : Store((folder / "shard-0.sqlite").string(), true).runs())
    if (r.status == RunStatus::Interrupted) {
      interrupted.insert(r.spec.run_id);
      EXPECT_NE(r.error.find("signal 15"), std::string::npos) << r.error;
      EXPECT_NE(r.error.find("Slurm task " + job + "_0"), std::string::npos) << r.error;
    }
  EXPECT_EQ(interrupted.size(), 1u);
  const Result st = run("slurm status " + folder.string());
  EXPECT_NE(st.out.find("shard 0 (" + job + "_0) CANCELLED"), std::string::npos) << st.out;
  // The runs shard 0 did not complete: the one interrupted and any it never started.
  std::set<std::string> missing;
  const auto ej = experiment_json(folder);
  std::set<std::string> completed0;
  for (const auto& r : Store((folder / "shard-0.sqlite").string(), true).runs())
    if (r.status == RunStatus::Completed) completed0.insert(r.spec.run_id);
  for (int i : ej["shard_runs"][0]) {
    const std::string id = ej["runs"][i]["run_id"];
    if (!completed0.count(id)) missing.insert(id);
  }
  ASSERT_FALSE(missing.empty());
  const Result again = run("slurm resubmit " + folder.string() + " --wait");
  EXPECT_EQ(again.code, 0) << again.out;
  // The new array holds exactly the missing runs.
  const auto ej2 = experiment_json(folder);
  ASSERT_EQ(ej2["submissions"].size(), 2u);
  std::set<std::string> resubmitted;
  for (int shard : ej2["submissions"][1]["shards"])
    for (int i : ej2["shard_runs"][shard]) resubmitted.insert(ej2["runs"][i]["run_id"].get<std::string>());
  EXPECT_EQ(resubmitted, missing);
  std::cout << "scancel " << job << "_0 after epoch 2/12: " << interrupted.size() << " run INTERRUPTED ("
            << (interrupted.empty() ? "" : *interrupted.begin()) << "), " << missing.size()
            << " run(s) of shard 0 not completed; resubmitted as job " << job_of(folder, 1) << " with "
            << resubmitted.size() << " run(s)\n";
  // Every run once, COMPLETED; the resubmitted ones in the new job.
  Store s(db.string(), true);
  const auto rows = s.runs();
  EXPECT_EQ(rows.size(), 4u);
  std::set<std::string> ids;
  for (const auto& r : rows) {
    EXPECT_EQ(r.status, RunStatus::Completed) << r.spec.run_id << ": " << r.error;
    ids.insert(r.spec.run_id);
    const std::string expect_job = (missing.count(r.spec.run_id) ? job_of(folder, 1) : job) + "_";
    EXPECT_EQ(r.prov.slurm_array_task.rfind(expect_job, 0), 0u) << r.prov.slurm_array_task;
  }
  EXPECT_EQ(ids.size(), 4u);
  // Nothing left to resubmit.
  const Result none = run("slurm resubmit " + folder.string());
  EXPECT_EQ(none.code, 0) << none.out;
  EXPECT_NE(none.out.find("nothing to resubmit"), std::string::npos) << none.out;
  fs::remove_all(dir);
}

TEST(SlurmCluster, CollectMergesFinishedShardsOnlyAndAFailingShardIsReported) {
  REQUIRE_SLURM();
  const fs::path dir = dmdbench::testing::fresh_dir("slurm", "collect");
  // The golden MOSEI file (4/8/16 samples, length 50): small enough for one epoch in seconds.
  const fs::path data = dir / "mosei.pkl", db = dir / "r.sqlite";
  fs::copy_file(fs::path(DMDBENCH_SHARED_DIR) / "golden" / "mosei" / "data.pkl", data);
  // Three shards of one run each, held: they start when the test releases them.
  const Result sub = run("run-ablation --variants dmd --seeds 1111,1112,1113 --profile smoke --dataset mosei:" +
                         data.string() + " --set max_epochs=1 --no-report --db " + db.string() +
                         " --slurm --shards 3 --no-wait --slurm-opt=--hold");
  ASSERT_EQ(sub.code, 0) << sub.out;
  const fs::path folder = folder_of(sub.out);
  const std::string job = job_of(folder);
  const auto ej = experiment_json(folder);
  auto run_of = [&](int shard) { return ej["runs"][ej["shard_runs"][shard][0].get<int>()]["run_id"].get<std::string>(); };

  ASSERT_EQ(shell("scontrol release " + job + "_0").code, 0);
  EXPECT_EQ(wait_final(job + "_0"), "COMPLETED");
  // Collect while shards 1 and 2 have not run: shard 0 alone is merged.
  const Result c1 = run("slurm collect " + folder.string());
  EXPECT_EQ(c1.code, 0) << c1.out;
  EXPECT_NE(c1.out.find("merged 1 finished shard database(s)"), std::string::npos) << c1.out;
  EXPECT_NE(c1.out.find("not yet: shard 1"), std::string::npos) << c1.out;
  {
    const auto rows = Store(db.string(), true).runs();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].spec.run_id, run_of(0));
    EXPECT_EQ(rows[0].status, RunStatus::Completed);
  }
  // Collect again: idempotent.
  EXPECT_EQ(run("slurm collect " + folder.string()).code, 0);
  EXPECT_EQ(Store(db.string(), true).runs().size(), 1u);

  ASSERT_EQ(shell("scontrol release " + job + "_2").code, 0);
  EXPECT_EQ(wait_final(job + "_2"), "COMPLETED");
  // The data file is gone when shard 1 starts: it fails with the reason and exit status 1.
  fs::remove(data);
  ASSERT_EQ(shell("scontrol release " + job + "_1").code, 0);
  EXPECT_EQ(wait_final(job + "_1"), "FAILED");
  const Result st = run("slurm status " + folder.string());
  EXPECT_NE(st.out.find("shard 1 (" + job + "_1) FAILED"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("exit 1: dmdbench run-ablation: "), std::string::npos) << st.out;
  EXPECT_NE(st.out.find(data.string()), std::string::npos) << "the error names the missing file: " << st.out;
  EXPECT_NE(st.out.find("shard 2 (" + job + "_2) COMPLETED"), std::string::npos) << st.out;
  // The final collect merges shard 2, names the run that never ran, and exits 1.
  const Result c2 = run("slurm collect " + folder.string());
  EXPECT_EQ(c2.code, 1) << c2.out;
  EXPECT_NE(c2.out.find(run_of(1) + "): not started"), std::string::npos) << c2.out;
  EXPECT_NE(c2.out.find("dmdbench slurm resubmit " + folder.string()), std::string::npos) << c2.out;
  std::set<std::string> completed;
  for (const auto& r : Store(db.string(), true).runs())
    if (r.status == RunStatus::Completed) completed.insert(r.spec.run_id);
  EXPECT_EQ(completed, (std::set<std::string>{run_of(0), run_of(2)}));
  fs::remove_all(dir);
}
