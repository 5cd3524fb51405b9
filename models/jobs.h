// Independent sub-networks of one forward (DMD's crossmodal, memory and self-attention transformers and the c
// head), run at once on LibTorch's intra-op threads, forward and backward, with the bits of running them one
// after another on one thread.
//
// LibTorch's autograd engine runs a CPU backward on the calling thread, node by node, so a second thread only
// helps inside single ops; at batch 64 most of a DMD step is the per-op work of its 15 transformers. Here
// each job runs whole on one thread (its ops single-threaded, as nested OpenMP regions are), on a graph of
// its own whose inputs are fresh leaves; the jobs as a whole are one autograd node whose backward runs the
// jobs' backwards at once in the same way. The bits equal the serial forward's because
//  - each job computes what it computes in the serial forward, in the same order, with the same random seeds:
//    the seeds each job draws (compat::draw_seed) are counted once in a serial forward and, at every later
//    call, drawn beforehand by the calling thread in the serial order;
//  - the engine runs a graph's nodes in the reverse order of their creation, so a tensor's gradient is
//    the sum of its readers' parts from the last reader to the first. A job's leaves receive one part each
//    (one first op per input). A job output's gradient adds, in that order, the part from outside the jobs
//    (the backward's root), then the parts of the jobs from the last to the first, within a job from its last
//    read to its first. The node hands each read of an input back as a part of its own, in that same order,
//    so the engine adds them to the parts of the input's readers outside the jobs as the serial backward
//    does.
// Jobs must not share parameters (each job's parameters receive their gradient on the job's thread), and the
// backward runs once (no retain_graph).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <vector>

namespace dmdbench::models::jobs {

// What a call site keeps from one call to the next (one per call site and mode: training, evaluation): how
// many random seeds each job draws, counted at the first call that may run in parallel (that call runs in
// order), and each job's time in the last parallel forward, which orders the next one's jobs (run()).
struct CallSite {
  std::optional<std::vector<int64_t>> seeds_per_job;
  std::vector<double> seconds;
};

// The order in which a parallel forward hands out its ready jobs: by the longest chain of job times from the
// job to the end (its own and its readers'; `seconds`: each job's time, or empty for 1 each), longest first,
// ties in the order the jobs were added. waits[j]: the jobs whose outputs job j reads. See jobs.cpp.
std::vector<int> longest_chain_first(const std::vector<std::vector<int>>& waits,
                                     const std::vector<double>& seconds);

// The sub-networks of one forward and the tensors between them, as slots: the inputs first, then each job's
// outputs in the order the jobs were added.
class Graph {
 public:
  using Run = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

  // The inputs (distinct tensors) become slots 0..inputs.size()-1.
  explicit Graph(std::vector<torch::Tensor> inputs);

  // Adds a job, in the order of the serial forward, after the jobs it reads. It reads `reads` (slots; each is
  // read by the first op the job creates on it, and they are listed in the order of those ops) and returns
  // `outputs` tensors, which become the next slots; returns the first of them.
  int add(std::vector<int> reads, int outputs, Run run);

  // Runs the jobs and returns the listed slots, each a job's output. In parallel where LibTorch has more than
  // one intra-op thread, the inputs are on the CPU, no OpenMP region is active, parallel() is on, and (under
  // grad mode) an input requires a gradient; otherwise in order on this thread, with the graph that plain
  // calls would give.
  std::vector<torch::Tensor> run(const std::vector<int>& slots, CallSite& site) const;

  struct Job {
    std::vector<int> reads;
    int first = 0, outputs = 0;  // its slots
    Run run;
  };

 private:
  std::vector<torch::Tensor> inputs_;
  std::vector<Job> jobs_;
  int slots_ = 0;
};

// Whether Graph::run may run jobs in parallel (on by default; off gives the serial forward at any thread
// count, for comparisons). Process-wide.
void set_parallel(bool on);
bool parallel();
// How many calls of Graph::run have run their jobs in parallel so far (process-wide; for tests and reports).
int64_t parallel_runs();

}  // namespace dmdbench::models::jobs
