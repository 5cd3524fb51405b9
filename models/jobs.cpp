#include "models/jobs.h"

#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>

#include "models/compat.h"
#include "models/kernels.h"

namespace dmdbench::models::jobs {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

std::atomic<bool> g_parallel{true};
std::atomic<int64_t> g_parallel_runs{0};

// Runs task(j) for the n jobs on `threads` threads of LibTorch's intra-op pool, each job once all jobs in
// waits[j] have finished; a free thread takes the first ready job in the given order (ascending, or
// descending). The first exception stops the handing out of jobs and is rethrown here once the running ones
// have finished.
void run_dag(int threads, const std::vector<std::vector<int>>& waits, bool descending,
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
        const int j = descending ? n - 1 - k : k;
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

// What one call keeps between the forward and the backward.
struct Call : torch::CustomClassHolder {
  int n_inputs = 0, threads = 1;
  std::vector<std::vector<int>> job_inputs;  // Job::inputs
  std::vector<int> outputs;                  // the returned slots
  std::vector<std::vector<Tensor>> leaves;   // per job and input: the leaf the job read
  std::vector<Tensor> results;               // per job: its output, with the job's graph
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
  // Runs f with job j's seeds as this thread's supply; checks that it drew all of them.
  template <class F>
  auto with_seeds(int j, F&& f) {
    compat::SeedSupply supply;
    supply.next = seeds.data() + offsets[j];
    supply.end = seeds.data() + offsets[j + 1];
    compat::seed_supply = &supply;
    struct Reset {
      ~Reset() { compat::seed_supply = nullptr; }
    } reset;
    auto out = f();
    TORCH_CHECK(supply.next == supply.end, "parallel job ", j,
                " drew fewer random seeds than in its serial forward");
    return out;
  }
};

std::vector<std::vector<int>> forward_waits(int n_inputs, const std::vector<std::vector<int>>& job_inputs) {
  std::vector<std::vector<int>> waits(job_inputs.size());
  for (size_t j = 0; j < job_inputs.size(); ++j)
    for (int s : job_inputs[j])
      if (s >= n_inputs) waits[j].push_back(s - n_inputs);
  return waits;
}

// Runs the jobs in parallel; with leaves (and a graph per job) where `call` is given. Returns the slots'
// values (for job slots: detached from the job's graph).
std::vector<Tensor> forward_parallel(const std::vector<Tensor>& inputs, const std::vector<Job>& jobs,
                                     DrawnSeeds& drawn, int threads, Call* call) {
  const int n_inputs = static_cast<int>(inputs.size());
  std::vector<Tensor> slots(inputs);
  slots.resize(inputs.size() + jobs.size());
  std::vector<char> slot_grad(slots.size(), 0);  // the slot's value requires a gradient
  for (int i = 0; i < n_inputs; ++i) slot_grad[i] = inputs[i].requires_grad();
  std::vector<std::vector<int>> job_inputs;
  for (const Job& job : jobs) job_inputs.push_back(job.inputs);
  run_dag(threads, forward_waits(n_inputs, job_inputs), /*descending=*/false, [&](int j) {
    std::vector<Tensor> args;
    for (int s : jobs[j].inputs) {
      if (!call) {
        args.push_back(slots[s]);
        continue;
      }
      args.push_back(slots[s].detach().requires_grad_(slot_grad[s] != 0));
      call->leaves[j].push_back(args.back());
    }
    Tensor out = drawn.with_seeds(j, [&] { return jobs[j].run(args); });
    slot_grad[n_inputs + j] = out.requires_grad();
    slots[n_inputs + j] = call ? out.detach() : out;
    if (call) call->results[j] = std::move(out);
  });
  return slots;
}

// The jobs as one autograd node.
struct JobsFunction : public torch::autograd::Function<JobsFunction> {
  static variable_list forward(AutogradContext* ctx, at::TensorList inputs, const std::vector<Job>* jobs,
                               DrawnSeeds* drawn, c10::intrusive_ptr<Call> call) {
    ctx->set_materialize_grads(false);
    at::AutoGradMode grad(true);
    const std::vector<Tensor> slots =
        forward_parallel(inputs.vec(), *jobs, *drawn, call->threads, call.get());
    variable_list out;
    for (int s : call->outputs) out.push_back(slots[s]);
    ctx->saved_data["call"] = c10::IValue::make_capsule(call);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto call = c10::static_intrusive_pointer_cast<Call>(ctx->saved_data["call"].toCapsule());
    TORCH_CHECK(!call->results.empty(),
                "the parallel jobs' backward ran twice (retain_graph is not supported)");
    const int n_inputs = call->n_inputs, n_jobs = static_cast<int>(call->job_inputs.size());
    std::vector<Tensor> outer(n_inputs + n_jobs);  // gradients from outside the jobs
    for (size_t k = 0; k < call->outputs.size(); ++k) outer[call->outputs[k]] = grads[k];
    std::vector<std::vector<Tensor>> parts(n_jobs);  // per job and input: what its leaf received
    // The slot's gradient in the serial backward's order: outside first, then the jobs from the last.
    auto gradient = [&](int s) {
      Tensor g = outer[s];
      for (int j = n_jobs - 1; j >= 0; --j)
        for (int k = static_cast<int>(call->job_inputs[j].size()) - 1; k >= 0; --k)
          if (call->job_inputs[j][k] == s && parts[j][k].defined())
            g = g.defined() ? g + parts[j][k] : parts[j][k];
      return g;
    };
    // Job j's backward waits for the backwards of the jobs that read its output.
    std::vector<std::vector<int>> waits(n_jobs);
    for (int j = 0; j < n_jobs; ++j)
      for (int s : call->job_inputs[j])
        if (s >= n_inputs) waits[s - n_inputs].push_back(j);
    run_dag(call->threads, waits, /*descending=*/true, [&](int j) {
      parts[j].resize(call->job_inputs[j].size());
      Tensor result = std::move(call->results[j]);
      const Tensor g = gradient(n_inputs + j);
      if (g.defined() && result.requires_grad()) torch::autograd::backward({result}, {g});
      for (size_t k = 0; k < parts[j].size(); ++k) parts[j][k] = call->leaves[j][k].grad();
      call->leaves[j].clear();
    });
    call->results.clear();
    variable_list out;
    for (int i = 0; i < n_inputs; ++i) out.push_back(gradient(i));
    out.resize(n_inputs + 3);  // no gradient for the three non-tensor arguments
    return out;
  }
};

// Runs the jobs in order on this thread; counting each job's seeds where `counts` is given.
std::vector<Tensor> run_serial(const std::vector<Tensor>& inputs, const std::vector<Job>& jobs,
                               std::vector<int64_t>* counts) {
  std::vector<Tensor> slots(inputs);
  for (size_t j = 0; j < jobs.size(); ++j) {
    std::vector<Tensor> args;
    for (int s : jobs[j].inputs) args.push_back(slots.at(s));
    compat::SeedSupply supply;
    supply.counting = true;
    if (counts) compat::seed_supply = &supply;
    struct Reset {
      ~Reset() { compat::seed_supply = nullptr; }
    } reset;
    slots.push_back(jobs[j].run(args));
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

std::vector<Tensor> run(const std::vector<Tensor>& inputs, const std::vector<Job>& jobs,
                        const std::vector<int>& outputs, SeedCounts& seeds) {
  const int n_inputs = static_cast<int>(inputs.size()), n_jobs = static_cast<int>(jobs.size());
  for (int i = 0; i < n_inputs; ++i)
    for (int k = 0; k < i; ++k)
      TORCH_CHECK(!inputs[i].is_same(inputs[k]), "inputs ", k, " and ", i,
                  " are the same tensor; pass it once");
  for (int j = 0; j < n_jobs; ++j)
    for (int s : jobs[j].inputs)
      TORCH_CHECK(s >= 0 && s < n_inputs + j, "job ", j, " reads slot ", s,
                  ", which is not computed before it");
  for (size_t k = 0; k < outputs.size(); ++k) {
    TORCH_CHECK(outputs[k] >= n_inputs && outputs[k] < n_inputs + n_jobs, "output ", k, " is not a job's");
    TORCH_CHECK(std::count(outputs.begin(), outputs.end(), outputs[k]) == 1, "slot ", outputs[k],
                " is returned twice");
  }
  const bool on_cpu = std::all_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return t.is_cpu(); });
  const int threads = std::min(at::get_num_threads(), n_jobs);
  auto pick = [&](const std::vector<Tensor>& slots) {
    std::vector<Tensor> out;
    for (int s : outputs) out.push_back(slots[s]);
    return out;
  };
  if (!parallel() || !on_cpu || threads < 2 || at::in_parallel_region())
    return pick(run_serial(inputs, jobs, nullptr));
  if (!seeds.per_job) {  // this call runs in order and counts each job's seeds
    std::vector<int64_t> counts;
    std::vector<Tensor> slots = run_serial(inputs, jobs, &counts);
    seeds.per_job = std::move(counts);
    return pick(slots);
  }
  DrawnSeeds drawn(*seeds.per_job);
  ++g_parallel_runs;
  const bool record =
      torch::GradMode::is_enabled() &&
      std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return t.requires_grad(); });
  if (!record) return pick(forward_parallel(inputs, jobs, drawn, threads, nullptr));
  auto call = c10::make_intrusive<Call>();
  call->n_inputs = n_inputs;
  call->threads = threads;
  for (const Job& job : jobs) call->job_inputs.push_back(job.inputs);
  call->outputs = outputs;
  call->leaves.resize(jobs.size());
  call->results.resize(jobs.size());
  return JobsFunction::apply(at::TensorList(inputs), &jobs, &drawn, call);
}

}  // namespace dmdbench::models::jobs
