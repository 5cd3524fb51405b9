#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <regex>
#include <thread>
#include <utility>

#include "ablations/variants.h"
#include "bench/bench.h"
#include "bench/fixtures.h"
#include "harness/data/dataset.h"
#include "harness/experiment/plan.h"
#include "harness/experiment/version.h"
#include "harness/io/sha256.h"
#include "harness/training/device.h"
#include "harness/training/memory.h"
#include "harness/training/step.h"
#include "harness/training/trainable.h"
#include "models/bert.h"
#include "models/ops.h"
#include "results/metrics.h"
#include "results/store.h"

namespace dmdbench::bench {
namespace {

torch::Device g_device = torch::kCPU;
std::string g_bert_dir;  // BenchArgs::bert

// The dmd-bert cases' BERT, built once: the folder's weights when it has them, else random weights of its
// config.json's architecture (the committed bert-base-uncased one by default).
const BertFolder& bench_bert() {
  static const BertFolder folder = [] {
    const std::string dir = g_bert_dir.empty() ? std::string(DMDBENCH_BERT_BASE_DIR) : g_bert_dir;
    const std::filesystem::path d(dir);
    if (std::filesystem::exists(d / "model.safetensors") || std::filesystem::exists(d / "pytorch_model.bin"))
      return load_bert_folder(dir);
    BertFolder f;
    const BertFolderIdentity id = [&] {
      try {
        return bert_folder_identity(dir);
      } catch (const BertFolderError&) {  // config.json only: parse it the same way
        std::ifstream in(d / "config.json");
        if (!in) throw BertFolderError(fmt::format("bert folder {} has no config.json", dir));
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        BertFolderIdentity i;
        i.config = parse_bert_config(text, (d / "config.json").string());
        return i;
      }
    }();
    f.config = id.config;
    f.config_json = bert_config_json(id.config);
    torch::manual_seed(2);
    f.model = models::Bert(f.config);
    f.note = "random weights";
    return f;
  }();
  return folder;
}

void sync() {
  if (g_device.is_cuda()) torch::cuda::synchronize();
}

void set_context(benchmark::State& state, int threads, int64_t batch) {
  set_threads(threads);  // LibTorch and OpenBLAS pools both
  state.counters["threads"] = threads;
  state.counters["batch"] = static_cast<double>(batch);
}

// The model, optimizer and batch of the case being measured, kept across Google Benchmark's calls (each
// repetition calls the case function again, once more to size the iteration count) and shared by the eval and
// train_step cases of one variant, config and batch size, which run next to each other. One slot: the next
// combination replaces it.
struct CaseSetup {
  std::string key;
  Config cfg;
  std::unique_ptr<Trainable> model;
  std::unique_ptr<TrainStep> step;
  Batch batch;
  bool warm = false;  // the warm-up steps ran
};

CaseSetup& setup_for(const std::string& family, const std::string& variant, int64_t batch) {
  static CaseSetup slot;
  const std::string key = fmt::format("{}/{}/{}", family, variant, batch);
  if (slot.key != key) {
    slot = CaseSetup{};
    slot.key = key;
    slot.cfg = case_config(family, variant);
    FeatureDims dims = case_dims(family);
    const bool text_model = uses_text_model(slot.cfg);
    if (text_model) dims.text_bert_len = dims.text_len;
    torch::manual_seed(1);
    slot.model = build_trainable(slot.cfg, dims, g_device, text_model ? &bench_bert() : nullptr);
    slot.step = std::make_unique<TrainStep>(*slot.model, slot.cfg);
    slot.batch = random_batch(dims, batch, g_device);
    if (text_model)
      slot.batch.text_bert = random_text_bert(batch, dims.text_len, bench_bert().config.vocab, g_device);
  }
  return slot;
}

void train_step_case(benchmark::State& state, std::string family, std::string variant, int64_t batch, int threads) {
  set_context(state, threads, batch);
  CaseSetup& c = setup_for(family, variant, batch);
  c.model->train(true);
  if (!c.warm) {  // three untimed steps, as the reference's timing does (Adam's state, allocator blocks)
    for (int i = 0; i < 3; ++i) c.step->run(c.batch, true, true);
    sync();
    c.warm = true;
  }
  for (auto _ : state) {  // the trainer's step with update_epochs = 1: every batch starts and ends a group
    c.step->run(c.batch, /*first_of_group=*/true, /*last_of_group=*/true);
    sync();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void eval_case(benchmark::State& state, std::string family, std::string variant, int64_t batch, int threads) {
  set_context(state, threads, batch);
  CaseSetup& c = setup_for(family, variant, batch);
  torch::NoGradGuard no_grad;
  c.model->train(false);
  for (auto _ : state) {
    benchmark::DoNotOptimize(c.model->predict(c.batch).data_ptr());
    sync();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

// The harness's own overhead: shuffled batching (row gathers) and the transfer to the device.
void data_case(benchmark::State& state, std::string family, int64_t batch) {
  set_context(state, 1, batch);
  static std::map<std::string, Dataset> cache;
  if (!cache.count(family)) {
    SyntheticSpec spec;
    spec.family = family;
    spec.scale = 0.1;
    cache[family] = make_synthetic(spec);
  }
  const Split& split = cache[family].train;
  Batcher batches(split, batch, true, true, 3, g_device);
  int64_t i = 0, samples = 0;
  batches.new_epoch();
  for (auto _ : state) {
    if (i == batches.num_batches()) batches.new_epoch(), i = 0;
    const Batch b = batches.get(i++);
    benchmark::DoNotOptimize(b.text.data_ptr());
    sync();
    samples += b.labels.size(0);
  }
  state.SetItemsProcessed(samples);
}

// Peak tensor memory of one iteration, through the counting CPU allocator.
class TensorMemory : public benchmark::MemoryManager {
 public:
  void Start() override {
    start_allocs_ = memory::cpu_allocations();
    base_ = memory::cpu_live_bytes();
    memory::reset_cpu_peak();
  }
  void Stop(Result& r) override {
    r.num_allocs = memory::cpu_allocations() - start_allocs_;
    r.max_bytes_used = memory::cpu_peak_bytes() - base_;
    last_peak_ = r.max_bytes_used;
  }
  void Stop(Result* r) override { Stop(*r); }
  // The peak of the last memory run, taken by the reporter: Google Benchmark 1.7's Run::memory_result points at
  // a per-repetition local that is gone by the time the runs are reported (it read garbage).
  int64_t take_peak() { return std::exchange(last_peak_, 0); }

 private:
  int64_t last_peak_ = 0;
  int64_t start_allocs_ = 0, base_ = 0;
};

struct CaseResult {
  std::vector<double> ns_per_iter;
  double items_per_s_sum = 0;
  int64_t peak_bytes = 0;
  int reps = 0;
  std::string error;
};

// Forwards to the console and collects per-repetition timings.
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  explicit CollectingReporter(TensorMemory* memory)
      : ConsoleReporter(isatty(STDOUT_FILENO) ? OutputOptions(OO_Tabular | OO_Color) : OO_Tabular),
        memory_(memory) {}
  std::map<std::string, CaseResult> results;
  std::vector<std::string> order;
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    const int64_t peak = memory_ != nullptr ? memory_->take_peak() : 0;
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration) continue;
      const std::string name = r.run_name.function_name;  // without Google Benchmark's /repeats:/min_time: suffixes
      if (!results.count(name)) order.push_back(name);
      CaseResult& c = results[name];
      if (r.error_occurred) {
        c.error = r.error_message;
        continue;
      }
      const double ns = r.iterations ? r.real_accumulated_time / r.iterations * 1e9 : 0;
      c.ns_per_iter.push_back(ns);
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) c.items_per_s_sum += it->second.value;
      c.peak_bytes = std::max<int64_t>(c.peak_bytes, peak);
      ++c.reps;
    }
  }

 private:
  TensorMemory* memory_;
};

// Registers the cases whose name matches `filter` (a search, as Google Benchmark's own filter); returns how many.
int register_cases(const BenchArgs& a, const std::regex& filter) {
  int count = 0;
  const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int> thread_counts = {1};
  if (all > 1) thread_counts.push_back(all);
  auto reg = [&](const std::string& name, auto fn) {
    if (!std::regex_search(name, filter)) return;
    ++count;
    benchmark::RegisterBenchmark(name.c_str(), fn)
        ->Repetitions(a.repetitions)
        ->MinTime(a.min_time)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  };
  for (const std::string family : {"mosi", "mosei"}) {
    for (const auto& v : ablations::registry())
      for (int64_t batch : {1, 16, 64})
        for (int threads : thread_counts) {
          const std::string tail = fmt::format("{}/{}/batch:{}/threads:{}", v.name, family, batch, threads);
          reg("eval/" + tail, [=](benchmark::State& s) { eval_case(s, family, v.name, batch, threads); });
          reg("train_step/" + tail, [=](benchmark::State& s) { train_step_case(s, family, v.name, batch, threads); });
        }
    for (int64_t batch : {1, 16, 64})
      reg(fmt::format("data_pipeline/{}/batch:{}", family, batch),
          [=](benchmark::State& s) { data_case(s, family, batch); });
  }
  // The unaligned setting (audio and vision 7.5-10x longer): DMD and MulT, MOSI, batch 16.
  for (const std::string variant : {"dmd", "mult"})
    for (int threads : thread_counts) {
      const std::string tail = fmt::format("{}/mosi-unaligned/batch:16/threads:{}", variant, threads);
      reg("eval/" + tail, [=](benchmark::State& s) { eval_case(s, "mosi-unaligned", variant, 16, threads); });
      reg("train_step/" + tail,
          [=](benchmark::State& s) { train_step_case(s, "mosi-unaligned", variant, 16, threads); });
    }
  // DMD with its text model fine-tuned (the reference protocol): bert-base-uncased's shape, MOSI, batch 16.
  for (int threads : thread_counts) {
    const std::string tail = fmt::format("dmd-bert/mosi/batch:16/threads:{}", threads);
    reg("eval/" + tail, [=](benchmark::State& s) { eval_case(s, "mosi", "dmd-bert", 16, threads); });
    reg("train_step/" + tail,
        [=](benchmark::State& s) { train_step_case(s, "mosi", "dmd-bert", 16, threads); });
  }
  return count;
}

// What LibTorch's matrix product reaches on this machine: [n x n] x [n x n] float32, GFLOP/s, with the BLAS
// on `threads` threads too (set_threads keeps OpenBLAS on one where the linears' products split over
// LibTorch's pool; the reference rate is the machine's at that thread count).
double matmul_gflops(int threads, int64_t n_ = 512) {
  set_threads(threads);
  const models::ops::BlasThreads blas(threads);
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({n_, n_}).to(g_device), y = torch::randn({n_, n_}).to(g_device);
  torch::mm(x, y);
  sync();
  int64_t n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double secs = 0;
  while (secs < 1.0) {
    torch::mm(x, y);
    sync();
    ++n;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return n * 2.0 * static_cast<double>(n_ * n_ * n_) / secs / 1e9;
}

// The BERT part of the dmd-bert cases, measured on its own right after them (same threads, same batch): the
// BERT's forward (eval) or forward + backward of its last hidden state (train step) against the whole case,
// and its own GFLOP/s against LibTorch's large (1024^3) matrix product at that moment.
void print_text_model_share(const std::vector<results::BenchRow>& rows, std::ostream& out) {
  const std::regex name_re(R"(^(eval|train_step)/dmd-bert/([^/]+)/batch:(\d+)/threads:(\d+)$)");
  bool header = false;
  for (const auto& r : rows) {
    std::smatch m;
    if (!std::regex_match(r.name, m, name_re) || r.median_ns <= 0) continue;
    const bool train = m[1] == "train_step";
    const int64_t batch = std::stoll(m[3]);
    const int threads = std::stoi(m[4]);
    set_threads(threads);
    const BertFolder& bert = bench_bert();
    torch::manual_seed(3);
    models::Bert model(bert.config);
    model->to(g_device);
    model->train(train);
    const torch::Tensor tb = random_text_bert(batch, 50, bert.config.vocab, g_device);
    const torch::Tensor ids = tb.select(1, 0).to(torch::kLong), mask = tb.select(1, 1),
                        types = tb.select(1, 2).to(torch::kLong);
    auto once = [&] {
      if (train) {
        model->zero_grad();
        model->forward(ids, mask, types).last_hidden_state.sum().backward();
      } else {
        torch::NoGradGuard no_grad;
        model->forward(ids, mask, types);
      }
      sync();
    };
    once();  // warm-up
    std::vector<double> ns;
    for (int i = 0; i < 3; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      once();
      ns.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ns.begin(), ns.end());
    const double bert_ns = ns[1];
    const FlopCount f = count_bert_flops(bert, batch, 50);
    const double flops = train ? f.train_step : f.forward;
    const double gflops = flops / (bert_ns * 1e-9) / 1e9, mm = matmul_gflops(threads, 1024);
    if (!header) {
      out << fmt::format("\n{:<44} {:>10} {:>10} {:>8} {:>12} {:>12} {:>7}\n", "text model (BERT) part",
                         "case ms", "BERT ms", "share", "BERT GFLOP/s", "mm1024 GFLOP/s", "of mm");
      header = true;
    }
    out << fmt::format("{:<44} {:>10.1f} {:>10.1f} {:>7.1f}% {:>12.2f} {:>12.1f} {:>6.1f}%\n", r.name,
                       r.median_ns / 1e6, bert_ns / 1e6, 100 * bert_ns / r.median_ns, gflops, mm,
                       100 * gflops / mm);
  }
}

// How close each train_step / eval case comes to the machine: the FLOPs it needs (matrix products and the
// fused attention's products, from a profiled run) over its median time, and the matrix products' own rate
// (their FLOPs over the time inside them, profiled), each against LibTorch's 512^3 product at the same thread
// count, measured right after; the rows keep them for the database. With `ops` > 0, each profiled case's
// largest ops by self time.
void distance_to_hardware(std::vector<results::BenchRow>& rows, int ops, std::ostream& out) {
  std::map<int, double> peak;
  std::map<std::string, StepCount> counts;
  const std::regex name_re(R"(^(eval|train_step)/([^/]+)/([^/]+)/batch:(\d+)/threads:(\d+)$)");
  bool header = false;
  std::vector<std::string> op_tables;
  for (auto& r : rows) {
    std::smatch m;
    if (!std::regex_match(r.name, m, name_re) || r.median_ns <= 0) continue;
    const std::string phase = m[1], variant = m[2], family = m[3];
    const int64_t batch = std::stoll(m[4]);
    const int threads = std::stoi(m[5]);
    const std::string key = fmt::format("{}/{}/{}/{}", variant, family, batch, threads);
    set_threads(threads);
    if (!counts.count(key))
      counts[key] = profile_step(family, variant, batch,
                                 uses_text_model(case_config(family, variant)) ? &bench_bert() : nullptr);
    if (!peak.count(threads)) peak[threads] = matmul_gflops(threads);
    const StepProfile& p = phase == "eval" ? counts[key].forward : counts[key].train_step;
    if (p.flops() <= 0) continue;
    if (!header) {
      out << fmt::format("\n{:<44} {:>12} {:>10} {:>7} {:>11} {:>7} {:>9} {:>10}\n", "distance to hardware",
                         "MFLOP/sample", "GFLOP/s", "of mm", "products", "of mm", "in prod.", "mm GFLOP/s");
      header = true;
    }
    r.flops_per_sample = p.flops() / static_cast<double>(batch);
    r.product_flops_per_sample = p.product_flops / static_cast<double>(batch);
    r.product_ms_per_sample = p.product_ms / static_cast<double>(batch);
    r.mm_gflops = peak[threads];
    const double step_s = r.median_ns * 1e-9, gflops = p.flops() / step_s / 1e9;
    const double prod_gflops = p.product_ms > 0 ? p.product_flops / (p.product_ms * 1e-3) / 1e9 : 0;
    out << fmt::format("{:<44} {:>12.1f} {:>10.2f} {:>6.1f}% {:>11.2f} {:>6.1f}% {:>8.1f}% {:>10.1f}\n",
                       r.name, p.flops() / static_cast<double>(batch) / 1e6, gflops,
                       100 * gflops / peak[threads], prod_gflops, 100 * prod_gflops / peak[threads],
                       100 * p.product_ms * 1e-3 / step_s, peak[threads]);
    if (ops > 0) {
      std::string t =
          fmt::format("\n{} under the profiler: {:.1f} ms (median unprofiled {:.1f} ms), ops by self time\n",
                      r.name, p.wall_ms, r.median_ns / 1e6);
      t += fmt::format("  {:<52} {:>7} {:>10} {:>7} {:>9}\n", "op", "calls", "self ms", "share", "GFLOP/s");
      for (int i = 0; i < ops && i < static_cast<int>(p.ops.size()); ++i) {
        const OpTime& op = p.ops[i];
        t += fmt::format("  {:<52} {:>7} {:>10.2f} {:>6.1f}% {:>9}\n", op.name.substr(0, 52), op.calls,
                         op.self_ms, 100 * op.self_ms / p.wall_ms,
                         op.flops > 0 ? fmt::format("{:.1f}", op.flops / (op.self_ms * 1e-3) / 1e9) : "");
      }
      op_tables.push_back(t);
    }
  }
  if (header)
    out << "(FLOPs: matrix products and the attention's q.k and p.v products, forward and backward; GFLOP/s "
           "over\n"
           " the median time; products: their FLOPs over the time inside them; in prod.: that time's share "
           "of the\n"
           " median; mm: LibTorch's 512x512x512 float product now, same threads; the linears' products "
           "above\n"
        << fmt::format(
               " 100^3 multiply-adds (on one thread up to 2^25): {}; at 2+ threads the transformers run as\n"
               " jobs at once (models/jobs.h) and profiled times add up over the threads, so the products'\n"
               " rate is per thread and shares of the median can pass 100%)\n",
               models::ops::products_kernel());
  for (const auto& t : op_tables) out << t;
}

}  // namespace

int run_suite(const BenchArgs& a) {
  const DeviceSetup dev = setup_device(a.device);
  g_device = dev.device;
  g_bert_dir = a.bert;
  memory::install_cpu_tracking();
  std::regex filter;
  try {
    filter = std::regex(a.filter);
  } catch (const std::regex_error&) {
    throw ConfigError(fmt::format("bad --filter '{}': not a regular expression", a.filter));
  }
  if (register_cases(a, filter) == 0)
    throw ConfigError(fmt::format("no benchmark case matches --filter '{}' (dmdbench bench --list shows them)", a.filter));
  std::vector<std::string> argv_store = {"dmdbench-bench"};
  if (a.list) argv_store.push_back("--benchmark_list_tests=true");
  std::vector<char*> argv;
  for (auto& s : argv_store) argv.push_back(s.data());
  int argc = static_cast<int>(argv.size());
  benchmark::Initialize(&argc, argv.data());
  benchmark::AddCustomContext("commit", build_git_commit());
  benchmark::AddCustomContext("libtorch", libtorch_version());
  benchmark::AddCustomContext("device", dev.name);
  benchmark::AddCustomContext("determinism flags", dev.determinism_flags);
  benchmark::AddCustomContext("threads (all cores)", std::to_string(std::thread::hardware_concurrency()));
  benchmark::AddCustomContext("linear products", models::ops::products_kernel());
  if (a.list) {
    benchmark::RunSpecifiedBenchmarks();
    return 0;
  }
  TensorMemory mm;
  if (!dev.device.is_cuda()) benchmark::RegisterMemoryManager(&mm);
  CollectingReporter reporter(dev.device.is_cuda() ? nullptr : &mm);
  const std::size_t ran = benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::RegisterMemoryManager(nullptr);
  if (ran == 0) throw ConfigError(fmt::format("no benchmark case matches --filter '{}'", a.filter));

  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", std::gmtime(&now));
  const std::string set_id = fmt::format("{}-{}", stamp, sha256_string(a.command_line + stamp).substr(0, 6));
  results::Provenance prov = process_provenance(dev);
  prov.threads = static_cast<int>(std::thread::hardware_concurrency());  // cases set their own; the machine's
  std::vector<results::BenchRow> rows;
  int errors = 0;
  for (const auto& name : reporter.order) {
    const CaseResult& c = reporter.results[name];
    if (!c.error.empty() || c.reps == 0) {
      std::cerr << fmt::format("benchmark {} failed: {}\n", name, c.error);
      ++errors;
      continue;
    }
    std::vector<double> ns = c.ns_per_iter;
    std::sort(ns.begin(), ns.end());
    results::BenchRow r;
    r.bench_set = set_id, r.name = name, r.repetitions = c.reps, r.prov = prov;
    r.median_ns = results::percentile(ns, 0.5);
    r.p95_ns = results::percentile(ns, 0.95);
    r.samples_per_s = c.items_per_s_sum / c.reps;
    r.peak_memory_bytes = c.peak_bytes;
    rows.push_back(r);
  }
  if (!dev.device.is_cuda()) distance_to_hardware(rows, a.profile_ops, std::cout);
  print_text_model_share(rows, std::cout);
  results::Store store(a.db);
  store.add_bench(rows);
  std::cout << fmt::format("stored {} benchmark cases as set {} in {}\n", rows.size(), set_id, a.db);
  return errors ? 1 : 0;
}

int compare_sets(const std::string& db, const std::string& base, const std::string& next, std::ostream& out) {
  results::Store store(db, true);
  const auto a = store.bench(base), b = store.bench(next);
  if (a.empty()) throw ConfigError(fmt::format("no benchmark set '{}' in {}", base, db));
  if (b.empty()) throw ConfigError(fmt::format("no benchmark set '{}' in {}", next, db));
  std::map<std::string, results::BenchRow> by_name;
  for (const auto& r : a) by_name[r.name] = r;
  out << fmt::format("{:<60} {:>12} {:>12} {:>8}\n", "case", base.substr(0, 12), next.substr(0, 12), "new/base");
  for (const auto& r : b) {
    auto it = by_name.find(r.name);
    if (it == by_name.end()) continue;
    out << fmt::format("{:<60} {:>10.3f}ms {:>10.3f}ms {:>8.3f}\n", r.name, it->second.median_ns / 1e6,
                       r.median_ns / 1e6, r.median_ns / it->second.median_ns);
  }
  return 0;
}

}  // namespace dmdbench::bench
