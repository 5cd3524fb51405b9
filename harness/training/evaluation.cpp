#include "harness/training/evaluation.h"

#include <chrono>

#include "models/compat.h"

namespace dmdbench {

EvalPass evaluate_split(Trainable& model, const Split& split, torch::Device device, const EvalOptions& o) {
  using Clock = std::chrono::steady_clock;
  torch::NoGradGuard no_grad;
  model.train(false);
  Batcher batches(split, o.batch_size, o.shuffle, false, o.seed, device);
  batches.new_epoch();
  EvalPass pass;
  pass.edge_sums.assign(o.with_edges ? model.edge_spaces().size() : 0, EdgeMatrix{});
  double loss_sum = 0;
  std::vector<torch::Tensor> edges;
  std::vector<std::pair<std::string, torch::Tensor>> heads;
  auto append = [](std::vector<float>& out, const torch::Tensor& t) {
    const torch::Tensor c = t.to(torch::kCPU, torch::kFloat).contiguous();
    out.insert(out.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  for (int64_t i = 0; i < batches.num_batches(); ++i) {
    const auto t0 = Clock::now();
    const Batch b = batches.get(i);
    torch::Tensor pred;
    {
      models::compat::AutocastGuard autocast(device.type(), o.autocast_bf16);
      pred = model.predict(b, o.with_edges ? &edges : nullptr, o.with_heads ? &heads : nullptr).to(torch::kFloat);
    }
    loss_sum += torch::l1_loss(pred, b.labels).item<double>();
    append(pass.predictions, pred);
    append(pass.labels, b.labels);
    pass.batch_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    const torch::Tensor idx = b.index.to(torch::kCPU);
    pass.indices.insert(pass.indices.end(), idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
    for (std::size_t s = 0; s < edges.size(); ++s) accumulate_edges(edges[s], pass.edge_sums[s]);
    if (pass.heads.empty())
      for (const auto& [name, t] : heads) pass.heads.push_back({name, {}});
    for (std::size_t h = 0; h < heads.size(); ++h) append(pass.heads[h].second, heads[h].second);
  }
  pass.loss = batches.num_batches() ? loss_sum / batches.num_batches() : 0;
  return pass;
}

}  // namespace dmdbench
