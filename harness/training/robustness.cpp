#include "harness/training/robustness.h"

#include <fmt/format.h>

#include <cmath>

namespace dmdbench {
namespace {

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
// The i-th output of splitmix64 started at `key`.
uint64_t draw(uint64_t key, uint64_t i) { return mix64(key + (i + 1) * 0x9e3779b97f4a7c15ULL); }
double uniform(uint64_t u) { return static_cast<double>(u >> 11) * 0x1.0p-53; }  // [0, 1)
uint64_t text_hash(const std::string& s) {  // FNV-1a
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

void require_3d(const torch::Tensor& x, const char* what) {
  if (x.dim() != 3 || x.scalar_type() != torch::kFloat)
    throw DataError(fmt::format("{} must be a float32 [N, T, D] tensor", what));
}

}  // namespace

torch::Tensor real_frames(const torch::Tensor& x) {
  require_3d(x, "a perturbed modality");
  return x.ne(0).any(2);  // [N, T]
}

torch::Tensor channel_std(const torch::Tensor& x) {
  const torch::Tensor real = real_frames(x);                        // [N, T]
  const torch::Tensor frames = x.reshape({-1, x.size(2)}).index({real.reshape({-1})}).to(torch::kDouble);  // [F, D]
  if (frames.size(0) == 0) return torch::zeros({x.size(2)}, torch::kFloat);
  const torch::Tensor centred = frames - frames.mean(0, /*keepdim=*/true);                      // [F, D]
  return centred.pow(2).mean(0).sqrt().to(torch::kFloat);           // [D], population std as np.std
}

torch::Tensor kept_frames(int64_t n, int64_t t, double rate, uint64_t key) {
  torch::Tensor kept = torch::empty({n, t}, torch::kBool);  // [N, T]
  bool* k = kept.data_ptr<bool>();
  for (int64_t i = 0; i < n * t; ++i) k[i] = !(uniform(draw(key, static_cast<uint64_t>(i))) < rate);
  return kept;
}

torch::Tensor drop_frames(const torch::Tensor& x, const torch::Tensor& kept) {
  require_3d(x, "a perturbed modality");
  return x * kept.unsqueeze(2).to(x.scalar_type());  // [N, T, D]
}

torch::Tensor add_noise(const torch::Tensor& x, const torch::Tensor& channel_stds, double scale, uint64_t key) {
  require_3d(x, "a perturbed modality");
  const int64_t n = x.size(0), t = x.size(1), d = x.size(2);
  torch::Tensor z = torch::empty({n, t, d}, torch::kFloat);  // [N, T, D] standard normal
  float* zp = z.data_ptr<float>();
  const int64_t total = n * t * d;
  for (int64_t i = 0; i < total; i += 2) {  // Box-Muller: one pair of uniforms gives two normals
    const double u1 = 1.0 - uniform(draw(key, static_cast<uint64_t>(i))), u2 = uniform(draw(key, static_cast<uint64_t>(i + 1)));
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    zp[i] = static_cast<float>(r * std::cos(a));
    if (i + 1 < total) zp[i + 1] = static_cast<float>(r * std::sin(a));
  }
  const torch::Tensor real = real_frames(x).unsqueeze(2).to(torch::kFloat);  // [N, T, 1]
  return x + z * (channel_stds.reshape({1, 1, d}) * static_cast<float>(scale)) * real;  // [N, T, D]
}

torch::Tensor missing_tokens(const torch::Tensor& text_bert, const torch::Tensor& kept) {
  if (text_bert.dim() != 3 || text_bert.size(1) != 3)
    throw DataError("text_bert must be a [N, 3, L] tensor (token ids, attention mask, segment ids)");
  const int64_t n = text_bert.size(0), l = text_bert.size(2);
  if (kept.sizes() != torch::IntArrayRef({n, l})) throw DataError("the kept-token mask must be [N, L]");
  torch::Tensor ids = text_bert.select(1, 0);                      // [N, L]
  const torch::Tensor mask = text_bert.select(1, 1).ne(0);         // [N, L] real tokens
  torch::Tensor keep = kept.clone();                                // [N, L]
  const torch::Tensor length = mask.sum(1);                         // [N] real tokens, [CLS] ... [SEP]
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = length[i].item<int64_t>();
    keep[i][0].fill_(true);                                         // [CLS]
    if (len > 0) keep[i][len - 1].fill_(true);                      // [SEP]
  }
  const torch::Tensor unk = mask.logical_and(keep.logical_not());   // [N, L]
  torch::Tensor out = text_bert.clone();
  out.select(1, 0).copy_(torch::where(unk, torch::full_like(ids, static_cast<double>(kUnkToken)), ids));
  return out;  // [N, 3, L]
}

ModalityStd training_std(const Split& train) {
  return {channel_std(train.text), channel_std(train.audio), channel_std(train.vision)};
}

uint64_t perturbation_key(int64_t seed, results::PerturbKind kind, const std::string& modality) {
  return mix64(mix64(mix64(static_cast<uint64_t>(seed)) ^ (static_cast<uint64_t>(kind) + 1)) ^ text_hash(modality));
}

Split perturb_split(const Split& s, const results::Perturbation& p, const ModalityStd& stds, int64_t seed) {
  Split out = s;
  struct Target {
    const char* name;
    torch::Tensor Split::*member;
    const torch::Tensor* channel_stds;
  };
  const Target targets[] = {{"text", &Split::text, &stds.text}, {"audio", &Split::audio, &stds.audio},
                            {"vision", &Split::vision, &stds.vision}};
  for (const auto& t : targets) {
    if (p.modality != "all" && p.modality != t.name) continue;
    const torch::Tensor& x = s.*(t.member);
    const uint64_t key = perturbation_key(seed, p.kind, t.name);
    if (p.kind == results::PerturbKind::Noise) {
      out.*(t.member) = add_noise(x, *t.channel_stds, p.level, key);
    } else {
      const double rate = p.kind == results::PerturbKind::Drop ? 1.0 : p.level;
      out.*(t.member) = drop_frames(x, kept_frames(x.size(0), x.size(1), rate, key));
      // A BERT reads the tokens: the same rule over the token axis, dropped tokens become [UNK].
      if (t.member == &Split::text && s.text_bert.defined())
        out.text_bert = missing_tokens(s.text_bert, kept_frames(s.text_bert.size(0), s.text_bert.size(2), rate, key));
    }
  }
  return out;
}

std::vector<RobustnessPoint> evaluate_robustness(Trainable& model, const Dataset& data, torch::Device device,
                                                 EvalOptions test_options,
                                                 const std::vector<results::Perturbation>& grid, int64_t seed,
                                                 const std::function<void(const RobustnessPoint&)>& on_point) {
  test_options.with_edges = false, test_options.with_heads = false;
  std::vector<RobustnessPoint> points;
  if (grid.empty()) return points;
  const ModalityStd stds = training_std(data.train);
  for (const auto& p : grid) {
    const Split perturbed = perturb_split(data.test, p, stds, seed);
    const EvalPass pass = evaluate_split(model, perturbed, device, test_options);
    points.push_back({p, results::regression_metrics(pass.predictions, pass.labels), pass.batch_ms});
    if (on_point) on_point(points.back());
  }
  return points;
}

std::vector<results::RobustnessRow> robustness_rows(const RobustnessPoint& p) {
  std::vector<results::RobustnessRow> rows;
  for (const auto& [name, value] : p.metrics.all())
    rows.push_back({p.perturbation.family(), p.perturbation.level, name, value});
  return rows;
}

}  // namespace dmdbench
