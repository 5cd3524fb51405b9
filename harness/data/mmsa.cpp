// MMSA feature pickles -> Dataset: {train, valid, test} dicts of numpy arrays, read through the restricted
// unpickler from a memory map; each modality is copied once, from the map straight into its float32 tensor.
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <cstring>

#include "harness/data/dataset.h"
#include "harness/experiment/config.h"
#include "harness/experiment/dataset_spec.h"
#include "harness/io/pickle.h"
#include "harness/io/sha256.h"

namespace dmdbench {

namespace pk = pickle;

const Split& Dataset::split(const std::string& which) const {
  if (which == "train") return train;
  if (which == "valid") return valid;
  if (which == "test") return test;
  throw DataError(fmt::format("unknown split '{}', expected train, valid or test", which));
}

namespace {

const char* const kSplits[] = {"train", "valid", "test"};
const char* const kModalities[] = {"text", "audio", "vision"};

struct Counts {
  std::atomic<int64_t> nan{0}, neg_inf{0}, pos_inf{0};
};

struct Cleaning {
  bool neg_inf_to_zero = false;  // audio, as the reference loader
  bool nan_to_zero = false;      // LoadOptions::zero_nan: NaN and ±inf become 0
};

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ",")); }

// out[c] = in[src(c)] for every C-order index c, counting and cleaning non-finite values on the way.
// Src elements are read with memcpy: the bytes in a pickle are not aligned.
template <typename Src>
void convert(const pk::NdArray& a, float* out, const Cleaning& clean, Counts* counts) {
  const int64_t numel = a.numel();
  const std::size_t nd = a.shape.size();
  // Fortran order: element (i0, i1, ...) sits at i0 + i1*d0 + i2*d0*d1 + ...
  std::vector<int64_t> fstride(nd, 1);
  for (std::size_t k = 1; k < nd; ++k) fstride[k] = fstride[k - 1] * a.shape[k - 1];
  const bool fortran = a.fortran_order && nd > 1;
  at::parallel_for(0, numel, 1 << 16, [&](int64_t begin, int64_t end) {
    int64_t nan = 0, neg = 0, pos = 0;
    std::vector<int64_t> idx(nd, 0);
    int64_t src = begin;
    if (fortran) {  // the multi-index of `begin` in C order, and its Fortran offset
      int64_t rest = begin;
      src = 0;
      for (std::size_t k = nd; k-- > 0;) {
        idx[k] = rest % a.shape[k];
        rest /= a.shape[k];
        src += idx[k] * fstride[k];
      }
    }
    for (int64_t c = begin; c < end; ++c) {
      Src x;
      std::memcpy(&x, a.data + src * static_cast<int64_t>(sizeof(Src)), sizeof(Src));
      float f = static_cast<float>(x);
      if (!std::isfinite(f)) {
        if (std::isnan(f)) {
          ++nan;
        } else if (f < 0) {
          ++neg;
          if (clean.neg_inf_to_zero) f = 0.0f;
        } else {
          ++pos;
        }
        if (clean.nan_to_zero) f = 0.0f;
      }
      out[c] = f;
      if (!fortran) {
        ++src;
        continue;
      }
      for (std::size_t k = nd; k-- > 0;) {  // odometer step in C order
        src += fstride[k];
        if (++idx[k] < a.shape[k]) break;
        src -= fstride[k] * a.shape[k];
        idx[k] = 0;
      }
    }
    counts->nan += nan;
    counts->neg_inf += neg;
    counts->pos_inf += pos;
  });
}

torch::Tensor to_float_tensor(const pk::NdArray& a, std::vector<int64_t> shape, const Cleaning& clean,
                              NonFiniteCount* record) {
  torch::Tensor t = torch::empty(shape, torch::kFloat32);
  Counts counts;
  float* out = t.data_ptr<float>();
  switch (a.dtype) {
    case pk::DType::Float32: convert<float>(a, out, clean, &counts); break;
    case pk::DType::Float64: convert<double>(a, out, clean, &counts); break;
    case pk::DType::Int64: convert<int64_t>(a, out, clean, &counts); break;
    case pk::DType::Int32: convert<int32_t>(a, out, clean, &counts); break;
    case pk::DType::UInt8: convert<uint8_t>(a, out, clean, &counts); break;
    case pk::DType::Bool: convert<uint8_t>(a, out, clean, &counts); break;
  }
  record->nan += counts.nan;
  record->neg_inf += counts.neg_inf;
  record->pos_inf += counts.pos_inf;
  record->source_dtype = pk::dtype_name(a.dtype);
  return t;
}

// The parsed (not yet converted) arrays of one split.
struct RawSplit {
  std::string name;
  const pk::NdArray* mod[3] = {nullptr, nullptr, nullptr};  // text, audio, vision
  const pk::Value* labels = nullptr;
  std::string labels_key;  // "regression_labels" (MMSA) or "labels" (MulT)
  const pk::Value* ids = nullptr;
  const pk::NdArray* text_bert = nullptr;  // [n,3,L], optional
};

const pk::Value& need_key(const pk::Value& split, const std::string& name, const char* key) {
  const pk::Value* v = split.find(key);
  if (!v) throw DataError(fmt::format("split '{}' has no key '{}'", name, key));
  return *v;
}

RawSplit parse_split(const pk::Value& root, const std::string& name) {
  const pk::Value* s = root.find(name);
  if (!s) throw DataError(fmt::format("the file has no split '{}' (expected train, valid and test)", name));
  if (!std::holds_alternative<pk::Dict>(s->v)) {
    throw DataError(fmt::format("split '{}' is {}, expected a dict of arrays", name, s->type_name()));
  }
  RawSplit r;
  r.name = name;
  for (int m = 0; m < 3; ++m) {
    const pk::Value& v = need_key(*s, name, kModalities[m]);
    const auto* a = std::get_if<pk::NdArray>(&v.v);
    if (!a || a->shape.size() != 3) {
      throw DataError(fmt::format("split '{}' key '{}' is {}, expected a 3-d float array [n, T, D]", name,
                                  kModalities[m], v.type_name()));
    }
    r.mod[m] = a;
  }
  // MMSA's key, else the MulT repository's `labels` [n,1,1] (yaohungt/Multimodal-Transformer,
  // src/dataset.py).
  r.labels_key = s->find("regression_labels") || !s->find("labels") ? "regression_labels" : "labels";
  r.labels = &need_key(*s, name, r.labels_key.c_str());
  r.ids = s->find("id");
  if (const pk::Value* tb = s->find("text_bert")) {
    const auto* a = std::get_if<pk::NdArray>(&tb->v);
    if (!a || a->shape.size() != 3 || a->shape[1] != 3 || a->shape[2] < 1)
      throw DataError(fmt::format("split '{}' key 'text_bert' is {}, expected an array [n, 3, L] (token ids, "
                                  "attention mask, segment ids)",
                                  name, a ? fmt::format("an array {}", shape_str(a->shape)) : tb->type_name()));
    r.text_bert = a;
  }
  return r;
}

// n agrees within a split, T and D across splits; the message names the wrong key.
void check_shapes(const std::vector<RawSplit>& splits) {
  for (const RawSplit& r : splits) {
    const int64_t n = r.mod[0]->shape[0];
    for (int m = 1; m < 3; ++m) {
      if (r.mod[m]->shape[0] != n) {
        throw DataError(fmt::format("split '{}' key '{}' has {} samples, expected {} as key 'text'", r.name,
                                    kModalities[m], r.mod[m]->shape[0], n));
      }
    }
    for (int m = 0; m < 3; ++m) {
      const auto& want = splits[0].mod[m]->shape;
      const auto& got = r.mod[m]->shape;
      if (got[1] != want[1] || got[2] != want[2]) {
        throw DataError(fmt::format("split '{}' key '{}' has shape {}, expected {} as in split '{}'", r.name,
                                    kModalities[m], shape_str(got), shape_str({n, want[1], want[2]}),
                                    splits[0].name));
      }
    }
  }
}

torch::Tensor read_labels(const RawSplit& r, int64_t n, const Cleaning& clean, NonFiniteCount* record) {
  if (const auto* a = std::get_if<pk::NdArray>(&r.labels->v)) {
    // [n] or [n,1] (MMSA), [n,1,1] (MulT)
    bool ok = a->numel() == n && !a->shape.empty() && a->shape[0] == n;
    if (!ok) {
      throw DataError(fmt::format("split '{}' key '{}' has shape {}, expected [{}], [{},1] or [{},1,1]",
                                  r.name, r.labels_key, shape_str(a->shape), n, n, n));
    }
    return to_float_tensor(*a, {n}, clean, record);
  }
  if (const auto* l = std::get_if<pk::List>(&r.labels->v)) {  // a plain list of numbers
    if (static_cast<int64_t>(l->size()) != n) {
      throw DataError(
          fmt::format("split '{}' key '{}' has {} values, expected {}", r.name, r.labels_key, l->size(), n));
    }
    std::vector<float> v;
    for (const auto& x : *l) v.push_back(static_cast<float>(x.number()));
    pk::NdArray a;
    a.shape = {n};
    a.data = reinterpret_cast<const std::byte*>(v.data());
    a.nbytes = v.size() * sizeof(float);
    return to_float_tensor(a, {n}, clean, record);
  }
  throw DataError(fmt::format("split '{}' key '{}' is {}, expected a float array", r.name, r.labels_key,
                              r.labels->type_name()));
}

std::vector<std::string> read_ids(const RawSplit& r, int64_t n) {
  std::vector<std::string> ids;
  if (!r.ids) {
    for (int64_t i = 0; i < n; ++i) ids.push_back(fmt::format("{}$_${}", r.name, i));
    return ids;
  }
  // A list of n strings (MMSA); a bytes array [n,k] (MulT's [n,3]: video id, start, end) arrives as k·n
  // strings in row order, and a sample's k parts are joined with "$_$".
  const auto* l = std::get_if<pk::List>(&r.ids->v);
  const int64_t parts =
      l && n > 0 && static_cast<int64_t>(l->size()) % n == 0 ? static_cast<int64_t>(l->size()) / n : 1;
  if (!l || static_cast<int64_t>(l->size()) != n * parts) {
    throw DataError(fmt::format("split '{}' key 'id' is {}{}, expected a list of {} strings", r.name,
                                r.ids->type_name(), l ? fmt::format(" of {} items", l->size()) : "", n));
  }
  for (int64_t i = 0; i < n; ++i) {
    std::string id;
    for (int64_t k = 0; k < parts; ++k) {
      const pk::Value& x = (*l)[static_cast<std::size_t>(i * parts + k)];
      const auto* s = std::get_if<std::string>(&x.v);
      if (!s)
        throw DataError(fmt::format("split '{}' key 'id' holds {}, expected strings", r.name, x.type_name()));
      id += (k ? "$_$" : "") + *s;
    }
    ids.push_back(std::move(id));
  }
  return ids;
}

// text_bert present in all splits or none, n as the features', L the same across splits.
void check_text_bert_shapes(const std::vector<RawSplit>& splits) {
  for (const RawSplit& r : splits) {
    if ((r.text_bert != nullptr) != (splits[0].text_bert != nullptr)) {
      const RawSplit& with = r.text_bert ? r : splits[0];
      const RawSplit& without = r.text_bert ? splits[0] : r;
      throw DataError(fmt::format("split '{}' has key 'text_bert' but split '{}' has none", with.name, without.name));
    }
    if (!r.text_bert) continue;
    if (r.text_bert->shape[0] != r.mod[0]->shape[0])
      throw DataError(fmt::format("split '{}' key 'text_bert' has {} samples, expected {} as key 'text'", r.name,
                                  r.text_bert->shape[0], r.mod[0]->shape[0]));
    if (r.text_bert->shape[2] != splits[0].text_bert->shape[2])
      throw DataError(fmt::format("split '{}' key 'text_bert' has length {}, expected {} as in split '{}'", r.name,
                                  r.text_bert->shape[2], splits[0].text_bert->shape[2], splits[0].name));
  }
}

// Every feature width may differ from the reference's (text 768-d BERT features, 300-d GloVe or a small BERT's
// hidden size; other audio and vision extractors): the projections are sized from the data and the widths
// recorded with each run. A width of 0 leaves nothing to project.
void check_widths(const std::vector<RawSplit>& splits) {
  const int64_t dl = splits[0].mod[0]->shape[2], da = splits[0].mod[1]->shape[2], dv = splits[0].mod[2]->shape[2];
  if (dl < 1 || da < 1 || dv < 1)
    throw DataError(fmt::format("the feature widths are text {} / audio {} / vision {}, expected at least 1 each",
                                dl, da, dv));
}

std::string guess_family(const std::vector<RawSplit>& splits) {
  const int64_t da = splits[0].mod[1]->shape[2];
  if (da == 5) return "mosi";
  if (da == 74) return "mosei";
  throw DataError(fmt::format("cannot tell mosi from mosei: audio dim is {}, expected 5 (mosi) or 74 (mosei); "
                              "name the family as mosi:PATH or mosei:PATH",
                              da));
}

}  // namespace

Dataset load_mmsa(const std::string& path, const std::string& family_in, const LoadOptions& opts) {
  if (!family_in.empty() && family_in != "mosi" && family_in != "mosei") {
    throw DataError(fmt::format("unknown dataset family '{}', expected mosi or mosei", family_in));
  }
  pk::MappedFile file;
  auto truncated = [&] { return DataError(fmt::format("file {} was truncated while it was being read", path)); };
  try {
    file = pk::map_file(path);
    const pk::Value root = pk::loads(file.data, file.size, file.owner, pk::GlobalPolicy::numpy());
    if (!std::holds_alternative<pk::Dict>(root.v)) {
      throw DataError(fmt::format("the pickle holds {}, expected a dict with train, valid and test", root.type_name()));
    }
    std::vector<RawSplit> raw;
    for (const char* s : kSplits) raw.push_back(parse_split(root, s));
    check_shapes(raw);
    check_text_bert_shapes(raw);
    const std::string family = family_in.empty() ? guess_family(raw) : family_in;
    check_widths(raw);

    Dataset ds;
    ds.name = family + ":" + path;
    ds.family = family;
    const auto& tr = raw[0].mod;
    ds.setting = (tr[0]->shape[1] == tr[1]->shape[1] && tr[1]->shape[1] == tr[2]->shape[1]) ? "aligned" : "unaligned";
    if (opts.compute_sha256) ds.source_sha256 = sha256_bytes(file.data, file.size);
    Split* out[3] = {&ds.train, &ds.valid, &ds.test};
    for (std::size_t s = 0; s < 3; ++s) {
      const RawSplit& r = raw[s];
      Split& sp = *out[s];
      sp.name = r.name;
      const int64_t n = r.mod[0]->shape[0];
      torch::Tensor* dst[3] = {&sp.text, &sp.audio, &sp.vision};
      for (int m = 0; m < 3; ++m) {
        NonFiniteCount rec{r.name, kModalities[m], 0, 0, 0, ""};
        Cleaning clean{m == 1, opts.zero_nan || opts.inspect};
        *dst[m] = to_float_tensor(*r.mod[m], r.mod[m]->shape, clean, &rec);
        ds.non_finite.push_back(rec);
      }
      NonFiniteCount rec{r.name, "labels", 0, 0, 0, ""};
      sp.labels = read_labels(r, n, Cleaning{false, opts.inspect}, &rec);
      ds.non_finite.push_back(rec);
      sp.ids = read_ids(r, n);
      if (r.text_bert) {
        NonFiniteCount tb{r.name, "text_bert", 0, 0, 0, ""};
        sp.text_bert = to_float_tensor(*r.text_bert, r.text_bert->shape, Cleaning{}, &tb);
        if (tb.nan + tb.neg_inf + tb.pos_inf > 0)
          throw DataError(fmt::format("split '{}' text_bert holds {} non-finite values, expected token ids, a 0/1 "
                                      "mask and segment ids",
                                      r.name, tb.nan + tb.neg_inf + tb.pos_inf));
      }
    }
    // Non-finite values the reference would feed to the model: refused, unless zero_nan (features only; a label
    // is never made up). Audio -inf is the reference loader's own cleaning and always becomes 0.
    for (const auto& c : ds.non_finite) {
      if (opts.inspect) break;
      const bool labels = c.modality == "labels";
      if (!labels && opts.zero_nan) continue;
      const int64_t neg = c.modality == "audio" ? 0 : c.neg_inf;
      if (c.nan + neg + c.pos_inf == 0) continue;
      std::string what;
      for (const auto& [n, name] : {std::pair{c.nan, "NaN"}, std::pair{neg, "-inf"}, std::pair{c.pos_inf, "+inf"}})
        if (n > 0) what += fmt::format("{}{} {}", what.empty() ? "" : ", ", n, name);
      throw DataError(fmt::format("split '{}' {} holds non-finite values ({}); refusing the file ({})", c.split,
                                  c.modality, what,
                                  labels ? "labels must be finite"
                                         : "--set zero_nan=true replaces NaN and ±inf in the features by 0"));
    }
    if (file.truncated()) throw truncated();
    return ds;
  } catch (const pk::PickleError& e) {  // messages from map_file already name the path
    if (file.truncated()) throw truncated();
    const std::string msg = e.what();
    throw DataError(msg.find(path) != std::string::npos ? msg : fmt::format("{}: {}", path, msg));
  } catch (const DataError& e) {
    if (file.truncated()) throw truncated();
    if (std::string(e.what()).find(path) != std::string::npos) throw;
    throw DataError(fmt::format("{}: {}", path, e.what()));
  }
}

Dataset open_dataset(const std::string& spec, const LoadOptions& opts, double synthetic_scale,
                     uint64_t synthetic_seed) {
  DatasetSpec parsed;
  try {
    parsed = parse_dataset_spec(spec);
  } catch (const ConfigError& e) {
    throw DataError(e.what());
  }
  if (!parsed.synthetic) return load_mmsa(parsed.path, parsed.family, opts);
  SyntheticSpec s;
  s.family = parsed.family;
  s.seed = synthetic_seed;
  s.scale = parsed.scale > 0 ? parsed.scale : synthetic_scale;
  s.setting = parsed.setting;
  return make_synthetic(s);
}

}  // namespace dmdbench
