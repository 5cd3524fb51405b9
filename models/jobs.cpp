#include "models/jobs.h"

#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <numeric>

#include "models/compat.h"
#include "models/kernels.h"

namespace dmdbench::models::jobs {

// The forward's order: longest chain first. Each job's chain is its own time plus the longest chain among the
// jobs that read it (`seconds`: as the last call measured them; 1 each where there is none yet), so a free
// thread starts the crossmodal transformers, whose memory transformers wait for them, before the short
// self-attentions on c, which then fill the end. In the order they were added, a memory transformer ran alone
// at the end: the jobs took 131 ms for 112 ms of work per thread (MOSI, batch 64, two threads, evaluation);
// by chain length evaluation ran 1.04-1.08x as fast (MOSI and MOSEI, batch 64, two threads, two alternating
// runs), the training step as fast. The order changes no result (each job runs whole on one thread).
std::vector<int> longest_chain_first(const std::vector<std::vector<int>>& waits,
                                     const std::vector<double>& seconds) {
  const int n = static_cast<int>(waits.size());
  const bool measured = static_cast<int>(seconds.size()) == n;
  std::vector<double> chain(n, 0.0), after(n, 0.0);  // after[j]: the longest chain of j's readers
  for (int j = n - 1; j >= 0; --j) {                 // readers come after the jobs they read
    chain[j] = (measured ? seconds[j] : 1.0) + after[j];
    for (int w : waits[j]) after[w] = std::max(after[w], chain[j]);
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return chain[a] > chain[b]; });
  return order;
}

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

std::atomic<bool> g_parallel{true};
std::atomic<int64_t> g_parallel_runs{0};

// Runs task(j) for the n jobs on `threads` threads of LibTorch's intra-op pool, each job once all jobs in
// waits[j] have finished; a free thread takes the first ready job in `order` (every job once). The first
// exception stops the handing out of jobs and is rethrown here once the running ones have finished.
void run_dag(int threads, const std::vector<std::vector<int>>& waits, const std::vector<int>& order,
             const std::function<void(int)>& task) {
  const int n = static_cast<int>(waits.size());
  std::vector<int> pending(n);
  std::vector<std::vector<int>> waiters(n);
  for (int j = 0; j < n; ++j) {
    pending[j] = static_cast<int>(waits[j].size());
    for (int w : waits[j]) waiters[w].push_back(j);
  }
  std::vector<char> started(n, 0);
  int handed_out = 0;
  std::exception_ptr error;
  std::mutex mutex;
  std::condition_variable changed;
  const at::ThreadLocalState state;  // grad mode, dispatch keys, profiler: the workers run as this thread
  kernels::on_threads(threads, [&](int /*thread*/) {
    at::ThreadLocalStateGuard guard(state);
    std::unique_lock<std::mutex> lock(mutex);
    while (!error && handed_out < n) {
      int pick = -1;
      for (int k = 0; k < n && pick < 0; ++k) {
        const int j = order[k];
        if (!started[j] && pending[j] == 0) pick = j;
      }
      if (pick < 0) {
        changed.wait(lock);
        continue;
      }
      started[pick] = 1;
      ++handed_out;
      lock.unlock();
      std::exception_ptr failure;
      try {
        task(pick);
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      if (failure && !error) error = failure;
      for (int w : waiters[pick]) --pending[w];
      changed.notify_all();
    }
  });
  if (error) std::rethrow_exception(error);
}

using Job = Graph::Job;

// Installs a seed supply on this thread for its lifetime, over the one before (a job may run a graph of its
// own), and restores that one.
class SupplyScope {
 public:
  explicit SupplyScope(compat::SeedSupply* supply) : before_(compat::seed_supply) {
    if (supply != before_) supply->outer = before_;
    compat::seed_supply = supply;
  }
  ~SupplyScope() { compat::seed_supply = before_; }
  SupplyScope(const SupplyScope&) = delete;
  SupplyScope& operator=(const SupplyScope&) = delete;

 private:
  compat::SeedSupply* before_;
};

// What one call keeps between the forward and the backward.
struct Call : torch::CustomClassHolder {
  int n_inputs = 0, n_slots = 0, threads = 1;
  std::vector<Job> jobs;                     // reads and slots (run dropped)
  std::vector<int> outputs;                  // the returned slots
  std::vector<std::pair<int, int>> uses;  // the node's inputs: (job, read) of the graph's inputs, see run()
  std::vector<std::vector<Tensor>> leaves;   // per job and read: the leaf the job read
  std::vector<std::vector<Tensor>> results;  // per job: its outputs, with the job's graph
};

// The seeds of every job in the serial order, drawn now; offsets[j]..offsets[j+1] are job j's.
struct DrawnSeeds {
  std::vector<uint64_t> seeds;
  std::vector<int64_t> offsets;
  explicit DrawnSeeds(const std::vector<int64_t>& per_job) : offsets(per_job.size() + 1, 0) {
    for (size_t j = 0; j < per_job.size(); ++j) offsets[j + 1] = offsets[j] + per_job[j];
    seeds.resize(static_cast<size_t>(offsets.back()));
    for (auto& s : seeds) s = compat::draw_seed();
  }
  // Runs job j with its seeds as this thread's supply; checks that it drew all of them.
  std::vector<Tensor> run(const Job& job, int j, const std::vector<Tensor>& args) {
    compat::SeedSupply supply;
    supply.next = seeds.data() + offsets[j];
    supply.end = seeds.data() + offsets[j + 1];
    const SupplyScope scope(&supply);
    std::vector<Tensor> out = job.run(args);
    TORCH_CHECK(supply.next == supply.end, "parallel job ", j,
                " drew fewer random seeds than in its serial forward");
    return out;
  }
};

// Job j's outputs in its slots; checks their number.
void store(const Job& job, int j, std::vector<Tensor> out, std::vector<Tensor>& slots) {
  TORCH_CHECK(static_cast<int>(out.size()) == job.outputs, "job ", j, " returned ", out.size(),
              " tensors, not ", job.outputs);
  for (int o = 0; o < job.outputs; ++o) slots[job.first + o] = std::move(out[o]);
}

// The jobs whose outputs job j reads.
std::vector<std::vector<int>> forward_waits(const std::vector<Job>& jobs, int n_inputs) {
  std::vector<int> owner;  // slot - n_inputs -> job
  for (size_t j = 0; j < jobs.size(); ++j) owner.insert(owner.end(), jobs[j].outputs, static_cast<int>(j));
  std::vector<std::vector<int>> waits(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j)
    for (int s : jobs[j].reads)
      if (s >= n_inputs) waits[j].push_back(owner[s - n_inputs]);
  return waits;
}

// Runs the jobs in parallel; with leaves (and a graph per job) where `call` is given. Returns the slots'
// values (for job outputs under `call`: detached from the job's graph). Each job's time goes to `seconds`.
std::vector<Tensor> forward_parallel(const std::vector<Tensor>& inputs, const std::vector<Job>& jobs,
                                     int n_slots, DrawnSeeds& drawn, int threads,
                                     std::vector<double>& seconds, Call* call) {
  std::vector<Tensor> slots(inputs);
  slots.resize(n_slots);
  std::vector<char> slot_grad(n_slots, 0);  // the slot's value requires a gradient
  for (size_t i = 0; i < inputs.size(); ++i) slot_grad[i] = inputs[i].requires_grad();
  const std::vector<std::vector<int>> waits = forward_waits(jobs, static_cast<int>(inputs.size()));
  const std::vector<int> order = longest_chain_first(waits, seconds);
  seconds.assign(jobs.size(), 0.0);
  run_dag(threads, waits, order, [&](int j) {
    const auto start = std::chrono::steady_clock::now();
    const Job& job = jobs[j];
    std::vector<Tensor> args;
    for (int s : job.reads) {
      args.push_back(call ? slots[s].detach().requires_grad_(slot_grad[s] != 0) : slots[s]);
      if (call) call->leaves[j].push_back(args.back());
    }
    std::vector<Tensor> out = drawn.run(job, j, args);
    store(job, j, out, slots);
    for (int o = 0; o < job.outputs; ++o) {
      slot_grad[job.first + o] = out[o].requires_grad();
      if (call) slots[job.first + o] = out[o].detach();
    }
    if (call) call->results[j] = std::move(out);
    seconds[static_cast<size_t>(j)] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  });
  return slots;
}

// The jobs as one autograd node.
struct JobsFunction : public torch::autograd::Function<JobsFunction> {
  // `uses`: one entry per entry of call->uses (the edges to the inputs; the values come from `inputs`).
  static variable_list forward(AutogradContext* ctx, at::TensorList /*uses*/,
                               const std::vector<Tensor>* inputs, const std::vector<Job>* jobs,
                               DrawnSeeds* drawn, std::vector<double>* seconds,
                               c10::intrusive_ptr<Call> call) {
    ctx->set_materialize_grads(false);
    at::AutoGradMode grad(true);
    const std::vector<Tensor> slots =
        forward_parallel(*inputs, *jobs, call->n_slots, *drawn, call->threads, *seconds, call.get());
    variable_list out;
    for (int s : call->outputs) out.push_back(slots[s]);
    ctx->saved_data["call"] = c10::IValue::make_capsule(call);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto call = c10::static_intrusive_pointer_cast<Call>(ctx->saved_data["call"].toCapsule());
    TORCH_CHECK(!call->results.empty(),
                "the parallel jobs' backward ran twice (retain_graph is not supported)");
    const std::vector<Job>& jobs = call->jobs;
    const int n_jobs = static_cast<int>(jobs.size());
    std::vector<Tensor> outer(call->n_slots);  // gradients from outside the jobs
    for (size_t k = 0; k < call->outputs.size(); ++k) outer[call->outputs[k]] = grads[k];
    std::vector<std::vector<Tensor>> parts(n_jobs);  // per job and read: what its leaf received
    // The slot's gradient in the serial backward's order: outside first, then the jobs from the last.
    auto gradient = [&](int s) {
      Tensor g = outer[s];
      for (int j = n_jobs - 1; j >= 0; --j)
        for (int k = static_cast<int>(jobs[j].reads.size()) - 1; k >= 0; --k)
          if (jobs[j].reads[k] == s && parts[j][k].defined()) g = g.defined() ? g + parts[j][k] : parts[j][k];
      return g;
    };
    // Job j's backward waits for the backwards of the jobs that read its outputs.
    const std::vector<std::vector<int>> reads_of = forward_waits(jobs, call->n_inputs);
    std::vector<std::vector<int>> waits(n_jobs);
    for (int j = 0; j < n_jobs; ++j)
      for (int w : reads_of[j]) waits[w].push_back(j);
    // The last job first: the memory transformers' backwards, which their crossmodal transformers wait for.
    std::vector<int> order(static_cast<size_t>(n_jobs));
    std::iota(order.rbegin(), order.rend(), 0);
    run_dag(call->threads, waits, order, [&](int j) {
      parts[j].resize(jobs[j].reads.size());
      const std::vector<Tensor> results = std::move(call->results[j]);
      variable_list roots, root_grads;
      for (int o = 0; o < jobs[j].outputs; ++o) {
        const Tensor g = gradient(jobs[j].first + o);
        if (!g.defined() || !results[o].requires_grad()) continue;
        roots.push_back(results[o]);
        root_grads.push_back(g);
      }
      if (!roots.empty()) torch::autograd::backward(roots, root_grads);
      for (size_t k = 0; k < parts[j].size(); ++k) parts[j][k] = call->leaves[j][k].grad();
      call->leaves[j].clear();
    });
    call->results.clear();
    // Each use of an input gets its own part; the engine adds them to the input's gradient in this order,
    // after the parts from newer ops outside and before those from older ones, as the serial backward does.
    variable_list out;
    for (const auto& [j, k] : call->uses) out.push_back(parts[j][k]);
    out.resize(call->uses.size() + 5);  // no gradient for the five non-tensor arguments
    return out;
  }
};

// Runs the jobs in order on this thread; counting each job's seeds where `counts` is given.
std::vector<Tensor> run_serial(const std::vector<Tensor>& inputs, const std::vector<Job>& jobs, int n_slots,
                               std::vector<int64_t>* counts) {
  std::vector<Tensor> slots(inputs);
  slots.resize(n_slots);
  for (size_t j = 0; j < jobs.size(); ++j) {
    std::vector<Tensor> args;
    for (int s : jobs[j].reads) args.push_back(slots[s]);
    compat::SeedSupply supply;
    supply.counting = true;
    const SupplyScope scope(counts ? &supply : compat::seed_supply);
    store(jobs[j], static_cast<int>(j), jobs[j].run(args), slots);
    if (counts) counts->push_back(supply.count);
  }
  return slots;
}

}  // namespace

void set_parallel(bool on) {
  g_parallel = on;
}

bool parallel() {
  return g_parallel;
}

int64_t parallel_runs() {
  return g_parallel_runs;
}

Graph::Graph(std::vector<Tensor> inputs)
    : inputs_(std::move(inputs)), slots_(static_cast<int>(inputs_.size())) {
  for (size_t i = 0; i < inputs_.size(); ++i)
    for (size_t k = 0; k < i; ++k)
      TORCH_CHECK(!inputs_[i].is_same(inputs_[k]), "inputs ", k, " and ", i,
                  " are the same tensor; pass it once");
}

int Graph::add(std::vector<int> reads, int outputs, Run run) {
  const int j = static_cast<int>(jobs_.size());
  for (int s : reads)
    TORCH_CHECK(s >= 0 && s < slots_, "job ", j, " reads slot ", s, ", which is not computed before it");
  TORCH_CHECK(outputs > 0, "job ", j, " returns nothing");
  jobs_.push_back({std::move(reads), slots_, outputs, std::move(run)});
  slots_ += outputs;
  return jobs_.back().first;
}

std::vector<Tensor> Graph::run(const std::vector<int>& slots, CallSite& site) const {
  const int n_inputs = static_cast<int>(inputs_.size()), n_jobs = static_cast<int>(jobs_.size());
  for (size_t k = 0; k < slots.size(); ++k) {
    TORCH_CHECK(slots[k] >= n_inputs && slots[k] < slots_, "slot ", slots[k], " is not a job's output");
    TORCH_CHECK(std::count(slots.begin(), slots.end(), slots[k]) == 1, "slot ", slots[k],
                " is returned twice");
  }
  const bool on_cpu = std::all_of(inputs_.begin(), inputs_.end(), [](const Tensor& t) { return t.is_cpu(); });
  const int threads = std::min(at::get_num_threads(), n_jobs);
  auto pick = [&](const std::vector<Tensor>& values) {
    std::vector<Tensor> out;
    for (int s : slots) out.push_back(values[s]);
    return out;
  };
  // Under grad mode, inputs without a gradient would leave the jobs' graphs to the caller's backward: in
  // order.
  const bool grad = torch::GradMode::is_enabled();
  const bool record =
      grad && std::any_of(inputs_.begin(), inputs_.end(), [](const Tensor& t) { return t.requires_grad(); });
  if (!parallel() || !on_cpu || threads < 2 || at::in_parallel_region() || (grad && !record))
    return pick(run_serial(inputs_, jobs_, slots_, nullptr));
  if (!site.seeds_per_job) {  // this call runs in order and counts each job's seeds
    std::vector<int64_t> counts;
    std::vector<Tensor> values = run_serial(inputs_, jobs_, slots_, &counts);
    site.seeds_per_job = std::move(counts);
    return pick(values);
  }
  TORCH_CHECK(static_cast<int>(site.seeds_per_job->size()) == n_jobs, "the seed counts are of another graph");
  DrawnSeeds drawn(*site.seeds_per_job);
  ++g_parallel_runs;
  if (!record) return pick(forward_parallel(inputs_, jobs_, slots_, drawn, threads, site.seconds, nullptr));
  auto call = c10::make_intrusive<Call>();
  call->n_inputs = n_inputs;
  call->n_slots = slots_;
  call->threads = threads;
  for (const Job& job : jobs_) call->jobs.push_back({job.reads, job.first, job.outputs, nullptr});
  call->outputs = slots;
  call->leaves.resize(jobs_.size());
  call->results.resize(jobs_.size());
  // The node's inputs: every read of a graph input, in the order the serial backward adds their parts (the
  // last job first, within a job its last read first), so that an input also read outside the jobs (a view
  // that contiguous() returned as it is, say) gets its parts in the serial order too.
  std::vector<Tensor> uses;
  for (int j = n_jobs - 1; j >= 0; --j)
    for (int k = static_cast<int>(jobs_[j].reads.size()) - 1; k >= 0; --k)
      if (jobs_[j].reads[k] < n_inputs) {
        call->uses.emplace_back(j, k);
        uses.push_back(inputs_[jobs_[j].reads[k]]);
      }
  return JobsFunction::apply(at::TensorList(uses), &inputs_, &jobs_, &drawn, &site.seconds, call);
}

}  // namespace dmdbench::models::jobs
