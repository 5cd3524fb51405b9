// `run-ablation`: plan, resume, parallel workers (child processes), progress, store, summary, report.
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <thread>

#include "ablations/variants.h"
#include "harness/cli/commands.h"
#include "harness/data/dataset.h"
#include "harness/training/device.h"
#include "harness/experiment/plan.h"
#include "harness/cli/progress.h"
#include "harness/training/trainer.h"
#include "reports/report.h"
#include "results/ls.h"
#include "results/store.h"

namespace dmdbench {
namespace {

using Clock = std::chrono::steady_clock;

Plan plan_for(const AblationArgs& a) {
  PlanRequest req;
  req.dataset = a.dataset;
  find_profile(a.profile);
  const std::string family = parse_dataset_spec(a.dataset).known_family();
  for (const auto& name : ablations::parse_variant_list(a.variants))
    req.variants.emplace_back(name, ablations::resolve_config(family, name, a.profile, a.sets));
  req.seeds = parse_seed_list(a.seeds);
  req.profile = a.profile;
  req.overrides = a.sets;
  req.code_version = git_commit();
  return make_plan(req);
}

std::vector<results::MetricRow> metric_rows(const results::MetricValues& m, const std::string& split, int epoch) {
  std::vector<results::MetricRow> rows;
  for (const auto& [name, value] : m.all()) rows.push_back({split, name, value, epoch});
  return rows;
}

// Runs plan entry `index` in this process and commits it; the parent reads the "@" lines on stdout.
int run_worker(const AblationArgs& a, const Plan& plan, int index) {
  if (index < 0 || index >= static_cast<int>(plan.runs.size()))
    throw ConfigError(fmt::format("worker index {} is outside the plan (0..{})", index, plan.runs.size() - 1));
  const PlannedRun& run = plan.runs[index];
  set_threads(1);
  const DeviceSetup dev = setup_device(a.device, a.fast);
  results::Store store(a.db);
  results::RunSpec spec{run.run_id, plan.experiment_id, run.variant, run.dataset, run.profile,
                        run.seed,   run.index,          run.config.dump()};
  results::Provenance prov = process_provenance(dev);
  prov.dataset_name = run.dataset;
  Dataset data;
  std::string load_error;
  try {
    LoadOptions lo;
    lo.zero_nan = run.config.flag("zero_nan");
    data = open_dataset(run.dataset, lo, run.config.num("synthetic_scale"),
                        static_cast<uint64_t>(run.config.integer("synthetic_seed")));
    prov.dataset_sha256 = data.source_sha256;
  } catch (const std::exception& e) {
    load_error = e.what();
    load_error = load_error.substr(0, load_error.find('\n'));
  }
  if (a.force) store.delete_run(run.run_id);  // --force redoes a completed run
  store.start_run(spec, prov);
  if (!load_error.empty()) {
    store.fail_run(run.run_id, load_error);
    std::cout << "@failed " << index << " " << load_error << std::endl;
    return 1;
  }

  std::atomic<bool> done{false};
  std::thread beat([&] {  // heartbeat on its own connection
    results::Store hb(a.db);
    while (!done) {
      for (int i = 0; i < 50 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!done) hb.heartbeat(run.run_id);
    }
  });
  try {
    TrainHooks hooks;
    const int64_t cap = run.config.integer("max_epochs");
    hooks.on_epoch = [&](const EpochReport& r) {
      store.add_epoch(run.run_id, {static_cast<int>(r.epoch), r.train_loss, r.valid_loss, r.lr, r.seconds, r.grad_norm},
                      metric_rows(r.valid, "valid", static_cast<int>(r.epoch)));
      std::cout << fmt::format("@epoch {} {} {} {:.4f} {:.1f}", index, r.epoch, cap, r.valid_loss, r.seconds)
                << std::endl;
    };
    const TrainResult r = train_run(data, run.config, run.seed, dev.device, hooks);
    std::vector<results::MetricRow> metrics = metric_rows(r.test, "test", -1);
    metrics.push_back({"valid", "loss", r.best_valid_loss, -1});
    if (r.graph_max_abs_diff >= 0) metrics.push_back({"train", "graph_max_grad_diff", r.graph_max_abs_diff, -1});
    std::vector<results::ThroughputRow> tp;
    for (const auto& t : r.throughput)
      tp.push_back({t.phase, t.batch_size, t.samples_per_s, t.latency_p50_ms, t.latency_p95_ms, r.peak_memory_bytes,
                    r.parameters, dev.name, current_threads()});
    std::vector<results::EdgeRow> edges;
    static const char* names[3] = {"l", "v", "a"};
    for (std::size_t s = 0; s < r.edges.size(); ++s)
      for (int f = 0; f < 3; ++f)
        for (int t = 0; t < 3; ++t)
          if (f != t) edges.push_back({r.edge_spaces[s], names[f], names[t], r.edges[s][f][t]});
    store.complete_run(run.run_id, static_cast<int>(r.best_epoch), r.wall_seconds, metrics, tp, edges);
    done = true;
    beat.join();
    std::cout << fmt::format("@done {} {:.4f} {:.4f} {:.1f}", index, r.test["mae"], r.test["acc2_non0"], r.wall_seconds)
              << std::endl;
    return 0;
  } catch (const std::exception& e) {
    done = true;
    beat.join();
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    store.fail_run(run.run_id, msg);
    std::cout << "@failed " << index << " " << msg << std::endl;
    return 1;
  }
}

struct Child {
  pid_t pid = -1;
  int fd = -1;
  int index = 0;
  std::string buffer, last_error;
  Clock::time_point started;
};

std::vector<std::string> worker_argv(const AblationArgs& a, int index) {
  std::vector<std::string> v = {"dmdbench", "run-ablation", "--dataset", a.dataset, "--variants", a.variants,
                                "--seeds",  a.seeds,        "--profile", a.profile, "--device",   a.device,
                                "--db",     a.db,           "--worker",  std::to_string(index)};
  if (!a.shard.empty()) v.insert(v.end(), {"--shard", a.shard});
  if (a.fast) v.push_back("--fast");
  if (a.force) v.push_back("--force");
  for (const auto& s : a.sets) v.insert(v.end(), {"--set", s});
  return v;
}

Child spawn(const AblationArgs& a, int index) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("cannot create a pipe for a worker");
  const std::vector<std::string> args = worker_argv(a, index);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("cannot start a worker process");
  if (pid == 0) {
    setenv("OPENBLAS_NUM_THREADS", "1", 1);  // one thread per worker, read by OpenBLAS when it loads
    setenv("OMP_NUM_THREADS", "1", 1);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]), close(fds[1]);
    std::vector<char*> argv;
    for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(fds[1]);
  return {pid, fds[0], index, "", "", Clock::now()};
}

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

}  // namespace

int cmd_run_ablation(const AblationArgs& a) {
  const Plan plan = plan_for(a);
  if (a.worker >= 0) return run_worker(a, plan, a.worker);
  const Shard shard = parse_shard(a.shard);
  if (a.emit_sbatch > 0) {
    std::cout << fmt::format(
        "#!/bin/bash\n#SBATCH --job-name=dmdbench\n#SBATCH --array=0-{}\n#SBATCH --cpus-per-task=2\n"
        "# each array task runs one shard into its own database; then: dmdbench merge OUT.sqlite shard-*.sqlite\n"
        "dmdbench run-ablation --dataset '{}' --variants '{}' --seeds '{}' --profile '{}' --device '{}' \\\n"
        "  --shard \"$SLURM_ARRAY_TASK_ID/{}\" --db \"shard-$SLURM_ARRAY_TASK_ID.sqlite\" --no-report",
        a.emit_sbatch - 1, a.dataset, a.variants, a.seeds, a.profile, a.device, a.emit_sbatch);
    for (const auto& s : a.sets) std::cout << fmt::format(" --set '{}'", s);
    std::cout << "\n";
    return 0;
  }
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
  std::map<int, Child> active;
  std::map<int, std::string> epoch_of;
  std::vector<std::string> failures;
  std::size_t next = 0;
  int finished = 0;
  double run_seconds_sum = 0;
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  auto eta = [&] {
    if (finished == 0) return std::string("?");
    const double per_run = run_seconds_sum / finished;
    return format_duration(per_run * (todo.size() - finished) / std::min<std::size_t>(jobs, std::max<std::size_t>(1, todo.size() - finished)));
  };
  auto describe = [&](int idx) {
    const auto& r = plan.runs[idx];
    return fmt::format("{} seed {}", r.variant, r.seed);
  };

  while ((next < todo.size() || !active.empty())) {
    while (!g_stop && next < todo.size() && static_cast<int>(active.size()) < jobs) {
      Child c = spawn(a, todo[next++]);
      epoch_of[c.index] = "starting";
      active[c.fd] = std::move(c);
    }
    std::vector<pollfd> fds;
    for (const auto& [fd, c] : active) fds.push_back({fd, POLLIN, 0});
    if (fds.empty()) break;
    poll(fds.data(), fds.size(), 500);
    if (g_stop) {
      for (auto& [fd, c] : active) kill(c.pid, SIGTERM);
    }
    for (const auto& p : fds) {
      if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Child& c = active[p.fd];
      char buf[4096];
      const ssize_t n = read(p.fd, buf, sizeof buf);
      if (n > 0) {
        c.buffer.append(buf, n);
        for (std::size_t nl; (nl = c.buffer.find('\n')) != std::string::npos;) {
          const std::string line = c.buffer.substr(0, nl);
          c.buffer.erase(0, nl + 1);
          int idx = 0, epoch = 0, cap = 0;
          double vloss = 0, secs = 0;
          if (std::sscanf(line.c_str(), "@epoch %d %d %d %lf %lf", &idx, &epoch, &cap, &vloss, &secs) == 5) {
            epoch_of[idx] = cap > 0 ? fmt::format("epoch {}/{}", epoch, cap) : fmt::format("epoch {}", epoch);
            std::string jobs_line;
            for (const auto& [i, e] : epoch_of) jobs_line += fmt::format("  [{}: {}]", describe(i), e);
            std::cout << fmt::format("[{}/{} runs, elapsed {}, remaining ~{}]{}", finished, todo.size(),
                                     format_duration(elapsed()), eta(), jobs_line)
                      << std::endl;
          } else if (line.rfind("@failed ", 0) == 0) {
            const auto sp = line.find(' ', 8);
            c.last_error = sp == std::string::npos ? "" : line.substr(sp + 1);
          }
        }
        continue;
      }
      // The worker closed its output: collect it.
      close(p.fd);
      int status = 0;
      waitpid(c.pid, &status, 0);
      const double secs = std::chrono::duration<double>(Clock::now() - c.started).count();
      ++finished;
      run_seconds_sum += secs;
      epoch_of.erase(c.index);
      const auto& run = plan.runs[c.index];
      const auto row = store.find_run(run.run_id);
      if (row && row->status == results::RunStatus::Completed) {
        std::cout << fmt::format("[{}/{} runs] done {} in {}", finished, todo.size(), describe(c.index),
                                 format_duration(secs))
                  << std::endl;
      } else {
        std::string why = c.last_error;
        if (why.empty())
          why = WIFSIGNALED(status) ? fmt::format("worker killed by signal {}", WTERMSIG(status))
                                    : fmt::format("worker exited with status {}", WEXITSTATUS(status));
        if (g_stop) {
          store.fail_run(run.run_id, "interrupted: " + why);
        } else if (!row || row->status != results::RunStatus::Failed) {
          store.fail_run(run.run_id, why);
        }
        failures.push_back(fmt::format("{} ({}): {}", describe(c.index), run.run_id, why));
        std::cout << fmt::format("[{}/{} runs] FAILED {}: {}\n", finished, todo.size(), describe(c.index), why);
      }
      active.erase(p.fd);
    }
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

int cmd_ls(const std::string& db) {
  results::Store store(db, true);
  std::cout << results::format_ls(store, "");
  return 0;
}

int cmd_report(reports::ReportOptions o) {
  results::Store store(o.db_path, true);
  o.variants.clear();
  for (const auto& v : ablations::registry()) o.variants.push_back({v.name, v.description});
  reports::write_report(store, o);
  std::cout << "report: " << o.out_path << "\n";
  return 0;
}

int cmd_regress(const std::string& db, const reports::RegressOptions& o) {
  results::Store store(db, !o.update_baseline);
  return reports::regress(store, o, std::cout);
}

int cmd_merge(const std::string& out, const std::vector<std::string>& inputs) {
  results::Store store(out);
  for (const auto& in : inputs) {
    store.merge_from(in);
    std::cout << "merged " << in << " into " << out << "\n";
  }
  return 0;
}

}  // namespace dmdbench
