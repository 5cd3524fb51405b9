// Datasets as tensors: MMSA feature pickles (aligned or unaligned) and the synthetic MOSI/MOSEI generator.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "harness/experiment/dataset_spec.h"

namespace dmdbench {

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One split: N samples. Feature tensors are float32, contiguous, on CPU.
struct Split {
  std::string name;               // "train" | "valid" | "test"
  torch::Tensor text;             // [N, T_l, D_l]  precomputed text features (768-d BERT, or any width)
  // [N, 3, L] float32 as MMSA stores it (spec §1.2): channel 0 token ids, 1 attention mask (1 = token), 2 segment
  // ids, all integral; undefined when the file has no text_bert. Ranges are checked against a BERT by
  // check_text_bert (the vocabulary is the model's).
  torch::Tensor text_bert;
  torch::Tensor audio;            // [N, T_a, D_a]  (-inf replaced by 0, as the reference loader does)
  torch::Tensor vision;           // [N, T_v, D_v]
  torch::Tensor labels;           // [N] float32 regression labels in [-3, 3]
  std::vector<std::string> ids;   // "videoid$_$clipid"
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// Per split and modality (text, audio, vision, labels): non-finite values found while loading, before cleaning,
// and the dtype the file stored (everything is cast to float32), for `data info`.
struct NonFiniteCount {
  std::string split, modality;
  int64_t nan = 0, neg_inf = 0, pos_inf = 0;
  std::string source_dtype;  // "float32" | "float64" | ...
};

struct Dataset {
  std::string name;        // "synthetic-mosi", "mosi:/path/aligned_50.pkl", ...
  std::string family;      // "mosi" | "mosei" (selects the model config)
  std::string setting;     // "aligned" | "unaligned"
  std::string source_sha256;  // SHA-256 of the file, or of the generator's parameters for synthetic data
  Split train, valid, test;
  std::vector<NonFiniteCount> non_finite;  // as found in the file, before cleaning
  const Split& split(const std::string& which) const;  // throws DataError for an unknown name
  FeatureDims dims() const;  // widths and lengths of the training split, which every split shares
};

// The text_bert channel of every split against a BERT's vocabulary: token ids integral in [0, vocab), attention
// mask 0 or 1, segment ids integral in [0, type_vocab). DataError, one sentence naming the split, what is wrong,
// how many values and the first one, or that the dataset has no text_bert at all.
void check_text_bert(const Dataset& data, int64_t vocab, int64_t type_vocab);

struct LoadOptions {
  bool zero_nan = false;      // replace NaN and ±inf in the features by 0 instead of refusing the file
  bool inspect = false;       // `data info`: count every non-finite value, replace them all by 0, refuse nothing
  bool compute_sha256 = true;
};

// Load an MMSA pickle ({train, valid, test} dicts). family is "mosi" or "mosei" (the audio and vision dims must
// match: 5/20 or 74/35; the text features may have any width), or "" to guess it from the audio dim. text_bert
// [n,3,L] is read when present (non-finite values refused). Checks shapes across keys and splits and names the
// wrong key; refuses NaN and ±inf in the features unless zero_nan and in the labels always (audio -inf becomes 0,
// as the reference loader does). The file
// is memory-mapped and every modality is copied once, straight into its float32 tensor. Errors: DataError.
Dataset load_mmsa(const std::string& path, const std::string& family, const LoadOptions& opts = {});

// Token ids of the synthetic text_bert channel lie below this (a BERT needs at least this vocabulary).
constexpr int64_t kSyntheticVocabulary = 487;

// The synthetic generator (docs/synthetic-data.md gives the formulas). Deterministic from the seed with its own
// counter-based generator (not torch's), so the bytes do not depend on the thread count or the LibTorch version.
struct SyntheticSpec {
  std::string family = "mosi";  // mosi: 768/5/20, 1284/229/686; mosei: 768/74/35, 16326/1871/4659
  double scale = 1.0;           // fraction of the real split sizes (at least 8 samples per split)
  uint64_t seed = 20230318;
  int64_t seq_len = 50;             // T of the text (the word axis)
  std::string setting = "aligned";  // "unaligned": audio/vision on the reference's longer axes, scaled to
                                    // seq_len (MOSI 375/500, MOSEI 500/500 at T = 50)
};
Dataset make_synthetic(const SyntheticSpec& spec);

// "synthetic-mosi", "synthetic-mosei[-unaligned][@scale]", "mosi:PATH", "mosei:PATH", or a bare PATH (family
// guessed from the feature dims). Used by every verb that takes --dataset.
Dataset open_dataset(const std::string& spec, const LoadOptions& opts = {}, double synthetic_scale = 1.0,
                     uint64_t synthetic_seed = 20230318);

// A mini-batch on the run's device.
struct Batch {
  torch::Tensor text, audio, vision;  // [B, T, D]
  torch::Tensor text_bert;            // [B, 3, L] when the split has it
  torch::Tensor labels;               // [B]
  torch::Tensor index;                // [B] int64 sample indices into the split (stays on the CPU)
};

// Shuffling from its own seeded generator (splitmix64 + Fisher-Yates; never the global RNG), optional drop-last,
// device transfer. The order is the file order until new_epoch() is called with shuffle on; each new_epoch()
// draws the next permutation, so epoch e's order depends only on (seed, e). num_batches(): ceil(N / B), or
// floor(N / B) with drop_last. get(i) throws DataError when i is out of range.
class Batcher {
 public:
  Batcher(const Split& split, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed,
          torch::Device device = torch::kCPU);
  void new_epoch();          // reshuffles (when shuffle) from the batcher's own generator
  int64_t num_batches() const;
  Batch get(int64_t i) const;  // gathers rows and moves them to the device once
  const std::vector<int64_t>& order() const { return order_; }

 private:
  const Split* split_;
  int64_t batch_size_;
  bool shuffle_, drop_last_;
  uint64_t rng_state_;
  torch::Device device_;
  std::vector<int64_t> order_;
};

}  // namespace dmdbench
