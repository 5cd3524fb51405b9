// Independent sub-networks of one forward (the crossmodal and memory transformers, the self-attentions on c),
// run at once on LibTorch's intra-op threads, forward and backward, with the bits of running them one after
// another on one thread.
//
// LibTorch's autograd engine runs a CPU backward on the calling thread, node by node, so a second thread only
// helps inside single ops; at batch 64 most of a DMD step is the per-op work of its 15 transformers. Here
// each job runs whole on one thread (its ops single-threaded, as nested OpenMP regions are), on a graph of
// its own whose inputs are fresh leaves; the jobs as a whole are one autograd node whose backward runs the
// jobs' backwards at once in the same way. The bits equal the serial forward's because
//  - each job computes what it computes in the serial forward, in the same order, with the same random seeds:
//    the seeds each job draws (compat::draw_seed) are counted once in a serial forward and, at every later
//    call, drawn beforehand by the calling thread in the serial order;
//  - a job's leaves receive one gradient each (one first op per input), and the gradient of an input shared
//  by
//    several jobs is their sum in the order the serial backward adds them: the engine runs a graph's nodes in
//    the reverse order of their creation, so the gradients from outside the jobs come first, then those of
//    the jobs from the last to the first, and within a job from its last input to its first.
// Jobs must not share parameters (each job's parameters receive their gradient on the job's thread), and the
// backward runs once (no retain_graph).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <vector>

namespace dmdbench::models::jobs {

// One sub-network. Its inputs are slots: 0..I-1 the call's inputs, I+j job j's output; each is read by the
// first op the job creates on it, and they are listed in the order of those ops.
struct Job {
  std::vector<int> inputs;
  std::function<torch::Tensor(const std::vector<torch::Tensor>&)> run;
};

// How many random seeds each job draws, counted at the first call that runs in parallel (that call runs in
// order). One per call site and mode (training, evaluation).
struct SeedCounts {
  std::optional<std::vector<int64_t>> per_job;
};

// Runs the jobs (listed in the order of the serial forward, each after the jobs it reads) and returns the
// listed slots, each a job's output. In parallel where LibTorch has more than one intra-op thread, the inputs
// are on the CPU, no OpenMP region is active and parallel() is on; otherwise in order on this thread, with
// the graph that plain calls would give.
std::vector<torch::Tensor> run(const std::vector<torch::Tensor>& inputs, const std::vector<Job>& jobs,
                               const std::vector<int>& outputs, SeedCounts& seeds);

// Whether run() may run jobs in parallel (on by default; off gives the serial forward at any thread count,
// for comparisons). Process-wide.
void set_parallel(bool on);
bool parallel();
// How many calls of run() have run their jobs in parallel so far (process-wide; for tests and reports).
int64_t parallel_runs();

}  // namespace dmdbench::models::jobs
