#include "harness/data/data_info.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>

#include "harness/io/bert_folder.h"
#include "harness/io/checkpoint.h"
#include "harness/data/dataset.h"
#include "harness/experiment/dataset_spec.h"

namespace dmdbench {
namespace {

std::string shape_of(const torch::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ",")); }

std::string short_dtype(const std::string& d) {
  if (d == "float32") return "f32";
  if (d == "float64") return "f64";
  return d;
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kFloat64: return "float64";
    case torch::kFloat16: return "float16";
    case torch::kBFloat16: return "bfloat16";
    case torch::kInt64: return "int64";
    case torch::kInt32: return "int32";
    case torch::kInt16: return "int16";
    case torch::kInt8: return "int8";
    case torch::kUInt8: return "uint8";
    case torch::kBool: return "bool";
    default: return c10::toString(t);
  }
}

const NonFiniteCount* find_count(const Dataset& ds, const std::string& split, const std::string& modality) {
  for (const auto& c : ds.non_finite) {
    if (c.split == split && c.modality == modality) return &c;
  }
  return nullptr;
}

}  // namespace

int data_info(const std::string& spec, std::ostream& out) {
  const auto t0 = std::chrono::steady_clock::now();
  LoadOptions opts;
  opts.inspect = true;  // report non-finite values instead of refusing the file
  const Dataset ds = open_dataset(spec, opts);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool synthetic = spec.rfind("synthetic-", 0) == 0;

  const FeatureDims dims = ds.dims();
  out << fmt::format("dataset  {} (family {}, {}; text: {}-d features{})\n", ds.name, ds.family, ds.setting,
                     dims.text,
                     dims.text_bert_len > 0 ? fmt::format(" and text_bert [3,{}] for a BERT", dims.text_bert_len)
                                            : std::string(", no text_bert"));
  const FeatureDims ref = reference_dims(ds.family);
  const bool as_reference = dims.text == ref.text && dims.audio == ref.audio && dims.vision == ref.vision;
  out << fmt::format("widths   text {} / audio {} / vision {} ({}; the projections read these){}\n", dims.text,
                     dims.audio, dims.vision,
                     as_reference ? fmt::format("the reference's {} widths", ds.family)
                                  : fmt::format("the reference's {} widths are {} / {} / {}", ds.family, ref.text,
                                                ref.audio, ref.vision),
                     dims.text == 300 ? "; 300-d text: GloVe features" : "");
  out << fmt::format("sha256   {} ({})\n", ds.source_sha256,
                     synthetic ? "of the generator's parameters" : "of the file");
  out << fmt::format("{:<6} {:>6}  {:<17} {:<17} {:<17} {:>8} {:>8} {:>8} {:>7}\n", "split", "n", "text [T,D]",
                     "audio [T,D]", "vision [T,D]", "min", "max", "mean", "zeros");
  for (const Split* s : {&ds.train, &ds.valid, &ds.test}) {
    auto col = [&](const torch::Tensor& t, const char* modality) {
      const NonFiniteCount* c = find_count(ds, s->name, modality);
      return fmt::format("[{},{}] {}", t.size(1), t.size(2), short_dtype(c ? c->source_dtype : "float32"));
    };
    const torch::Tensor y = s->labels.to(torch::kFloat64);
    const int64_t n = s->size();
    const double zeros = n > 0 ? y.eq(0).sum().item<double>() / static_cast<double>(n) : 0.0;
    out << fmt::format("{:<6} {:>6}  {:<17} {:<17} {:<17} {:>8.3f} {:>8.3f} {:>8.3f} {:>6.1f}%\n", s->name, n,
                       col(s->text, "text"), col(s->audio, "audio"), col(s->vision, "vision"),
                       n ? y.min().item<double>() : 0.0, n ? y.max().item<double>() : 0.0,
                       n ? y.mean().item<double>() : 0.0, 100.0 * zeros);
  }
  out << "non-finite values as stored (audio -inf becomes 0 as in the reference loader; NaN is refused when "
         "training unless zero_nan):\n";
  out << fmt::format("{:<6} {:<7} {:>10} {:>10} {:>10}\n", "split", "key", "NaN", "-inf", "+inf");
  for (const auto& c : ds.non_finite) {
    out << fmt::format("{:<6} {:<7} {:>10} {:>10} {:>10}\n", c.split, c.modality, c.nan, c.neg_inf, c.pos_inf);
  }
  out << fmt::format("loaded in {:.2f} s\n", seconds);
  return 0;
}

int inspect_checkpoint(const std::string& path, std::ostream& out) {
  const StateDict state = read_checkpoint(path);
  std::size_t width = 4;
  for (const auto& [name, t] : state) width = std::max(width, name.size());
  int64_t total = 0;
  out << fmt::format("{:<{}}  {:<16} {}\n", "name", width, "shape", "dtype");
  for (const auto& [name, t] : state) {
    out << fmt::format("{:<{}}  {:<16} {}\n", name, width, shape_of(t), dtype_name(t.scalar_type()));
    total += t.numel();
  }
  out << fmt::format("{} tensors, {} elements in all\n", state.size(), total);
  return 0;
}

int make_random_bert_folder(const std::string& config_json_path, const std::string& out_dir, uint64_t seed,
                            std::ostream& out) {
  std::ifstream in(config_json_path, std::ios::binary);
  if (!in) throw BertFolderError(fmt::format("cannot read {}", config_json_path));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const models::BertConfig config = parse_bert_config(text, config_json_path);
  torch::manual_seed(seed);
  models::Bert model(config);
  write_bert_folder(out_dir, config, *model);
  const BertFolderIdentity id = bert_folder_identity(out_dir);
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  out << fmt::format("wrote a random BERT ({} layers, hidden {}, vocabulary {}; {} parameters, seed {}) to {}\n"
                     "weights sha256 {}\n",
                     config.layers, config.hidden, config.vocab, parameters, seed, out_dir,
                     id.weights_sha256);
  return 0;
}

}  // namespace dmdbench
