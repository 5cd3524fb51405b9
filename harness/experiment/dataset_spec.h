// What a --dataset value names, parsed in one place, and the reference shapes of the two dataset families
// (spec §1.1, §5.3). Every verb, the plan, the data loader and the reports read these. No LibTorch.
#pragma once

#include <cstdint>
#include <string>

namespace dmdbench {

// Feature widths and sequence lengths of one dataset: what the model is sized from.
struct FeatureDims {
  int64_t text = 768, audio = 5, vision = 20;          // raw feature widths (l, a, v)
  int64_t text_len = 50, audio_len = 50, vision_len = 50;  // sequence lengths T (l, a, v)
  int64_t text_bert_len = 0;  // L of the text_bert channel [N,3,L] (0: the dataset has none)
};

// The real files' shapes per family and setting ("aligned": every length 50; "unaligned": MOSI l/a/v 50/375/500,
// MOSEI 50/500/500) and split sizes (MOSI 1284/229/686, MOSEI 16326/1871/4659). ConfigError for anything else.
FeatureDims reference_dims(const std::string& family, const std::string& setting = "aligned");
struct SplitSizes {
  int64_t train, valid, test;
};
SplitSizes reference_split_sizes(const std::string& family);

struct DatasetSpec {
  std::string text;          // as given on the command line
  bool synthetic = false;    // synthetic-<family>[@scale]
  std::string family;        // "mosi" | "mosei"; "" for a bare PATH that names neither (the loader guesses)
  std::string path;          // the MMSA pickle (real data)
  double scale = 0;          // synthetic: the @scale suffix in (0, 1]; 0 = the profile's fraction
  std::string setting;  // synthetic: "aligned" or "unaligned" (the -unaligned suffix); "" for a file, whose
                        // setting the loader detects from its lengths
  // The family, or ConfigError saying to write mosi:PATH or mosei:PATH (what a plan needs before loading).
  const std::string& known_family() const;
  // ConfigError when a real dataset's file is missing or not a regular file (checked before anything is stored).
  void require_file() const;
};

// "synthetic-mosi", "synthetic-mosei@0.1", "synthetic-mosi-unaligned[@scale]", "mosi:PATH", "mosei:PATH", or
// a bare PATH (its family read from the path when it names mosi or mosei, e.g. /data/MOSI/aligned_50.pkl).
// ConfigError (one sentence) for anything else.
DatasetSpec parse_dataset_spec(const std::string& text);

}  // namespace dmdbench
