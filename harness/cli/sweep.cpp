// The run-ablation parent: plan, resume, workers, progress, summary, report.
#include "harness/cli/sweep.h"

#include <fmt/format.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "ablations/variants.h"
#include "harness/cli/ownership.h"
#include "harness/cli/progress.h"
#include "harness/cli/slurm.h"
#include "harness/cli/verb.h"
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

// A RUNNING row of another host is taken over when its heartbeat is older than this (its owner's liveness
// cannot be checked from here).
constexpr double kStaleHeartbeatSeconds = 60;

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
  v.insert(v.end(), {"--robustness", robustness_grid_name(a)});
  if (a.keep_checkpoints) v.push_back("--keep-checkpoints");
  for (const auto& s : a.sets) v.insert(v.end(), {"--set", s});
  if (!a.owner.empty()) v.insert(v.end(), {"--owner", a.owner});
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
  std::cout << fmt::format(" --robustness {}{}\n", robustness_grid_name(a), a.keep_checkpoints ? " --keep-checkpoints" : "");
  return 0;
}

// The plan entries of this process: --runs LIST (a Slurm shard task), else the --shard i/N slice.
std::vector<PlannedRun> selected_runs(const AblationArgs& a, const Plan& plan, std::string& label) {
  if (a.runs.empty()) {
    const Shard shard = parse_shard(a.shard);
    label = fmt::format("shard {}/{}", shard.index, shard.count);
    return shard_runs(plan, shard);
  }
  if (!a.shard.empty()) throw ConfigError("--runs and --shard both choose the runs; give one");
  std::vector<PlannedRun> out;
  std::set<int> seen;
  std::stringstream in(a.runs);
  for (std::string item; std::getline(in, item, ',');) {
    std::size_t used = 0;
    int i = -1;
    try {
      i = std::stoi(item, &used);
    } catch (const std::logic_error&) {
    }
    if (used != item.size() || i < 0 || i >= static_cast<int>(plan.runs.size()) || !seen.insert(i).second)
      throw ConfigError(fmt::format("--runs '{}': '{}' is not a plan index (0..{}) given once", a.runs, item,
                                    plan.runs.size() - 1));
    out.push_back(plan.runs[i]);
  }
  label = "runs " + a.runs;
  return out;
}

// run-ablation --slurm: the plan goes to the cluster as an array of shards balanced by cost.
int submit_to_slurm(const AblationArgs& a, const Plan& plan) {
  if (!a.shard.empty() || !a.runs.empty() || a.force || a.emit_sbatch > 0)
    throw ConfigError("--slurm chooses the shards itself: leave out --shard, --runs, --force and --emit-sbatch");
  slurm::SubmitRequest req;
  req.experiment_id = plan.experiment_id, req.db = a.db, req.report = a.no_report ? "" : a.report;
  req.command = a.command_line, req.shards = a.shards, req.wait = !a.no_wait;
  req.description = fmt::format("{} on {}, profile {}, seeds {}", a.variants, a.dataset, a.profile, a.seeds);
  req.task_args = {"--dataset", a.dataset, "--variants", a.variants, "--seeds",
                   a.seeds,     "--profile", a.profile, "--device", a.device};
  for (const auto& s : a.sets) req.task_args.insert(req.task_args.end(), {"--set", s});
  if (a.fast) req.task_args.push_back("--fast");
  if (!a.bert.empty()) req.task_args.insert(req.task_args.end(), {"--bert", a.bert});
  req.task_args.insert(req.task_args.end(), {"--robustness", robustness_grid_name(a)});
  if (a.keep_checkpoints) req.task_args.push_back("--keep-checkpoints");
  for (const auto& o : a.slurm_opts) {
    std::istringstream in(o);
    for (std::string w; in >> w;) req.sbatch_options.push_back(w);
  }
  for (const auto& r : plan.runs) req.runs.push_back({r.index, r.run_id, r.variant, r.seed, run_cost(r)});
  return slurm::submit_sweep(req);
}

}  // namespace

std::string robustness_grid_name(const AblationArgs& a) {
  const std::string name = a.robustness.empty() ? find_profile(a.profile).robustness_grid : a.robustness;
  try {
    results::robustness_grid(name);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(fmt::format("--robustness: {}", e.what()));
  }
  return name;
}

std::string checkpoint_relative_path(const std::string& db, const std::string& run_id) {
  return (std::filesystem::path(std::filesystem::path(db).stem().string() + "-checkpoints") / (run_id + ".pt")).string();
}

std::string resolve_checkpoint_path(const std::string& db, const std::string& relative) {
  return (std::filesystem::path(db).parent_path() / relative).string();
}

std::string mult_setting_note(const AblationArgs& a) {
  bool mult = false;
  for (const auto& name : ablations::parse_variant_list(a.variants))
    mult = mult || ablations::find_variant(name).model == "mult";
  const DatasetSpec spec = parse_dataset_spec(a.dataset);
  // A file's setting is known once it is read; its name says it for MMSA's files (aligned_50.pkl,
  // unaligned_50.pkl).
  const bool aligned =
      spec.synthetic ? spec.setting == "aligned" : spec.path.find("unaligned") == std::string::npos;
  if (!mult || !aligned) return "";
  return fmt::format(
      "note: MulT runs here on aligned data ({}); MMSA trains MulT on unaligned data (unaligned_50.pkl) "
      "and MMSA's published MulT numbers are unaligned, so they do not compare with these runs",
      a.dataset);
}

Plan plan_of(AblationArgs& a) {
  PlanRequest req;
  req.dataset = a.dataset;
  const DatasetSpec spec = parse_dataset_spec(a.dataset);
  if (a.profile.empty()) a.profile = default_profile(spec);
  find_profile(a.profile);
  robustness_grid_name(a);
  if (a.jobs < 0) throw ConfigError(fmt::format("--jobs is {}, expected 0 (one per core) or more", a.jobs));
  if (a.emit_sbatch < 0) throw ConfigError(fmt::format("--emit-sbatch is {}, expected a number of shards", a.emit_sbatch));
  const std::string family = spec.known_family();
  if (a.worker < 0) spec.require_file();
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
  if (a.slurm) return submit_to_slurm(a, plan);
  if (a.shards != 0 || a.no_wait || !a.slurm_opts.empty())
    throw ConfigError("--shards, --no-wait and --slurm-opt go with --slurm");
  if (a.emit_sbatch > 0) return emit_sbatch(a);
  std::string selection;
  const std::vector<PlannedRun> runs = selected_runs(a, plan, selection);
  if (const std::string note = mult_setting_note(a); !note.empty()) std::cout << note << std::endl;
  if (runs.empty()) {
    std::cout << fmt::format("dmdbench run-ablation: {} holds none of the plan's {} run(s); nothing to do\n",
                             selection, plan.runs.size());
    return 0;
  }
  // In a Slurm task: one run per allocated CPU, on the GPU Slurm allocated (if any).
  const slurm::TaskEnv slurm_env = slurm::task_env();
  AblationArgs wa = a;
  if (slurm_env.in_slurm && a.device == "auto") wa.device = slurm::task_device(slurm_env);
  const DeviceSetup dev = setup_device(wa.device, a.fast);  // fail early on a bad device
  results::Store store(a.db);
  store.add_experiment({plan.experiment_id, results::utc_now(), a.command_line,
                        fmt::format("{} on {}, profile {}, seeds {}", a.variants, a.dataset, a.profile, a.seeds)});
  const std::string owner = this_process(new_sweep_id()).token();

  std::deque<int> todo;
  int completed = 0;
  for (const auto& r : runs) {
    const auto row = store.find_run(r.run_id);
    if (row && row->status == results::RunStatus::Completed && !a.force)
      ++completed;
    else
      todo.push_back(r.index);
  }
  const int jobs = a.jobs > 0             ? a.jobs
                   : slurm_env.cpus > 0   ? slurm_env.cpus
                                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::size_t to_run = todo.size();
  std::cout << fmt::format(
      "dmdbench run-ablation: experiment {}, {} runs in this shard ({}), {} already completed, {} to run, "
      "{} job(s), {}, database {}, robustness grid {}\n",
      plan.experiment_id, runs.size(), selection, completed, to_run, jobs, dev.name, a.db, robustness_grid_name(a));

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  const auto start = Clock::now();
  wa.owner = owner;
  WorkerPool pool(self_executable(), worker_argv(wa));
  std::map<int, std::string> epoch_of;  // plan index -> "epoch 2/6"
  std::map<int, std::string> waiting;   // plan index -> the owner of the run another sweep is running
  int finished = 0, executed = 0;
  double run_seconds_sum = 0;
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  auto eta = [&] {
    if (executed == 0) return std::string("?");
    const std::size_t left = to_run - finished;
    return format_duration(run_seconds_sum / executed * left / std::min<std::size_t>(jobs, std::max<std::size_t>(1, left)));
  };
  auto describe = [&](int idx) { return fmt::format("{} seed {}", plan.runs[idx].variant, plan.runs[idx].seed); };
  auto spec_of = [&](const PlannedRun& r) {
    return results::RunSpec{r.run_id, plan.experiment_id, r.variant, r.dataset, r.profile, r.seed, r.index,
                            r.config.dump()};
  };
  auto progress_line = [&] {
    std::string jobs_line;
    for (const auto& [i, e] : epoch_of) jobs_line += fmt::format("  [{}: {}]", describe(i), e);
    for (const auto& [i, o] : waiting) jobs_line += fmt::format("  [{}: waiting for {}]", describe(i), describe_owner(o));
    std::cout << fmt::format("[{}/{} runs, elapsed {}, remaining ~{}]{}", finished, to_run, format_duration(elapsed()),
                             eta(), jobs_line)
              << std::endl;
  };
  // Claims a run for this sweep, reclaiming it first when the sweep that held it is gone. Returns true when the
  // run is ours to start; otherwise it is done (counted) or waits for the live sweep that holds it.
  auto take = [&](int idx) {
    const PlannedRun& r = plan.runs[idx];
    for (;;) {
      const auto claim = store.claim_run(spec_of(r), owner, a.force);
      if (claim.claimed) return true;
      if (claim.status == results::RunStatus::Completed) {
        ++finished;
        std::cout << fmt::format("[{}/{} runs] {} was completed by another sweep", finished, to_run, describe(idx))
                  << std::endl;
        return false;
      }
      // RUNNING under another owner: wait for it while it lives, take it over once it is gone.
      const Liveness live = liveness(claim.owner);
      bool gone = live == Liveness::Gone;
      if (live == Liveness::Unknown) {
        const auto row = store.find_run(r.run_id);
        gone = row && results::seconds_since(row->heartbeat_at) > kStaleHeartbeatSeconds;
      }
      if (!gone) {
        waiting[idx] = claim.owner;
        return false;
      }
      store.reclaim_run(r.run_id, claim.owner,
                        fmt::format("interrupted: its sweep ({}) is gone", describe_owner(claim.owner)));
    }
  };

  auto on_message = [&](const WorkerMessage& m) {
    if (m.event == WorkerMessage::Event::Robustness)
      epoch_of[m.run] = fmt::format("robustness {}/{} {}", m.point, m.points, m.name);
    else if (m.event == WorkerMessage::Event::Epoch)
      epoch_of[m.run] = m.max_epochs > 0 ? fmt::format("epoch {}/{}", m.epoch, m.max_epochs)
                                         : fmt::format("epoch {}", m.epoch);
    else
      return;
    progress_line();
  };
  // Failures the store could not take yet (another process held its lock): recorded as soon as it can.
  struct Unrecorded {
    std::string run_id, why;
    results::RunStatus status;
  };
  std::vector<Unrecorded> unrecorded;
  auto record = [&](const Unrecorded& u) {
    try {
      const auto row = store.find_run(u.run_id);
      if (row && row->owner == owner && row->status == results::RunStatus::Running)
        store.fail_run(u.run_id, u.why, owner, u.status);
      return true;
    } catch (const results::OwnershipLost&) {
      return true;  // someone else holds it now
    } catch (const results::StoreError& err) {
      return false;
    }
  };
  auto flush_unrecorded = [&] {
    for (auto it = unrecorded.begin(); it != unrecorded.end();) it = record(*it) ? unrecorded.erase(it) : it + 1;
  };
  auto on_exit = [&](const WorkerPool::Exit& e) {
    ++finished, ++executed;
    run_seconds_sum += e.seconds;
    epoch_of.erase(e.index);
    const auto& run = plan.runs[e.index];
    const auto row = store.find_run(run.run_id);
    if (row && row->status == results::RunStatus::Completed && row->owner == owner) {
      std::cout << fmt::format("[{}/{} runs] done {} in {}", finished, to_run, describe(e.index),
                               format_duration(e.seconds))
                << std::endl;
      return;
    }
    const std::string why = e.last_error.empty() ? e.describe() : e.last_error;
    const Unrecorded u{run.run_id, g_stop ? "interrupted: " + why : why,
                       g_stop ? results::RunStatus::Interrupted : results::RunStatus::Failed};
    if (!record(u)) unrecorded.push_back(u);
    std::cout << fmt::format("[{}/{} runs] {} {}: {}\n", finished, to_run, g_stop ? "INTERRUPTED" : "FAILED",
                             describe(e.index), why);
  };

  auto last_wait_check = Clock::now();
  while (!todo.empty() || pool.running() > 0 || !waiting.empty()) {
    while (!g_stop && !todo.empty() && static_cast<int>(pool.running()) < jobs) {
      const int idx = todo.front();
      todo.pop_front();
      if (!take(idx)) continue;
      epoch_of[idx] = "starting";
      pool.start(idx);
    }
    if (g_stop && pool.running() == 0) break;
    if (pool.running() > 0)
      pool.poll(500, on_message, on_exit);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (g_stop) pool.signal_all(SIGTERM);
    flush_unrecorded();
    // Runs another sweep holds: done when it completes them, ours again when it is gone.
    if (!waiting.empty() && Clock::now() - last_wait_check > std::chrono::seconds(1)) {
      last_wait_check = Clock::now();
      for (auto it = waiting.begin(); it != waiting.end();) {
        const auto row = store.find_run(plan.runs[it->first].run_id);
        if (row && row->status == results::RunStatus::Running && row->owner == it->second &&
            liveness(it->second) != Liveness::Gone) {
          ++it;
          continue;
        }
        todo.push_front(it->first);  // take() counts it as completed or claims it
        it = waiting.erase(it);
      }
      if (pool.running() == 0 && !waiting.empty()) progress_line();
    }
  }

  for (int attempt = 0; !unrecorded.empty() && attempt < 10; ++attempt) flush_unrecorded();  // each waits for the lock
  for (const auto& u : unrecorded)
    std::cerr << fmt::format("dmdbench run-ablation: could not record that run {} failed ({}): the database stayed "
                             "locked\n", u.run_id, u.why);
  std::cout << "\n" << results::format_ls(store, plan.experiment_id);
  std::cout << fmt::format("{} run(s) executed in {}\n", executed, format_duration(elapsed()));
  if (!a.no_report && !a.report.empty()) {
    reports::ReportOptions ro;
    ro.db_path = a.db, ro.out_path = a.report, ro.experiment = plan.experiment_id, ro.command = a.command_line;
    ro.variants = report_variants();
    reports::write_report(store, ro);
  }
  // The sweep succeeded only if every run of its plan (this shard) is COMPLETED now.
  std::vector<std::string> incomplete;
  for (const auto& r : runs) {
    const auto row = store.find_run(r.run_id);
    if (!row || row->status != results::RunStatus::Completed)
      incomplete.push_back(fmt::format("{} ({}): {}{}", describe(r.index), r.run_id,
                                       row ? results::status_name(row->status) : "not started",
                                       row && !row->error.empty() ? ", " + row->error : ""));
  }
  if (g_stop) {
    std::cerr << (slurm_env.array_task.empty()
                      ? "run-ablation was interrupted; rerun the same command to resume\n"
                      : "run-ablation was interrupted (Slurm task " + slurm_env.array_task +
                            "); dmdbench slurm resubmit EXPERIMENT_DIR submits its runs again\n");
    return 130;
  }
  if (!incomplete.empty()) {
    std::cerr << fmt::format("{} run(s) of the plan are not completed:\n", incomplete.size());
    for (const auto& f : incomplete) std::cerr << "  " << f << "\n";
    return 1;
  }
  if (!a.no_report && !a.report.empty()) std::cout << "report: " << a.report << "\n";
  return 0;
}

}  // namespace dmdbench::cli
