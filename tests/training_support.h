// Synthetic MOSI at a given scale, built once per scale and shared by the training tests of one executable.
#pragma once

#include <map>

#include "harness/data/dataset.h"

namespace dmdbench::testing_support {

inline const Dataset& synthetic_mosi(double scale) {
  static std::map<double, Dataset> cache;
  auto it = cache.find(scale);
  if (it == cache.end()) {
    SyntheticSpec s;
    s.family = "mosi";
    s.scale = scale;
    it = cache.emplace(scale, make_synthetic(s)).first;
  }
  return it->second;
}

}  // namespace dmdbench::testing_support
