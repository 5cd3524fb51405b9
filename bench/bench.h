// The throughput suite (Google Benchmark): forward (eval), full training step and the data pipeline for every
// variant and MulT on the MOSI and MOSEI configurations, batch sizes 1/16/64, one thread and all cores.
// `dmdbench bench` runs it and stores each case in the results database with provenance.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "harness/experiment/config.h"
#include "harness/experiment/dataset_spec.h"
#include "harness/io/bert_folder.h"

namespace dmdbench::bench {

struct BenchArgs {
  std::string filter = ".";  // regular expression over case names
  std::string db;  // the results database (the CLI passes its default)
  std::string device = "auto";
  std::string command_line;
  int repetitions = 3;
  double min_time = 0.2;  // seconds per repetition
  bool list = false;
  int profile_ops = 0;  // > 0: print each profiled eval and train_step case's largest ops by self time
  // The dmd-bert cases' BERT: a Hugging Face folder; empty: bench/bert-base-uncased's config.json
  // (bert-base-uncased's public architecture) with random weights.
  std::string bert;
};

int run_suite(const BenchArgs& a);
// Two stored benchmark sets side by side with the time ratio per case (like Google Benchmark's compare.py).
int compare_sets(const std::string& db, const std::string& base, const std::string& next, std::ostream& out);

// FLOPs of one forward pass and one training step (per batch of `batch` samples) of the BERT alone (forward;
// forward + backward of its last hidden state), matrix products as LibTorch's profiler counts them.
struct FlopCount {
  double forward = 0, train_step = 0;
};
FlopCount count_bert_flops(const BertFolder& bert, int64_t batch, int64_t length);

// One op name's share of a profiled call: calls, self time (its time less that of the ops it called), FLOPs.
struct OpTime {
  std::string name;
  int64_t calls = 0;
  double self_ms = 0;
  double flops = 0;  // the products' and the attention's FLOPs it made
};
// What one profiled call needs and where its time goes.
struct StepProfile {
  double product_flops = 0;    // matrix products (mm, addmm, addmm_, bmm, baddbmm)
  double attention_flops = 0;  // the fused attention's products (q.k and p.v, forward and backward)
  double product_ms = 0;       // time inside the matrix products
  double wall_ms = 0;          // the whole call under the profiler (its overhead included)
  std::vector<OpTime> ops;     // by self time, largest first
  double flops() const { return product_flops + attention_flops; }
};
struct StepCount {
  StepProfile forward, train_step;  // the eval forward; the trainer's whole step (TrainStep::run)
};
// `variant` is a registry name or "dmd-bert" (DMD with the text model `bert`, fine-tuned). Each is the better
// (less product time) of two profiled runs after a warm-up run.
StepCount profile_step(const std::string& family, const std::string& variant, int64_t batch,
                       const BertFolder* bert = nullptr);

// A case's data name: "mosi", "mosei" (aligned, the reference's lengths) or "mosi-unaligned",
// "mosei-unaligned" (MMSA's unaligned lengths, MOSI 50/375/500, MOSEI 50/500/500). The family is the name
// without "-unaligned".
std::string case_family(const std::string& data);
FeatureDims case_dims(const std::string& data);

// The configuration a case name's variant runs: registry variants on the text features; "dmd-bert" is full
// DMD with its BERT fine-tuned (bert-finetune).
Config case_config(const std::string& family, const std::string& variant);

}  // namespace dmdbench::bench
