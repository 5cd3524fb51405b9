// The synthetic generator: determinism, real shapes, label grid, padding, -inf, and the informativeness order
// (ridge regression on time-averaged features: text > vision > audio).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>

#include "harness/data/dataset.h"
#include "harness/io/sha256.h"

using namespace dmdbench;

namespace {

Dataset synth(const std::string& family, double scale, uint64_t seed = 20230318) {
  SyntheticSpec s;
  s.family = family;
  s.scale = scale;
  s.seed = seed;
  return make_synthetic(s);
}

bool same(const Dataset& a, const Dataset& b) {
  for (const char* name : {"train", "valid", "test"}) {
    const Split &x = a.split(name), &y = b.split(name);
    if (!torch::equal(x.text, y.text) || !torch::equal(x.audio, y.audio) || !torch::equal(x.vision, y.vision) ||
        !torch::equal(x.labels, y.labels) || x.ids != y.ids)
      return false;
  }
  return true;
}

std::string bytes_sha(const Dataset& d) {
  std::string all;
  for (const Split* s : {&d.train, &d.valid, &d.test}) {
    for (const torch::Tensor& t : {s->text, s->audio, s->vision, s->labels}) {
      all += sha256_bytes(t.data_ptr(), static_cast<std::size_t>(t.numel() * t.element_size()));
    }
  }
  return sha256_string(all);
}

// Mean over the non-padded frames (channel 0 != 0), [N, D] float64.
torch::Tensor time_average(const torch::Tensor& x) {
  const torch::Tensor mask = x.select(2, 0).ne(0).to(torch::kFloat64).unsqueeze(2);  // [N, T, 1]
  return (x.to(torch::kFloat64) * mask).sum(1) / mask.sum(1);
}

// Closed-form ridge fit on train, Pearson r of the predictions on test.
double ridge_r(const torch::Tensor& xtr, const torch::Tensor& ytr, const torch::Tensor& xte, const torch::Tensor& yte,
               double lambda) {
  const torch::Tensor mu = xtr.mean(0, true);
  const torch::Tensor a = xtr - mu, b = xte - mu;
  const torch::Tensor y = ytr.to(torch::kFloat64) - ytr.to(torch::kFloat64).mean();
  const torch::Tensor gram = a.t().mm(a) + lambda * torch::eye(a.size(1), torch::kFloat64);
  const torch::Tensor w = at::linalg_solve(gram, a.t().mm(y.unsqueeze(1)));
  const torch::Tensor p = b.mm(w).squeeze(1), t = yte.to(torch::kFloat64);
  const torch::Tensor pc = p - p.mean(), tc = t - t.mean();
  return ((pc * tc).sum() / (pc.norm() * tc.norm())).item<double>();
}

}  // namespace

TEST(Synthetic, SameSeedSameBytesDifferentSeedDifferent) {
  const Dataset a = synth("mosi", 0.05, 11), b = synth("mosi", 0.05, 11), c = synth("mosi", 0.05, 12);
  EXPECT_TRUE(same(a, b));
  EXPECT_FALSE(torch::equal(a.train.text, c.train.text));
  EXPECT_FALSE(torch::equal(a.train.labels, c.train.labels));
  EXPECT_EQ(a.source_sha256, b.source_sha256);
  EXPECT_NE(a.source_sha256, c.source_sha256);
  EXPECT_NE(a.source_sha256, synth("mosi", 0.06, 11).source_sha256);
  // independent of the thread count
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Dataset d = synth("mosi", 0.05, 11);
  at::set_num_threads(threads);
  EXPECT_TRUE(same(a, d));
  // a smaller scale is a prefix of a larger one (samples are indexed, not drawn in sequence)
  const Dataset e = synth("mosi", 0.1, 11);
  EXPECT_TRUE(torch::equal(a.train.text, e.train.text.slice(0, 0, a.train.size())));
}

TEST(Synthetic, BytesAreStableAcrossBuilds) {
  // If the generator changes on purpose, bump "v1" in its parameter string and update these two values.
  const Dataset a = synth("mosi", 0.01, 1);
  EXPECT_EQ(a.source_sha256, sha256_string("dmdbench-synthetic v1 family=mosi scale=0.01 seed=1 seq_len=50 "
                                           "sizes=13/8/8 dims=768/5/20"));
  EXPECT_EQ(bytes_sha(a), "aa5cb35e3823d226cf9346560ed6febc1a95782ae0029a9271878aae87f305c9");
}

TEST(Synthetic, RealShapesAndSplitSizes) {
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset mosi = synth("mosi", 1.0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ timing ] make_synthetic(mosi, full size): " << seconds << " s\n";
  EXPECT_EQ(mosi.name, "synthetic-mosi");
  EXPECT_EQ(mosi.setting, "aligned");

  EXPECT_EQ(mosi.train.size(), 1284);
  EXPECT_EQ(mosi.valid.size(), 229);
  EXPECT_EQ(mosi.test.size(), 686);
  EXPECT_EQ(mosi.train.text.sizes(), (std::vector<int64_t>{1284, 50, 768}));
  EXPECT_EQ(mosi.valid.audio.sizes(), (std::vector<int64_t>{229, 50, 5}));
  EXPECT_EQ(mosi.test.vision.sizes(), (std::vector<int64_t>{686, 50, 20}));
  EXPECT_EQ(mosi.test.ids.size(), 686u);
  const Dataset mosei = synth("mosei", 0.01);
  EXPECT_EQ(mosei.family, "mosei");
  EXPECT_EQ(mosei.train.size(), 163);
  EXPECT_EQ(mosei.valid.size(), 19);
  EXPECT_EQ(mosei.test.size(), 47);
  EXPECT_EQ(mosei.train.audio.sizes(), (std::vector<int64_t>{163, 50, 74}));
  EXPECT_EQ(mosei.train.vision.sizes(), (std::vector<int64_t>{163, 50, 35}));
  const Dataset tiny = synth("mosei", 0.0001);
  EXPECT_EQ(tiny.train.size(), 8);  // at least 8 per split
  EXPECT_EQ(tiny.test.size(), 8);
  // feature magnitudes are O(1)
  const double sd = mosi.train.text.std().item<double>(), mean = mosi.train.text.abs().mean().item<double>();
  EXPECT_GT(sd, 0.3);
  EXPECT_LT(sd, 3.0);
  EXPECT_LT(mean, 3.0);
  EXPECT_LT(mosi.train.audio.abs().max().item<double>(), 20.0);
  EXPECT_THROW(synth("iemocap", 1.0), DataError);
}

TEST(Synthetic, LabelsOnTheThirdsGridWithExactZeros) {
  const Dataset d = synth("mosi", 0.5);
  const torch::Tensor y = torch::cat({d.train.labels, d.valid.labels, d.test.labels});
  EXPECT_LE(y.max().item<float>(), 3.0f);
  EXPECT_GE(y.min().item<float>(), -3.0f);
  EXPECT_LT((y * 3 - (y * 3).round()).abs().max().item<float>(), 1e-5f);
  const double zeros = y.eq(0).to(torch::kFloat64).mean().item<double>();
  EXPECT_GE(zeros, 0.05);
  EXPECT_LE(zeros, 0.10);
  EXPECT_GT(y.std().item<double>(), 1.0);  // spread over the scale, not collapsed on 0
  EXPECT_EQ(y.eq(3).sum().item<int64_t>() + y.eq(-3).sum().item<int64_t>() > 0, true);
}

TEST(Synthetic, LeadingPaddingIsExactlyZeroAndChannelZeroMarksRealFrames) {
  const Dataset d = synth("mosi", 0.2);
  int64_t seen[6] = {0, 0, 0, 0, 0, 0};
  for (const Split* s : {&d.train, &d.valid, &d.test}) {
    const torch::Tensor zero_text = s->text.abs().sum(2).eq(0);      // [N, T] all channels zero
    const torch::Tensor zero_audio = s->audio.abs().sum(2).eq(0);
    const torch::Tensor zero_vision = s->vision.abs().sum(2).eq(0);
    const torch::Tensor ch0 = s->text.select(2, 0).ne(0);            // [N, T]
    for (int64_t i = 0; i < s->size(); ++i) {
      const int64_t pad = zero_text[i].sum().item<int64_t>();
      ASSERT_LE(pad, 5) << s->name << " " << i;
      ++seen[pad];
      // the zero frames are the leading ones, the same in every modality, and the rest have channel 0 != 0
      EXPECT_EQ(zero_text[i].slice(0, 0, pad).all().item<bool>(), true);
      EXPECT_TRUE(torch::equal(zero_text[i], zero_audio[i]));
      EXPECT_TRUE(torch::equal(zero_text[i], zero_vision[i]));
      EXPECT_EQ(ch0[i].slice(0, pad).all().item<bool>(), true);
      EXPECT_EQ(s->audio[i].select(1, 0).slice(0, pad).ne(0).all().item<bool>(), true);
      EXPECT_EQ(s->vision[i].select(1, 0).slice(0, pad).ne(0).all().item<bool>(), true);
    }
  }
  for (int p = 0; p <= 5; ++p) EXPECT_GT(seen[p], 0) << "no sample with " << p << " padded frames";
}

TEST(Synthetic, AudioHadNegativeInfinityCleanedAsTheLoaderDoes) {
  const Dataset d = synth("mosi", 0.5);
  int64_t neg_inf = 0;
  for (const auto& c : d.non_finite) {
    if (c.modality == "audio") neg_inf += c.neg_inf;
    EXPECT_EQ(c.nan, 0);
    EXPECT_EQ(c.pos_inf, 0);
    if (c.modality != "audio") {
      EXPECT_EQ(c.neg_inf, 0) << c.split << " " << c.modality;
    }
    EXPECT_EQ(c.source_dtype, "float32");
  }
  EXPECT_GT(neg_inf, 10);   // about 3% of ~1100 samples
  EXPECT_LT(neg_inf, 100);
  for (const Split* s : {&d.train, &d.valid, &d.test}) EXPECT_TRUE(torch::isfinite(s->audio).all().item<bool>());
}

TEST(Synthetic, InformativenessTextOverVisionOverAudio) {
  const Dataset d = synth("mosi", 0.5);
  double r[3];
  const char* names[3] = {"text", "audio", "vision"};
  for (int m = 0; m < 3; ++m) {
    auto pick = [&](const Split& s) { return m == 0 ? s.text : (m == 1 ? s.audio : s.vision); };
    r[m] = ridge_r(time_average(pick(d.train)), d.train.labels, time_average(pick(d.test)), d.test.labels, 10.0);
    std::cout << "[ ridge ] " << names[m] << " test r = " << r[m] << "\n";
  }
  EXPECT_GT(r[0], r[2]);
  EXPECT_GT(r[2], r[1]);
  EXPECT_GT(r[0], 0.7);
  EXPECT_GT(r[1], 0.05);  // audio is weak but still informative
}

// Unaligned (docs/synthetic-data.md): the reference's lengths, the aligned dataset's text and labels, and
// each sample's audio/vision frames spread over the first floor((50 - pad) * T_m / 50) frames, zero-padded at
// the end.
TEST(Synthetic, UnalignedHasTheReferenceLengthsAndSpreadsFramesByTheDocumentedRule) {
  for (const char* family : {"mosi", "mosei"}) {
    SCOPED_TRACE(family);
    SyntheticSpec s;
    s.family = family, s.scale = 0.0005, s.setting = "unaligned";
    const Dataset u = make_synthetic(s);
    s.setting = "aligned";
    const Dataset a = make_synthetic(s);
    EXPECT_EQ(u.name, std::string("synthetic-") + family + "-unaligned");
    EXPECT_EQ(u.setting, "unaligned");
    EXPECT_NE(u.source_sha256, a.source_sha256);
    const FeatureDims d = u.dims(), want = reference_dims(family, "unaligned");
    EXPECT_EQ(std::vector<int64_t>({d.text_len, d.audio_len, d.vision_len}),
              std::vector<int64_t>({want.text_len, want.audio_len, want.vision_len}));
    for (const Split* sp : {&u.train, &u.test}) {
      const Split& al = a.split(sp->name);
      EXPECT_TRUE(torch::equal(sp->text, al.text));
      EXPECT_TRUE(torch::equal(sp->labels, al.labels));
      for (int64_t i = 0; i < sp->size(); ++i) {
        const int64_t pad = sp->text[i].select(1, 0).eq(0).sum().item<int64_t>();  // leading padded words
        for (const torch::Tensor* x : {&sp->audio, &sp->vision}) {
          const int64_t len = x->size(1), valid = (50 - pad) * len / 50;
          const torch::Tensor frames = (*x)[i];  // [T_m, D]
          EXPECT_EQ(frames.select(1, 0).ne(0).sum().item<int64_t>(), valid)
              << "channel 0 non-zero on valid frames";
          EXPECT_EQ(frames.slice(0, valid).abs().sum().item<double>(), 0.0) << "zero padding at the end";
        }
      }
    }
  }
  EXPECT_THROW(
      [] {
        SyntheticSpec bad;
        bad.setting = "sideways";
        make_synthetic(bad);
      }(),
      DataError);
}
