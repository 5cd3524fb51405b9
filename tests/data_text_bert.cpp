// The text_bert channel (spec §1.2): read from MMSA pickles as stored ([n,3,L] float: token ids, attention
// mask, segment ids), gathered into batches, checked against a BERT's vocabulary with one sentence per
// problem; and the synthetic generator's text_bert rule (docs/synthetic-data.md), tied to the same latent
// factors as the features.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <iostream>
#include <set>
#include <string>

#include "harness/data/dataset.h"

using namespace dmdbench;

namespace {

const std::string kBertTiny = std::string(DMDBENCH_SHARED_DIR) + "/golden/bert-tiny";

const Dataset& golden() {
  static const Dataset d = load_mmsa(kBertTiny + "/data.pkl", "mosei");
  return d;
}

// A copy of the golden dataset with one text_bert value of the test split changed.
Dataset with_value(int64_t channel, int64_t sample, int64_t position, float value) {
  Dataset d = golden();
  d.test.text_bert = d.test.text_bert.clone();
  d.test.text_bert[sample][channel][position] = value;
  return d;
}

std::string refusal(const Dataset& d, int64_t vocab = 512, int64_t types = 2) {
  try {
    check_text_bert(d, vocab, types);
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

Dataset synth(double scale) {
  SyntheticSpec s;
  s.family = "mosi";
  s.scale = scale;
  return make_synthetic(s);
}

}  // namespace

TEST(DataTextBert, GoldenPickleHasItAsStoredAndBatchesCarryIt) {
  const Dataset& d = golden();
  EXPECT_EQ(d.dims().text, 768);  // the features; the text model reads text_bert instead
  EXPECT_EQ(d.dims().text_bert_len, 50);
  for (const Split* s : {&d.train, &d.valid, &d.test}) {
    ASSERT_TRUE(s->text_bert.defined()) << s->name;
    EXPECT_EQ(s->text_bert.sizes(), (std::vector<int64_t>{s->size(), 3, 50}));
    EXPECT_EQ(s->text_bert.scalar_type(), torch::kFloat32);
  }
  EXPECT_NO_THROW(check_text_bert(d, 512, 2));
  // Channel 0 starts with [CLS] (101) where the mask is on; masks are 0/1 and never on after a 0.
  const torch::Tensor mask = d.test.text_bert.select(1, 1);
  EXPECT_TRUE(mask.eq(0).logical_or(mask.eq(1)).all().item<bool>());
  Batcher b(d.test, 5, false, false, 0);
  const Batch first = b.get(1);
  ASSERT_TRUE(first.text_bert.defined());
  EXPECT_TRUE(torch::equal(first.text_bert, d.test.text_bert.narrow(0, 5, 5)));
}

TEST(DataTextBert, OutOfVocabularyIdsAndBadMasksAreRefusedInOneSentence) {
  EXPECT_NE(refusal(golden(), 100).find("split 'train' text_bert holds "), std::string::npos);
  EXPECT_NE(refusal(golden(), 100).find("token ids outside the vocabulary 0..99"), std::string::npos);
  EXPECT_EQ(
      refusal(with_value(0, 3, 7, 600.0f)),
      "split 'test' text_bert holds 1 token ids outside the vocabulary 0..511 (the first, 600, in sample 3)");
  EXPECT_EQ(
      refusal(with_value(0, 2, 4, -1.0f)),
      "split 'test' text_bert holds 1 token ids outside the vocabulary 0..511 (the first, -1, in sample 2)");
  EXPECT_EQ(refusal(with_value(0, 2, 4, 7.5f)),
            "split 'test' text_bert holds 1 token ids that are not integers (the first, 7.5, in sample 2)");
  EXPECT_EQ(refusal(with_value(1, 5, 0, 0.5f)),
            "split 'test' text_bert holds 1 attention-mask values other than 0 and 1 (the first, 0.5, in "
            "sample 5)");
  EXPECT_EQ(refusal(with_value(2, 1, 3, 2.0f)),
            "split 'test' text_bert holds 1 segment ids outside 0..1 (the first, 2, in sample 1)");
  Dataset none = golden();
  none.valid.text_bert = torch::Tensor();
  EXPECT_NE(refusal(none).find("split 'valid' of mosei:"), std::string::npos) << refusal(none);
  EXPECT_NE(refusal(none).find("has no text_bert"), std::string::npos);
}

TEST(DataTextBert, SyntheticRuleTokensMaskAndLatentFactor) {
  const Dataset d = synth(0.1);
  EXPECT_EQ(d.dims().text_bert_len, 50);
  EXPECT_NO_THROW(check_text_bert(d, kSyntheticVocabulary, 1));
  EXPECT_NE(refusal(d, kSyntheticVocabulary - 1), "");  // the rule uses the last id
  const Split& s = d.train;
  const torch::Tensor ids = s.text_bert.select(1, 0), mask = s.text_bert.select(1, 1);
  EXPECT_TRUE(torch::equal(s.text_bert.select(1, 2), torch::zeros_like(ids)));
  int64_t sentiment_tokens = 0;
  double sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < s.size(); ++i) {
    // Leading padded frames of the features = trailing [PAD] tokens of text_bert.
    int64_t pad = 0;
    while (pad < 50 && s.text.select(0, i).select(0, pad).abs().sum().item<float>() == 0) ++pad;
    const int64_t tokens = mask[i].sum().item<int64_t>();
    ASSERT_EQ(tokens, 50 - pad) << "sample " << i;
    EXPECT_EQ(ids[i][0].item<float>(), 101);                                                         // [CLS]
    EXPECT_EQ(ids[i][tokens - 1].item<float>(), 102);                                                // [SEP]
    if (tokens < 50) EXPECT_EQ(ids[i].narrow(0, tokens, 50 - tokens).abs().sum().item<float>(), 0);  // [PAD]
    // The sentiment words name a bucket of the text's label part; their mean bucket follows the label.
    double bucket_sum = 0;
    int64_t count = 0;
    for (int64_t j = 1; j < tokens - 1; ++j) {
      const int64_t id = static_cast<int64_t>(ids[i][j].item<float>());
      ASSERT_GE(id, 103);
      ASSERT_LT(id, kSyntheticVocabulary);
      if (id < 103 + 16 * 8) bucket_sum += static_cast<double>((id - 103) / 8), ++count;
    }
    ASSERT_GT(count, 0) << "every sample has a signal window";
    std::set<int64_t> buckets;
    for (int64_t j = 1; j < tokens - 1; ++j) {
      const int64_t id = static_cast<int64_t>(ids[i][j].item<float>());
      if (id < 103 + 16 * 8) buckets.insert((id - 103) / 8);
    }
    EXPECT_EQ(buckets.size(), 1u) << "one bucket per sample";
    sentiment_tokens += count;
    const double x = bucket_sum / static_cast<double>(count), y = s.labels[i].item<float>();
    sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y, ++n;
  }
  const double r = (n * sxy - sx * sy) / std::sqrt((n * sxx - sx * sx) * (n * syy - sy * sy));
  std::cout << "[synthetic text_bert] " << sentiment_tokens
            << " sentiment tokens, Pearson r(bucket, label) = " << r << "\n";
  EXPECT_GT(r, 0.7);  // the label is 1.2 z0 + 0.9 u_l0 + (audio, vision, noise): text explains most of it
  // Deterministic: the same seed gives the same tokens, and a smaller scale is a prefix.
  EXPECT_TRUE(torch::equal(synth(0.05).train.text_bert, s.text_bert.narrow(0, 0, synth(0.05).train.size())));
}
