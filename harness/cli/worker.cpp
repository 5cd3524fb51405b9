// One plan entry of run-ablation, run in this process (a worker started by the sweep, which claimed the run):
// load the data, train, store every epoch and the final results under the parent's claim, and tell the parent
// (worker_messages.h). It stops at the next batch on SIGTERM (also sent when the parent dies), when its parent is
// gone, or when the store fails in the heartbeat thread; the run is then INTERRUPTED or FAILED with the reason.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "harness/cli/ownership.h"
#include "harness/cli/slurm.h"
#include "harness/cli/sweep.h"
#include "harness/cli/worker_messages.h"
#include "harness/data/dataset.h"
#include "harness/io/bert_folder.h"
#include "harness/io/checkpoint.h"
#include "harness/io/sha256.h"
#include "harness/training/device.h"
#include "harness/training/robustness.h"
#include "harness/training/trainer.h"
#include "results/store.h"

namespace dmdbench::cli {

namespace {

std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal = sig; }

std::vector<results::MetricRow> metric_rows(const results::MetricValues& m, const std::string& split, int epoch) {
  std::vector<results::MetricRow> rows;
  for (const auto& [name, value] : m.all()) rows.push_back({split, name, value, epoch});
  return rows;
}

void tell(const WorkerMessage& m) { std::cout << encode(m) << std::endl; }

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Why the run should stop now, from any thread; the first reason wins. A signal or a lost parent interrupts the
// run; a store error fails it.
class StopReason {
 public:
  void set(const std::string& why, results::RunStatus status = results::RunStatus::Interrupted) {
    std::lock_guard lock(mu_);
    if (why_.empty()) why_ = why, status_ = status;
  }
  std::string get() {
    if (const int sig = g_signal.load()) set(fmt::format("interrupted by signal {} ({}){}", sig, strsignal(sig), slurm_));
    std::lock_guard lock(mu_);
    return why_;
  }
  results::RunStatus status() {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  std::mutex mu_;
  std::string why_;
  // Slurm signals a task when it is cancelled, pre-empted or out of time; the reason says which job it was.
  const std::string slurm_ = slurm::task_env().array_task.empty()
                                 ? std::string()
                                 : " in Slurm task " + slurm::task_env().array_task +
                                       " (scancel, pre-emption or its time limit)";
  results::RunStatus status_ = results::RunStatus::Interrupted;
};

}  // namespace

int run_worker(const AblationArgs& a, const Plan& plan, int index) {
  if (index < 0 || index >= static_cast<int>(plan.runs.size()))
    throw ConfigError(fmt::format("worker index {} is outside the plan (0..{})", index, plan.runs.size() - 1));
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  const pid_t parent = getppid();
  const PlannedRun& run = plan.runs[index];
  set_threads(1);
  const DeviceSetup dev = setup_device(a.device, a.fast);
  results::Store store(a.db);
  const results::RunSpec spec{run.run_id, plan.experiment_id, run.variant, run.dataset, run.profile,
                              run.seed,   run.index,          run.config.dump()};
  std::string owner = a.owner;
  if (owner.empty()) {  // started by hand: claim the run for this process
    owner = this_process(new_sweep_id()).token();
    const auto claim = store.claim_run(spec, owner, a.force);
    if (!claim.claimed)
      throw ConfigError(fmt::format("run {} is {} ({}); not running it", run.run_id, status_name(claim.status),
                                    describe_owner(claim.owner)));
  }
  auto finish = [&](const std::string& error, results::RunStatus status) {
    try {
      store.fail_run(run.run_id, error, owner, status);
    } catch (const results::OwnershipLost&) {
      // another sweep took the run over; its rows are its own
    } catch (const results::StoreError&) {
      // the store itself fails (locked, full): the parent records the error with its own connection
    }
    WorkerMessage m;
    m.event = WorkerMessage::Event::Failed, m.run = index, m.error = error;
    tell(m);
    return status == results::RunStatus::Interrupted ? 128 + SIGTERM : 1;
  };

  results::Provenance prov = process_provenance(dev);
  prov.dataset_name = run.dataset;
  Dataset data;
  std::optional<BertFolder> bert;
  try {
    LoadOptions lo;
    lo.zero_nan = run.config.flag("zero_nan");
    data = open_dataset(run.dataset, lo, run.config.num("synthetic_scale"),
                        static_cast<uint64_t>(run.config.integer("synthetic_seed")));
    prov.dataset_sha256 = data.source_sha256;
    prov.text_width = data.dims().text, prov.audio_width = data.dims().audio, prov.vision_width = data.dims().vision;
    if (uses_text_model(run.config)) {
      bert = load_bert_folder(a.bert);
      if (bert->weights_sha256 != plan.text_model_sha256)
        throw ConfigError(fmt::format("{} changed while the sweep ran (sha256 {} planned, {} now)",
                                      bert->weights_path, plan.text_model_sha256, bert->weights_sha256));
      prov.text_model_sha256 = bert->weights_sha256;
      prov.text_model_config = bert->config_json;
      prov.text_width = bert->config.hidden;
    }
    store.set_provenance(run.run_id, prov, owner);
  } catch (const results::OwnershipLost& e) {
    return finish(first_line(e.what()), results::RunStatus::Interrupted);
  } catch (const std::exception& e) {
    return finish(first_line(e.what()), results::RunStatus::Failed);
  }

  StopReason stop;
  std::atomic<bool> done{false};
  std::thread beat([&] {  // heartbeat on its own connection; it also watches the parent
    try {
      results::Store hb(a.db);
      while (!done) {
        for (int i = 0; i < 50 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (done) break;
        if (getppid() != parent) stop.set("its run-ablation parent process is gone");
        hb.heartbeat(run.run_id, owner);
      }
    } catch (const std::exception& e) {  // a store error must not take the process down: the run stops with it
      stop.set(first_line(e.what()), results::RunStatus::Failed);
    }
  });
  auto join = [&] {
    done = true;
    beat.join();
  };
  try {
    TrainHooks hooks;
    hooks.should_stop = [&] { return stop.get(); };
    hooks.on_epoch = [&](const EpochReport& r) {
      store.add_epoch(run.run_id, {static_cast<int>(r.epoch), r.train_loss, r.valid_loss, r.lr, r.seconds, r.grad_norm},
                      metric_rows(r.valid, "valid", static_cast<int>(r.epoch)), owner);
      WorkerMessage m;
      m.event = WorkerMessage::Event::Epoch, m.run = index, m.epoch = static_cast<int>(r.epoch);
      m.max_epochs = static_cast<int>(run.config.integer("max_epochs")), m.valid_loss = r.valid_loss;
      m.seconds = r.seconds;
      tell(m);
    };
    const TrainResult r = train_run(data, run.config, run.seed, dev.device, hooks, bert ? &*bert : nullptr);
    std::vector<results::MetricRow> metrics = metric_rows(r.test, "test", -1);
    std::vector<results::BatchOrderRow> orders;
    if (run.config.flag("eval_shuffle")) orders.push_back({"test", r.test_seed});
    for (std::size_t i = 0; i < r.test_shuffles.size(); ++i) {
      const std::string split = fmt::format("test_shuffle_{}", i + 1);
      for (auto& row : metric_rows(r.test_shuffles[i].metrics, split, -1)) metrics.push_back(std::move(row));
      orders.push_back({split, r.test_shuffles[i].seed});
    }
    metrics.push_back({"valid", "loss", r.best_valid_loss, -1});
    if (r.graph_max_abs_diff >= 0) metrics.push_back({"train", "graph_max_grad_diff", r.graph_max_abs_diff, -1});
    std::vector<results::ThroughputRow> tp;  // train, eval, robustness
    for (const auto& t : r.throughput)
      tp.push_back({t.phase, t.batch_size, t.samples_per_s, t.latency_p50_ms, t.latency_p95_ms, r.peak_memory_bytes,
                    r.parameters, dev.name, current_threads()});
    std::vector<results::EdgeRow> edges;
    static const char* names[3] = {"l", "v", "a"};
    for (std::size_t s = 0; s < r.edges.size(); ++s)
      for (int f = 0; f < 3; ++f)
        for (int t = 0; t < 3; ++t)
          if (f != t) edges.push_back({r.edge_spaces[s], names[f], names[t], r.edges[s][f][t]});
    // Robustness: the best weights in a fresh model, the test split under each perturbation of the grid, with the
    // clean test pass's options; stored (and the weights kept) before the run completes, so a run killed here is
    // retrained on rerun and no row is ever stored twice.
    const auto grid = results::robustness_grid(robustness_grid_name(a));
    if (!grid.empty() || a.keep_checkpoints) {
      auto model = build_trainable(run.config, data.dims(), dev.device);
      model->load_network_state(r.best_network_state);
      std::vector<results::RobustnessRow> rows;
      std::vector<double> batch_ms;
      int point = 0;
      const auto t0 = std::chrono::steady_clock::now();
      evaluate_robustness(*model, data, dev.device, test_eval_options(run.config, run.seed), grid, run.seed,
                          [&](const RobustnessPoint& p) {
                            for (const auto& row : robustness_rows(p)) rows.push_back(row);
                            batch_ms.insert(batch_ms.end(), p.batch_ms.begin(), p.batch_ms.end());
                            WorkerMessage m;
                            m.event = WorkerMessage::Event::Robustness, m.run = index, m.point = ++point;
                            m.points = static_cast<int>(grid.size()), m.name = p.perturbation.name();
                            tell(m);
                            if (const std::string why = stop.get(); !why.empty()) throw Interrupted(why);
                          });
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!grid.empty()) {
        tp.push_back({"robustness", run.config.integer("batch_size"),
                      seconds > 0 ? grid.size() * data.test.size() / seconds : 0, results::percentile(batch_ms, 0.5),
                      results::percentile(batch_ms, 0.95), r.peak_memory_bytes, r.parameters, dev.name,
                      current_threads()});
        store.add_robustness(run.run_id, rows, owner);
      }
      if (a.keep_checkpoints) {
        const std::string rel = checkpoint_relative_path(a.db, run.run_id), path = resolve_checkpoint_path(a.db, rel);
        std::filesystem::create_directories(std::filesystem::path(path).parent_path());
        write_checkpoint(path, r.best_network_state);
        store.set_checkpoint(run.run_id, {rel, sha256_file(path), static_cast<int64_t>(std::filesystem::file_size(path)), ""},
                             owner);
      }
    }
    join();
    if (const std::string why = stop.get(); !why.empty()) return finish(why, stop.status());
    store.complete_run(run.run_id, static_cast<int>(r.best_epoch), r.wall_seconds, metrics, tp, edges, owner,
                       orders);
    WorkerMessage m;
    m.event = WorkerMessage::Event::Done, m.run = index, m.wall_seconds = r.wall_seconds;
    for (const auto& def : results::metric_defs())
      if (auto v = def.in_summary ? r.test.find(def.name) : std::nullopt) m.summary.emplace_back(def.name, *v);
    tell(m);
    return 0;
  } catch (const Interrupted& e) {
    join();
    return finish(first_line(e.what()), stop.status());
  } catch (const results::OwnershipLost& e) {
    join();
    return finish(first_line(e.what()), results::RunStatus::Interrupted);
  } catch (const std::exception& e) {
    join();
    // A store error seen by the heartbeat thread is the cause of whatever failed after it.
    const std::string why = stop.get();
    return finish(why.empty() ? first_line(e.what()) : why, results::RunStatus::Failed);
  }
}

}  // namespace dmdbench::cli
