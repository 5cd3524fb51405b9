// models/jobs.h: sub-networks run at once on two threads give the bits of the serial forward and backward
// (outputs, every parameter's gradient, the inputs' gradients), with dropout, shared inputs and a job output
// also used outside the jobs; errors in a job and a changed number of random draws are reported.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "baselines/mult.h"
#include "models/dmd.h"
#include "models/graph_distill.h"
#include "models/jobs.h"
#include "models/loss.h"
#include "models/ops.h"
#include "tests/model_configs.h"

namespace m = dmdbench::models;
namespace jobs = dmdbench::models::jobs;
using torch::Tensor;

namespace {

// Runs f at `threads` intra-op threads with the jobs' parallel mode set, and restores both.
template <class F>
void with_threads(int threads, bool parallel, F&& f) {
  const int before = torch::get_num_threads();
  m::ops::set_threads(threads);
  jobs::set_parallel(parallel);
  auto restore = [&] {
    m::ops::set_threads(before);
    jobs::set_parallel(true);
  };
  try {
    f();
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

void expect_same_bits(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].defined(), b[i].defined()) << what << " #" << i;
    if (a[i].defined()) {
      EXPECT_TRUE(torch::equal(a[i], b[i])) << what << " #" << i;
    }
  }
}

// What one DMD training step leaves: the outputs and every gradient (model and graph-distillation units).
struct Step {
  std::vector<Tensor> outputs, grads;
};

// Two training steps of the full loss on n samples from the same seed (the first parallel call counts the
// jobs' seeds and runs in order); returns the second, and the evaluation outputs after it.
Step dmd_steps(const m::DMDConfig& c, int64_t n, int64_t runs_before, bool expect_parallel) {
  torch::manual_seed(11);
  m::DMD model(c);
  m::GraphDistill homo(m::GraphDistillConfig::homo(c.d)), hetero(m::GraphDistillConfig::hetero(c.d));
  const Tensor text = torch::randn({n, c.seq_len, c.text_dim}),
               audio = torch::randn({n, c.audio_len, c.audio_dim}),
               vision = torch::randn({n, c.vision_len, c.vision_dim}),
               labels = torch::tensor({1.5f, -0.5f, 2.0f, 0.0f, -2.5f, 1.0f}).narrow(0, 0, n);
  Step s;
  for (int step = 0; step < 2; ++step) {
    model->train();
    for (auto& p : model->parameters()) p.mutable_grad() = Tensor();
    for (auto& p : homo->parameters()) p.mutable_grad() = Tensor();
    for (auto& p : hetero->parameters()) p.mutable_grad() = Tensor();
    const m::DMDOutput out = model->forward(text, audio, vision);
    m::LossConfig lc;
    lc.decouple_losses = c.decouple;
    const auto loss = m::dmd_loss(out, labels, homo, hetero, lc);
    loss.total.backward();
    if (step == 1) {
      s.outputs = {out.output_logit, out.logits_c, out.last_h_l, out.last_h_a, out.last_h_v, loss.total};
      for (const auto& p : model->parameters()) s.grads.push_back(p.grad());
      for (const auto& p : homo->parameters()) s.grads.push_back(p.grad());
      for (const auto& p : hetero->parameters()) s.grads.push_back(p.grad());
    }
  }
  model->eval();
  for (int pass = 0; pass < 2; ++pass) {  // the first evaluation pass counts, the second runs in parallel
    torch::NoGradGuard no_grad;
    const Tensor logit = model->forward(text, audio, vision).output_logit;
    if (pass == 1) s.outputs.push_back(logit);
  }
  // DMD's jobs in the second training step and in the second evaluation pass.
  EXPECT_EQ(jobs::parallel_runs() - runs_before, expect_parallel ? 2 : 0);
  return s;
}

}  // namespace

TEST(ModelsJobs, DMDStepOnTwoThreadsGivesTheSerialBits) {
  // MOSI's recipe has dropout in the attention, the embeddings, the text and the heads, so every job draws
  // seeds; the ablations change which tensors the jobs share (no decoupling: c and s are the same tensor; no
  // crossmodal attention: each crossmodal job reads its query's input twice). One sample: contiguous()
  // returns the [T',1,d] views of s and c as they are, so the jobs' inputs are also read by the losses
  // outside.
  auto mosi = dmdbench::testing::reference_dmd("mosi");
  auto no_decoupling = mosi, no_crossmodal = mosi;
  no_decoupling.decouple = false;
  no_crossmodal.cross_modal_attention = false;
  for (const auto& [name, c] : {std::pair{"mosi", mosi}, std::pair{"no decoupling", no_decoupling},
                                std::pair{"no crossmodal attention", no_crossmodal}}) {
    for (int64_t n : {6, 1}) {
      Step serial, parallel;
      with_threads(2, false, [&] { serial = dmd_steps(c, n, jobs::parallel_runs(), false); });
      with_threads(2, true, [&] { parallel = dmd_steps(c, n, jobs::parallel_runs(), true); });
      const std::string what = std::string(name) + ", " + std::to_string(n) + " samples";
      expect_same_bits(serial.outputs, parallel.outputs, what + " outputs");
      expect_same_bits(serial.grads, parallel.grads, what + " gradients");
    }
  }
}

TEST(ModelsJobs, MulTStepOnTwoThreadsGivesTheSerialBits) {
  // MulT's nine transformers are jobs too; MOSI's MulT recipe, lengths shortened from the unaligned
  // 50/375/500.
  auto c = dmdbench::testing::reference_mult("mosi");
  c.base.audio_len = 60, c.base.vision_len = 70;
  auto steps = [&](bool parallel) {
    std::vector<Tensor> result;
    const int64_t runs_before = jobs::parallel_runs();
    with_threads(2, parallel, [&] {
      torch::manual_seed(12);
      dmdbench::baselines::MulT model(c);
      model->train();
      const Tensor text = torch::randn({4, c.base.seq_len, c.base.text_dim}),
                   audio = torch::randn({4, c.base.audio_len, c.base.audio_dim}),
                   vision = torch::randn({4, c.base.vision_len, c.base.vision_dim});
      for (int step = 0; step < 2; ++step) {  // the first step counts the jobs' seeds
        for (auto& p : model->parameters()) p.mutable_grad() = Tensor();
        const Tensor out = model->forward(text, audio, vision);
        (out - 0.5f).abs().mean().backward();
        if (step == 1) {
          result = {out};
          for (const auto& p : model->parameters()) result.push_back(p.grad());
        }
      }
    });
    EXPECT_EQ(jobs::parallel_runs() - runs_before, parallel ? 1 : 0);
    return result;
  };
  expect_same_bits(steps(false), steps(true), "MulT output and gradients");
}

TEST(ModelsJobs, SharedInputsAndOutputsUsedOutsideSumInTheSerialOrder) {
  // Slots 0 (x) and 1 (y) are inputs. Job 0 reads x then y; job 1 reads x twice and returns two tensors
  // (slots 3 and 4), the first of which it also uses itself; job 2 reads job 0's output and x. Job 0's output
  // and both of job 1's are also used after the jobs. Each job has its own weights and dropout.
  auto run = [](bool parallel, int64_t runs_before) {
    torch::manual_seed(3);
    std::vector<Tensor> w;
    for (int j = 0; j < 3; ++j) w.push_back(torch::randn({16, 16}, torch::requires_grad()));
    Tensor x0 = torch::randn({64, 16}, torch::requires_grad()),
           y0 = torch::randn({64, 16}, torch::requires_grad());
    jobs::CallSite seeds;
    std::vector<Tensor> result;
    with_threads(2, parallel, [&] {
      for (int call = 0; call < 2; ++call) {  // the first call counts the seeds
        for (auto* t : {&x0, &y0, &w[0], &w[1], &w[2]}) t->mutable_grad() = Tensor();
        const Tensor x = x0 * 1.0f, y = y0 * 1.0f;  // non-leaf inputs, as in a model
        auto layer = [](const Tensor& a, const Tensor& weight) {
          return m::ops::dropout(torch::tanh(m::ops::linear(a, weight)), 0.3, true);
        };
        jobs::Graph g({x, y});
        const int a = g.add({0, 1}, 1, [&](const std::vector<Tensor>& in) -> std::vector<Tensor> {
          return {layer(in[0] * 2.0f, w[0]) + in[1]};
        });
        const int b = g.add({0, 0}, 2, [&](const std::vector<Tensor>& in) -> std::vector<Tensor> {
          Tensor h = layer(in[0] - 1.0f, w[1]) * in[1];
          return {h, h.sin() + h};
        });
        const int c = g.add({a, 0}, 1, [&](const std::vector<Tensor>& in) -> std::vector<Tensor> {
          return {layer(in[0] + 0.5f, w[2]) + in[1] * 3.0f};
        });
        const std::vector<Tensor> out = g.run({a, b, b + 1, c}, seeds);
        const Tensor loss = (out[0] * out[1]).sum() + out[2].cos().sum() + out[3].pow(2).sum() + out[0].sum();
        loss.backward();
        if (call == 1)
          result = {out[0],    out[1],      out[2],      out[3],     x0.grad(),
                    y0.grad(), w[0].grad(), w[1].grad(), w[2].grad()};
      }
    });
    EXPECT_EQ(jobs::parallel_runs() - runs_before, parallel ? 1 : 0);
    return result;
  };
  const auto serial = run(false, jobs::parallel_runs());
  const auto parallel = run(true, jobs::parallel_runs());
  expect_same_bits(serial, parallel, "toy jobs");
  // The dropout is active (job 1's first output is zero where it dropped), so the jobs drew seeds.
  EXPECT_GT((serial[1] == 0).sum().item<int64_t>(), 0);
}

namespace {

// Two jobs reading x: x + 1, and job_one(x); returns both outputs.
std::vector<Tensor> two_jobs(const Tensor& x, jobs::CallSite& seeds, const jobs::Graph::Run& job_one) {
  jobs::Graph g({x});
  const int a =
      g.add({0}, 1, [](const std::vector<Tensor>& in) -> std::vector<Tensor> { return {in[0] + 1.0f}; });
  const int b = g.add({0}, 1, job_one);
  return g.run({a, b}, seeds);
}

}  // namespace

TEST(ModelsJobs, AFailingJobIsReportedAndTheNextCallRuns) {
  // Evaluation (no grad mode): the jobs run in parallel without an autograd node.
  jobs::CallSite seeds;
  const Tensor x = torch::randn({8, 4});
  auto call = [&](bool fail) {
    return two_jobs(x, seeds, [fail](const std::vector<Tensor>& in) -> std::vector<Tensor> {
      TORCH_CHECK(!fail, "job one failed on purpose");
      return {in[0] * 2.0f};
    });
  };
  with_threads(2, true, [&] {
    {
      torch::NoGradGuard no_grad;
      call(false);  // counts
      const int64_t runs_before = jobs::parallel_runs();
      try {
        call(true);
        ADD_FAILURE() << "no error";
      } catch (const c10::Error& e) {
        EXPECT_NE(std::string(e.what()).find("job one failed on purpose"), std::string::npos) << e.what();
      }
      const auto out = call(false);
      EXPECT_TRUE(torch::equal(out[1], x * 2.0f));
      EXPECT_EQ(jobs::parallel_runs() - runs_before, 2);
    }
    // Under grad mode, inputs without a gradient: in order (the jobs' graphs are the caller's backward's).
    const int64_t runs_before = jobs::parallel_runs();
    EXPECT_TRUE(torch::equal(call(false)[0], x + 1.0f));
    EXPECT_EQ(jobs::parallel_runs(), runs_before);
  });
}

TEST(ModelsJobs, AJobThatDrawsOtherThanItsCountedSeedsIsRefused) {
  jobs::CallSite seeds;
  const Tensor x = torch::randn({8, 4}, torch::requires_grad());
  int draws = 1;
  auto call = [&] {
    return two_jobs(x, seeds, [&](const std::vector<Tensor>& in) -> std::vector<Tensor> {
      Tensor y = in[0];
      for (int i = 0; i < draws; ++i) y = m::ops::dropout(y, 0.5, true);
      return {y};
    });
  };
  with_threads(2, true, [&] {
    call();  // counts one seed for job 1
    const int64_t runs_before = jobs::parallel_runs();
    draws = 2;
    EXPECT_THROW(call(), c10::Error);
    draws = 0;
    EXPECT_THROW(call(), c10::Error);
    draws = 1;
    EXPECT_NO_THROW(call());
    EXPECT_EQ(jobs::parallel_runs() - runs_before, 3);
  });
}

TEST(ModelsJobs, AGraphInsideAJobDrawsFromTheJobsSeeds) {
  // Job 1 runs a graph of its own (in order: the pool is busy) with dropout, then one more dropout; its seeds
  // are all drawn in the serial order, so both modes give the same bits.
  auto run = [](bool parallel) {
    torch::manual_seed(21);
    const Tensor x = torch::randn({32, 8}, torch::requires_grad());
    jobs::CallSite seeds, inner_seeds;
    std::vector<Tensor> result;
    with_threads(2, parallel, [&] {
      for (int call = 0; call < 2; ++call) {  // the first call counts
        result = two_jobs(x, seeds, [&](const std::vector<Tensor>& in) -> std::vector<Tensor> {
          const std::vector<Tensor> inner =
              two_jobs(m::ops::dropout(in[0], 0.5, true), inner_seeds, [](const std::vector<Tensor>& v) {
                return std::vector<Tensor>{m::ops::dropout(v[0], 0.5, true)};
              });
          return {m::ops::dropout(inner[0] + inner[1], 0.5, true)};
        });
      }
    });
    return result;
  };
  expect_same_bits(run(false), run(true), "a graph inside a job");
}

// DMD's jobs (models/dmd.cpp): 0-2 the self-attentions on c, 3 the c head (reads 0-2), then per modality two
// crossmodal transformers and the memory transformer that reads them (4, 5 -> 6; 7, 8 -> 9; 10, 11 -> 12).
// Chains, by hand: with one unit each, a self-attention or a crossmodal transformer 2, the rest 1; with the
// times measured on MOSI (ms: 15, 15, 12, 0.2 / 16.5, 16.4, 28 per modality) a crossmodal transformer 44.4 or
// 44.5, a memory transformer 28, a self-attention 15.2 or 12.2, the c head 0.2.
TEST(ModelsJobs, TheForwardHandsOutTheLongestChainFirst) {
  const std::vector<std::vector<int>> waits = {{}, {}, {},     {0, 1, 2}, {}, {},      {4, 5},
                                               {}, {}, {7, 8}, {},        {}, {10, 11}};
  EXPECT_EQ(jobs::longest_chain_first(waits, {}),
            (std::vector<int>{0, 1, 2, 4, 5, 7, 8, 10, 11, 3, 6, 9, 12}));
  const std::vector<double> ms = {15, 15, 12, 0.2, 16.5, 16.4, 28, 16.4, 16.5, 28, 16.5, 16.4, 28};
  EXPECT_EQ(jobs::longest_chain_first(waits, ms),
            (std::vector<int>{4, 8, 10, 5, 7, 11, 6, 9, 12, 0, 1, 2, 3}));
}
