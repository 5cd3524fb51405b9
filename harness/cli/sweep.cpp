// The run-ablation parent: plan, resume, workers, progress, summary, report.
#include "harness/cli/sweep.h"

#include <fmt/format.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include "ablations/variants.h"
#include "harness/cli/progress.h"
#include "harness/cli/worker_pool.h"
#include "harness/experiment/dataset_spec.h"
#include "harness/experiment/version.h"
#include "harness/io/bert_folder.h"
#include "harness/training/device.h"
#include "reports/report.h"
#include "results/ls.h"
#include "results/store.h"

namespace dmdbench::cli {

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

std::string self_executable() {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  return n > 0 ? std::string(self, n) : std::string("/proc/self/exe");
}

// The worker's command line: the same plan, one entry.
std::vector<std::string> worker_argv(const AblationArgs& a) {
  std::vector<std::string> v = {"dmdbench", "run-ablation", "--dataset", a.dataset, "--variants", a.variants,
                                "--seeds",  a.seeds,        "--profile", a.profile, "--device",   a.device,
                                "--db",     a.db};
  if (!a.shard.empty()) v.insert(v.end(), {"--shard", a.shard});
  if (!a.bert.empty()) v.insert(v.end(), {"--bert", a.bert});
  if (a.fast) v.push_back("--fast");
  if (a.force) v.push_back("--force");
  for (const auto& s : a.sets) v.insert(v.end(), {"--set", s});
  return v;
}

int emit_sbatch(const AblationArgs& a) {
  std::cout << fmt::format(
      "#!/bin/bash\n#SBATCH --job-name=dmdbench\n#SBATCH --array=0-{}\n#SBATCH --cpus-per-task=2\n"
      "# each array task runs one shard into its own database; then: dmdbench merge OUT.sqlite shard-*.sqlite\n"
      "dmdbench run-ablation --dataset '{}' --variants '{}' --seeds '{}' --profile '{}' --device '{}' \\\n"
      "  --shard \"$SLURM_ARRAY_TASK_ID/{}\" --db \"shard-$SLURM_ARRAY_TASK_ID.sqlite\" --no-report",
      a.emit_sbatch - 1, a.dataset, a.variants, a.seeds, a.profile, a.device, a.emit_sbatch);
  if (!a.bert.empty()) std::cout << fmt::format(" --bert '{}'", a.bert);
  for (const auto& s : a.sets) std::cout << fmt::format(" --set '{}'", s);
  std::cout << "\n";
  return 0;
}

}  // namespace

Plan plan_of(AblationArgs& a) {
  PlanRequest req;
  req.dataset = a.dataset;
  const DatasetSpec spec = parse_dataset_spec(a.dataset);
  if (a.profile.empty()) a.profile = default_profile(spec);
  find_profile(a.profile);
  const std::string family = spec.known_family();
  const bool have_bert = !a.bert.empty();
  bool text_model = false;
  for (const auto& name : ablations::parse_variant_list(a.variants)) {
    Config cfg = ablations::resolve_config(family, name, a.profile, a.sets, have_bert);
    require_text_model(cfg, have_bert);
    text_model = text_model || uses_text_model(cfg);
    req.variants.emplace_back(name, std::move(cfg));
  }
  // The weights' identity, for the run ids: hashed, not loaded (the parent never trains).
  if (text_model) req.text_model_sha256 = bert_folder_identity(a.bert).weights_sha256;
  req.seeds = parse_seed_list(a.seeds);
  req.profile = a.profile;
  req.overrides = a.sets;
  req.code_version = build_git_commit();
  return make_plan(req);
}

int run_ablation(AblationArgs a) {
  const Plan plan = plan_of(a);
  if (a.worker >= 0) return run_worker(a, plan, a.worker);
  if (a.emit_sbatch > 0) return emit_sbatch(a);
  const Shard shard = parse_shard(a.shard);
  const std::vector<PlannedRun> runs = shard_runs(plan, shard);
  const DeviceSetup dev = setup_device(a.device, a.fast);  // fail early on a bad device
  results::Store store(a.db);
  store.add_experiment({plan.experiment_id, results::utc_now(), a.command_line,
                        fmt::format("{} on {}, profile {}, seeds {}", a.variants, a.dataset, a.profile, a.seeds)});
  store.mark_stale_interrupted(30);

  std::vector<int> todo;
  int completed = 0;
  for (const auto& r : runs) {
    const auto row = store.find_run(r.run_id);
    if (row && row->status == results::RunStatus::Completed && !a.force) {
      ++completed;
      continue;
    }
    if (row && row->status == results::RunStatus::Running && !a.force) {
      std::cerr << fmt::format("run {} ({} seed {}) is running in another process; skipping it\n", r.run_id,
                               r.variant, r.seed);
      continue;
    }
    todo.push_back(r.index);
  }
  const int jobs = a.jobs > 0 ? a.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::cout << fmt::format(
      "dmdbench run-ablation: experiment {}, {} runs in this shard ({}/{}), {} already completed, {} to run, "
      "{} job(s), {}, database {}\n",
      plan.experiment_id, runs.size(), shard.index, shard.count, completed, todo.size(), jobs, dev.name, a.db);

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  const auto start = Clock::now();
  WorkerPool pool(self_executable(), worker_argv(a));
  std::map<int, std::string> epoch_of;  // plan index -> "epoch 2/6"
  std::vector<std::string> failures;
  std::size_t next = 0;
  int finished = 0;
  double run_seconds_sum = 0;
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  auto eta = [&] {
    if (finished == 0) return std::string("?");
    const std::size_t left = todo.size() - finished;
    return format_duration(run_seconds_sum / finished * left / std::min<std::size_t>(jobs, std::max<std::size_t>(1, left)));
  };
  auto describe = [&](int idx) { return fmt::format("{} seed {}", plan.runs[idx].variant, plan.runs[idx].seed); };

  auto on_message = [&](const WorkerMessage& m) {
    if (m.event != WorkerMessage::Event::Epoch) return;
    epoch_of[m.run] = m.max_epochs > 0 ? fmt::format("epoch {}/{}", m.epoch, m.max_epochs)
                                       : fmt::format("epoch {}", m.epoch);
    std::string jobs_line;
    for (const auto& [i, e] : epoch_of) jobs_line += fmt::format("  [{}: {}]", describe(i), e);
    std::cout << fmt::format("[{}/{} runs, elapsed {}, remaining ~{}]{}", finished, todo.size(),
                             format_duration(elapsed()), eta(), jobs_line)
              << std::endl;
  };
  auto on_exit = [&](const WorkerPool::Exit& e) {
    ++finished;
    run_seconds_sum += e.seconds;
    epoch_of.erase(e.index);
    const auto& run = plan.runs[e.index];
    const auto row = store.find_run(run.run_id);
    if (row && row->status == results::RunStatus::Completed) {
      std::cout << fmt::format("[{}/{} runs] done {} in {}", finished, todo.size(), describe(e.index),
                               format_duration(e.seconds))
                << std::endl;
      return;
    }
    const std::string why = e.last_error.empty() ? e.describe() : e.last_error;
    if (g_stop)
      store.fail_run(run.run_id, "interrupted: " + why);
    else if (!row || row->status != results::RunStatus::Failed)
      store.fail_run(run.run_id, why);
    failures.push_back(fmt::format("{} ({}): {}", describe(e.index), run.run_id, why));
    std::cout << fmt::format("[{}/{} runs] FAILED {}: {}\n", finished, todo.size(), describe(e.index), why);
  };

  while (next < todo.size() || pool.running() > 0) {
    while (!g_stop && next < todo.size() && static_cast<int>(pool.running()) < jobs) {
      epoch_of[todo[next]] = "starting";
      pool.start(todo[next++]);
    }
    if (pool.running() == 0) break;
    pool.poll(500, on_message, on_exit);
    if (g_stop) pool.signal_all(SIGTERM);
  }

  std::cout << "\n" << results::format_ls(store, plan.experiment_id);
  std::cout << fmt::format("{} run(s) executed in {}\n", finished, format_duration(elapsed()));
  if (!a.no_report && !a.report.empty()) {
    reports::ReportOptions ro;
    ro.db_path = a.db, ro.out_path = a.report, ro.experiment = plan.experiment_id, ro.command = a.command_line;
    for (const auto& v : ablations::registry()) ro.variants.push_back({v.name, v.description});
    reports::write_report(store, ro);
  }
  if (g_stop) {
    std::cerr << "run-ablation was interrupted; rerun the same command to resume\n";
    return 130;
  }
  if (!failures.empty()) {
    std::cerr << fmt::format("{} run(s) failed:\n", failures.size());
    for (const auto& f : failures) std::cerr << "  " << f << "\n";
    return 1;
  }
  if (!a.no_report && !a.report.empty()) std::cout << "report: " << a.report << "\n";
  return 0;
}

}  // namespace dmdbench::cli
