// Reference model configurations for tests, built the one way the harness builds them: the configuration table
// (harness/experiment/config.cpp) sized by the family's reference shapes.
#pragma once

#include <string>

#include "harness/experiment/config.h"
#include "harness/experiment/dataset_spec.h"
#include "harness/training/trainable.h"

namespace dmdbench::testing {

// DMD on the 768-d text features (text_encoder=features), as the golden mosei files were made (use_bert=False).
inline models::DMDConfig reference_dmd(const std::string& family) {
  Config c = reference_config(family, "dmd");
  c.set("text_encoder", std::string("features"));
  return dmd_config_of(c, reference_dims(family));
}

// MulT reads MMSA's unaligned pickles (spec §7.2); nothing in its parameters depends on the lengths.
inline baselines::MulTConfig reference_mult(const std::string& family) {
  return mult_config_of(reference_config(family, "mult"), reference_dims(family, "unaligned"));
}

}  // namespace dmdbench::testing
