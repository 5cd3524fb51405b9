#include "harness/experiment/dataset_spec.h"

#include <fmt/format.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdlib>

#include "harness/experiment/config.h"

namespace dmdbench {

namespace {

void require_family(const std::string& family) {
  if (family != "mosi" && family != "mosei")
    throw ConfigError(fmt::format("unknown dataset family '{}', expected mosi or mosei", family));
}

}  // namespace

FeatureDims reference_dims(const std::string& family, const std::string& setting) {
  require_family(family);
  const bool mosi = family == "mosi";
  FeatureDims d;
  d.text = 768, d.audio = mosi ? 5 : 74, d.vision = mosi ? 20 : 35;
  if (setting == "aligned") {
    d.text_len = d.audio_len = d.vision_len = 50;
  } else if (setting == "unaligned") {
    d.text_len = 50, d.audio_len = mosi ? 375 : 500, d.vision_len = 500;
  } else {
    throw ConfigError(fmt::format("unknown data setting '{}', expected aligned or unaligned", setting));
  }
  return d;
}

SplitSizes reference_split_sizes(const std::string& family) {
  require_family(family);
  return family == "mosi" ? SplitSizes{1284, 229, 686} : SplitSizes{16326, 1871, 4659};
}

DatasetSpec parse_dataset_spec(const std::string& text) {
  DatasetSpec s;
  s.text = text;
  auto starts = [&](const std::string& p) { return text.rfind(p, 0) == 0; };
  if (starts("synthetic-")) {
    s.synthetic = true;
    std::string name = text.substr(10);
    if (auto at = name.find('@'); at != std::string::npos) {
      const std::string scale = name.substr(at + 1);
      char* end = nullptr;
      s.scale = std::strtod(scale.c_str(), &end);
      if (scale.empty() || end != scale.c_str() + scale.size() || !(s.scale > 0 && s.scale <= 1))
        throw ConfigError(fmt::format("dataset '{}' has scale '{}', expected a number in (0, 1]", text, scale));
      name = name.substr(0, at);
    }
    s.setting = "aligned";
    const std::string suffix = "-unaligned";
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      s.setting = "unaligned";
      name = name.substr(0, name.size() - suffix.size());
    }
    if (name != "mosi" && name != "mosei")
      throw ConfigError(
          fmt::format("unknown synthetic dataset '{}', expected synthetic-mosi, synthetic-mosei, "
                      "synthetic-mosi-unaligned or synthetic-mosei-unaligned",
                      text));
    s.family = name;
    return s;
  }
  for (const char* family : {"mosi", "mosei"}) {
    const std::string prefix = std::string(family) + ":";
    if (starts(prefix)) {
      s.family = family, s.path = text.substr(prefix.size());
      if (s.path.empty()) throw ConfigError(fmt::format("dataset '{}' names no file after '{}'", text, prefix));
      return s;
    }
  }
  std::string lower = text;  // e.g. /data/MOSI/aligned_50.pkl
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower.find("mosei") != std::string::npos) s.family = "mosei";
  else if (lower.find("mosi") != std::string::npos) s.family = "mosi";
  s.path = text;
  return s;
}

void DatasetSpec::require_file() const {
  if (synthetic) return;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw ConfigError(fmt::format("dataset file {} cannot be read: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw ConfigError(fmt::format("dataset file {} is not a regular file", path));
}

const std::string& DatasetSpec::known_family() const {
  if (family.empty())
    throw ConfigError(
        fmt::format("cannot tell whether dataset '{}' is MOSI or MOSEI; write mosi:PATH or mosei:PATH", text));
  return family;
}

}  // namespace dmdbench
