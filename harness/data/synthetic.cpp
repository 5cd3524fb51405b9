// Synthetic MOSI / MOSEI: real shapes and split sizes, a known generative structure (docs/synthetic-data.md).
//
// Every number is a pure function of (seed, stream, index) through splitmix64, so samples can be generated in
// parallel, in any order, and the bytes do not depend on the thread count or the LibTorch version.
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "harness/data/dataset.h"
#include "harness/experiment/dataset_spec.h"
#include "harness/io/sha256.h"

namespace dmdbench {
namespace {

constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ULL;
constexpr int kLatent = 4;  // dims of the shared factor z and of each exclusive factor u_m

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
// The i-th output of splitmix64 started at `key`.
uint64_t draw(uint64_t key, uint64_t i) { return mix64(key + (i + 1) * kGamma); }
// A stream key for one purpose: (seed, tag, a, b) -> key.
uint64_t stream(uint64_t seed, uint64_t tag, uint64_t a = 0, uint64_t b = 0) {
  return mix64(mix64(mix64(mix64(seed) ^ tag) ^ a) ^ b);
}
double uniform(uint64_t u) { return static_cast<double>(u >> 11) * 0x1.0p-53; }  // [0, 1)
// Standard normal (Box-Muller) for the few per-sample factors and the fixed projections.
double gauss(uint64_t key, uint64_t i) {
  const double u1 = 1.0 - uniform(draw(key, 2 * i)), u2 = uniform(draw(key, 2 * i + 1));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}
// Frame noise: Irwin-Hall(4) of the four 16-bit lanes of one draw, centred and scaled to unit variance
// (range +-3.46); integer arithmetic until the last multiply, so the loop stays cheap (a MOSEI is 1e9 values).
constexpr float kNoiseUnit = 1.7320508075688772f / 65536.0f;
inline int32_t lane_sum_centred(uint64_t u) {
  return static_cast<int32_t>((u & 0xffff) + ((u >> 16) & 0xffff) + ((u >> 32) & 0xffff) + (u >> 48)) - 131070;
}

enum Tag : uint64_t { kProj = 1, kBias = 2, kSample = 3, kNoise = 4, kText = 5 };

// Per modality (text, audio, vision): signal amplitude, frame noise, weight of u_m[0] in the label.
constexpr double kAmp[3] = {1.0, 0.7, 0.8};
constexpr double kNoiseStd[3] = {0.5, 1.2, 1.0};
constexpr double kLabelWeight[3] = {0.9, 0.4, 0.6};
constexpr double kSharedWeight = 1.2, kLabelNoise = 0.3, kNegInfRate = 0.03, kBiasStd = 0.5;

struct SampleFactors {
  double z[kLatent];
  double u[3][kLatent];
  double eps;
  int64_t pad, win_begin, win_end;  // leading zero frames; signal window [begin, end)
  int64_t neg_inf_frame = -1, neg_inf_channel = -1;
};

SampleFactors sample_factors(uint64_t seed, int split, int64_t i, int64_t T, int64_t audio_dim) {
  const uint64_t k = stream(seed, kSample, static_cast<uint64_t>(split), static_cast<uint64_t>(i));
  SampleFactors f;
  for (int j = 0; j < kLatent; ++j) f.z[j] = gauss(k, j);
  for (int m = 0; m < 3; ++m)
    for (int j = 0; j < kLatent; ++j) f.u[m][j] = gauss(k, kLatent + m * kLatent + j);
  f.eps = gauss(k, 4 * kLatent);
  f.pad = static_cast<int64_t>(draw(k, 100) % 6);
  const int64_t valid = T - f.pad, lo = valid / 4, hi = valid / 2;
  const int64_t len = lo + static_cast<int64_t>(draw(k, 101) % static_cast<uint64_t>(hi - lo + 1));
  f.win_begin = f.pad + static_cast<int64_t>(draw(k, 102) % static_cast<uint64_t>(valid - len + 1));
  f.win_end = f.win_begin + len;
  if (uniform(draw(k, 103)) < kNegInfRate) {
    f.neg_inf_frame = f.pad + static_cast<int64_t>(draw(k, 104) % static_cast<uint64_t>(valid));
    f.neg_inf_channel = 1 + static_cast<int64_t>(draw(k, 105) % static_cast<uint64_t>(audio_dim - 1));
  }
  return f;
}

float label_of(const SampleFactors& f) {
  double y = kSharedWeight * f.z[0] + kLabelNoise * f.eps;
  for (int m = 0; m < 3; ++m) y += kLabelWeight[m] * f.u[m][0];
  const double graded = std::clamp(std::round(3.0 * y) / 3.0, -3.0, 3.0);
  return static_cast<float>(graded) + 0.0f;  // +0.0 turns -0 into 0
}

// Fixed per modality: projection [2k, D] (entries N(0, 1/2k)) and bias [D] (N(0, 0.25)).
struct Projection {
  std::vector<double> w, bias;
  int64_t dim;
};
Projection projection(uint64_t seed, int m, int64_t dim) {
  Projection p;
  p.dim = dim;
  const uint64_t kw = stream(seed, kProj, static_cast<uint64_t>(m)), kb = stream(seed, kBias, static_cast<uint64_t>(m));
  for (int64_t i = 0; i < 2 * kLatent * dim; ++i) p.w.push_back(gauss(kw, static_cast<uint64_t>(i)) / std::sqrt(2.0 * kLatent));
  for (int64_t d = 0; d < dim; ++d) p.bias.push_back(kBiasStd * gauss(kb, static_cast<uint64_t>(d)));
  return p;
}

// The frames of one modality on its own time axis of `len` frames, for a sample whose text (the word axis of
// length T) has `pad` leading padded words. Aligned (len == T): frame u is word u; words before pad are
// padded. Unaligned (len != T, docs/synthetic-data.md): the sample's T - pad valid words are spread over its
// first floor((T - pad) * len / T) frames, frame u belonging to word pad + floor(u * T / len); the frames
// after them are zero padding at the end, as in MMSA's unaligned files.
struct FrameAxis {
  int64_t T, len;
  bool aligned() const { return len == T; }
  int64_t first_valid(int64_t pad) const { return aligned() ? pad : 0; }
  int64_t end_valid(int64_t pad) const { return aligned() ? len : (T - pad) * len / T; }
  int64_t word_of(int64_t u, int64_t pad) const { return aligned() ? u : pad + u * T / len; }
  // The first frame of word t (t >= pad).
  int64_t frame_of(int64_t t, int64_t pad) const { return aligned() ? t : ((t - pad) * len + T - 1) / T; }
};

// x[i, u, d] = 0 for padded frames, else bias[d] + amp * 1[word(u) in window] * (h_i P)[d] + noise_std *
// noise. Summed in float32 in this order (bias + signal-or-0 + noise).
void fill_modality(float* out, const std::vector<SampleFactors>& f, const Projection& p, int m,
                   const FrameAxis& axis, uint64_t noise_key) {
  const int64_t T = axis.len;
  const int64_t D = p.dim, n = static_cast<int64_t>(f.size());
  std::vector<float> bias(p.bias.begin(), p.bias.end());
  const std::vector<float> zeros(static_cast<std::size_t>(D), 0.0f);
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> signal(static_cast<std::size_t>(D));
    for (int64_t i = begin; i < end; ++i) {
      const SampleFactors& s = f[static_cast<std::size_t>(i)];
      double h[2 * kLatent];
      for (int j = 0; j < kLatent; ++j) h[j] = s.z[j], h[kLatent + j] = s.u[m][j];
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int j = 0; j < 2 * kLatent; ++j) acc += h[j] * p.w[static_cast<std::size_t>(j * D + d)];
        signal[static_cast<std::size_t>(d)] = static_cast<float>(kAmp[m] * acc);
      }
      float* x = out + i * T * D;
      const int64_t begin_u = axis.first_valid(s.pad), end_u = axis.end_valid(s.pad);
      std::fill(x, x + begin_u * D, 0.0f);  // padded frames: exactly zero in every channel
      std::fill(x + end_u * D, x + T * D, 0.0f);
      const float noise_scale = static_cast<float>(kNoiseStd[m]) * kNoiseUnit;
      for (int64_t t = begin_u; t < end_u; ++t) {
        const int64_t word = axis.word_of(t, s.pad);
        const float* add = (word >= s.win_begin && word < s.win_end) ? signal.data() : zeros.data();
        // counter of element (i, t, d) is (i*T + t)*D + d; draw(key, c) = mix64(key + (c + 1) * gamma)
        uint64_t c = noise_key + static_cast<uint64_t>((i * T + t) * D) * kGamma;
        float* row = x + t * D;
        for (int64_t d = 0; d < D; ++d) {
          c += kGamma;
          row[d] = bias[d] + add[d] + noise_scale * static_cast<float>(lane_sum_centred(mix64(c)));
        }
        if (row[0] == 0.0f) row[0] = 1e-3f;  // models detect padding by channel 0 == 0
      }
    }
  });
}

// text_bert (docs/synthetic-data.md): [CLS] words [SEP] [PAD]..., as many tokens as the sample has unpadded
// frames; a word inside the signal window names the bucket of the text's label part s = 1.2 z0 + 0.9 u_l0 (16
// buckets of 0.5 over [-4, 4), 8 synonyms each), a word outside it is one of 256 neutral fillers.
constexpr int64_t kPadId = 0, kClsId = 101, kSepId = 102, kSentimentBase = 103, kSynonyms = 8, kBuckets = 16,
                  kFillerBase = kSentimentBase + kBuckets * kSynonyms, kFillers = 256;

void fill_text_bert(float* out, const SampleFactors& f, uint64_t key, int64_t T) {
  float* ids = out;
  float* mask = out + T;
  float* types = out + 2 * T;
  const int64_t tokens = T - f.pad;  // [CLS] + words + [SEP]
  const double s = kSharedWeight * f.z[0] + kLabelWeight[0] * f.u[0][0];
  const int64_t bucket = std::clamp<int64_t>(static_cast<int64_t>(std::floor((s + 4.0) * 2.0)), 0, kBuckets - 1);
  for (int64_t j = 0; j < T; ++j) {
    int64_t id = kPadId;
    if (j == 0) {
      id = kClsId;
    } else if (j == tokens - 1) {
      id = kSepId;
    } else if (j < tokens - 1) {
      const uint64_t u = draw(key, static_cast<uint64_t>(j));
      const bool in_window = f.pad + j >= f.win_begin && f.pad + j < f.win_end;
      id = in_window ? kSentimentBase + bucket * kSynonyms + static_cast<int64_t>(u % kSynonyms)
                     : kFillerBase + static_cast<int64_t>(u % kFillers);
    }
    ids[j] = static_cast<float>(id);
    mask[j] = j < tokens ? 1.0f : 0.0f;
    types[j] = 0.0f;
  }
}

constexpr const char* kSplitNames[3] = {"train", "valid", "test"};
constexpr const char* kModalityNames[3] = {"text", "audio", "vision"};

}  // namespace

Dataset make_synthetic(const SyntheticSpec& spec) {
  if (spec.family != "mosi" && spec.family != "mosei")
    throw DataError(fmt::format("unknown synthetic family '{}', expected mosi or mosei", spec.family));
  if (spec.setting != "aligned" && spec.setting != "unaligned")
    throw DataError(
        fmt::format("unknown synthetic setting '{}', expected aligned or unaligned", spec.setting));
  const bool unaligned = spec.setting == "unaligned";
  const SplitSizes real = reference_split_sizes(spec.family);
  const FeatureDims widths = reference_dims(spec.family, spec.setting);
  int64_t sizes[3] = {real.train, real.valid, real.test}, dims[3] = {widths.text, widths.audio, widths.vision};
  if (!(spec.scale > 0) || spec.scale > 16) {
    throw DataError(fmt::format("synthetic scale {} is out of range, expected a number in (0, 16]", spec.scale));
  }
  if (spec.seq_len < 8 || spec.seq_len > 100000) {
    throw DataError(fmt::format("synthetic sequence length {} is out of range, expected at least 8", spec.seq_len));
  }
  const int64_t T = spec.seq_len;
  for (auto& s : sizes) s = std::max<int64_t>(8, std::llround(spec.scale * static_cast<double>(s)));

  // Frame axes (text, audio, vision): the word axis T for text and for aligned data; the reference's
  // unaligned lengths (MOSI 375/500, MOSEI 500/500) scaled to T for audio and vision.
  const FrameAxis axes[3] = {{T, T},
                             {T, unaligned ? widths.audio_len * T / widths.text_len : T},
                             {T, unaligned ? widths.vision_len * T / widths.text_len : T}};

  Dataset ds;
  ds.name = "synthetic-" + spec.family + (unaligned ? "-unaligned" : "");
  ds.family = spec.family;
  ds.setting = spec.setting;
  std::string key = fmt::format(
      "dmdbench-synthetic v1 family={} scale={} seed={} seq_len={} sizes={}/{}/{} dims={}/{}/{}", spec.family,
      spec.scale, spec.seed, T, sizes[0], sizes[1], sizes[2], dims[0], dims[1], dims[2]);
  if (unaligned) key += fmt::format(" unaligned lengths={}/{}/{}", axes[0].len, axes[1].len, axes[2].len);
  ds.source_sha256 = sha256_string(key);
  const Projection proj[3] = {projection(spec.seed, 0, dims[0]), projection(spec.seed, 1, dims[1]),
                              projection(spec.seed, 2, dims[2])};
  Split* out[3] = {&ds.train, &ds.valid, &ds.test};
  for (int s = 0; s < 3; ++s) {
    Split& sp = *out[s];
    sp.name = kSplitNames[s];
    const int64_t n = sizes[s];
    std::vector<SampleFactors> f(static_cast<std::size_t>(n));
    at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) f[static_cast<std::size_t>(i)] = sample_factors(spec.seed, s, i, T, dims[1]);
    });
    torch::Tensor* dst[3] = {&sp.text, &sp.audio, &sp.vision};
    for (int m = 0; m < 3; ++m) {
      *dst[m] = torch::empty({n, axes[m].len, dims[m]}, torch::kFloat32);
      fill_modality(dst[m]->data_ptr<float>(), f, proj[m], m, axes[m],
                    stream(spec.seed, kNoise, static_cast<uint64_t>(m), static_cast<uint64_t>(s)));
    }
    sp.text_bert = torch::empty({n, 3, T}, torch::kFloat32);  // [n,3,T]
    float* tb = sp.text_bert.data_ptr<float>();
    at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        fill_text_bert(tb + i * 3 * T, f[static_cast<std::size_t>(i)],
                       stream(spec.seed, kText, static_cast<uint64_t>(s), static_cast<uint64_t>(i)), T);
    });
    // A few -inf in audio (never channel 0, never a padded frame), cleaned to 0 as the MMSA loader does.
    NonFiniteCount audio_rec{sp.name, "audio", 0, 0, 0, "float32"};
    float* audio = sp.audio.data_ptr<float>();
    sp.labels = torch::empty({n}, torch::kFloat32);
    float* labels = sp.labels.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      const SampleFactors& fi = f[static_cast<std::size_t>(i)];
      if (fi.neg_inf_frame >= 0) {
        const int64_t frame = axes[1].frame_of(fi.neg_inf_frame, fi.pad);
        audio[(i * axes[1].len + frame) * dims[1] + fi.neg_inf_channel] = 0.0f;
        ++audio_rec.neg_inf;
      }
      labels[i] = label_of(fi);
      sp.ids.push_back(fmt::format("{}{}$_$0", sp.name, i));
    }
    for (int m = 0; m < 3; ++m) {
      ds.non_finite.push_back(m == 1 ? audio_rec : NonFiniteCount{sp.name, kModalityNames[m], 0, 0, 0, "float32"});
    }
    ds.non_finite.push_back(NonFiniteCount{sp.name, "labels", 0, 0, 0, "float32"});
  }
  return ds;
}

}  // namespace dmdbench
