// torch.save state_dict archives: read with LibTorch's zip reader + our restricted unpickler, written with its
// zip writer + a small protocol-2 pickler that spells exactly what Python's torch.save writes.
#include "harness/io/checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <sys/stat.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "harness/io/output_file.h"
#include "harness/io/pickle.h"

namespace dmdbench {

namespace pk = pickle;

namespace {

// c10 messages span several lines (and a backtrace); keep the first.
std::string first_line(const char* what) {
  std::string s(what);
  return s.substr(0, s.find('\n'));
}

struct StorageType {
  const char* name;
  torch::ScalarType type;
};
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", torch::kFloat32}, {"DoubleStorage", torch::kFloat64}, {"HalfStorage", torch::kFloat16},
    {"BFloat16Storage", torch::kBFloat16}, {"LongStorage", torch::kInt64}, {"IntStorage", torch::kInt32},
    {"ShortStorage", torch::kInt16},   {"CharStorage", torch::kInt8},      {"ByteStorage", torch::kUInt8},
    {"BoolStorage", torch::kBool}};

const torch::Tensor& tensor_of(const pk::Value& v, const char* what) {
  const auto* o = std::get_if<pk::Object>(&v.v);
  if (!o || (o->kind != "torch.storage" && o->kind != "torch.tensor") || !o->payload) {
    throw pk::PickleError(fmt::format("{} is {}, expected a torch storage", what, v.type_name()));
  }
  return *static_cast<const torch::Tensor*>(o->payload.get());
}

pk::Value wrap(const char* kind, torch::Tensor t) {
  return pk::Value{pk::Object{kind, {}, std::make_shared<torch::Tensor>(std::move(t))}};
}

std::vector<int64_t> int_tuple(const pk::Value& v, const char* what) {
  std::vector<int64_t> out;
  for (const auto& x : v.tuple().items) {
    const int64_t i = x.integer();
    if (i < 0) throw pk::PickleError(fmt::format("tensor {} has a negative entry {}", what, i));
    out.push_back(i);
  }
  return out;
}

// torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
pk::Value rebuild_tensor(const pk::List& args) {
  if (args.size() < 4) throw pk::PickleError("torch _rebuild_tensor_v2 has fewer than 4 arguments");
  const torch::Tensor& storage = tensor_of(args[0], "the first argument of _rebuild_tensor_v2");
  const int64_t offset = args[1].integer();
  const std::vector<int64_t> size = int_tuple(args[2], "size"), stride = int_tuple(args[3], "stride");
  if (size.size() != stride.size() || offset < 0) {
    throw pk::PickleError(fmt::format("tensor of size [{}] has stride [{}] and offset {}", fmt::join(size, ","),
                                      fmt::join(stride, ","), offset));
  }
  // The last element reached must lie inside the storage (as_strided does not check).
  int64_t last = offset;
  bool empty = false;
  for (std::size_t k = 0; k < size.size(); ++k) {
    if (size[k] == 0) empty = true;
    if (size[k] > 0 && stride[k] > (int64_t{1} << 40)) throw pk::PickleError("tensor stride is absurdly large");
    if (size[k] > 0) last += (size[k] - 1) * stride[k];
  }
  if (!empty && last >= storage.numel()) {
    throw pk::PickleError(fmt::format("tensor of size [{}] with stride [{}] at offset {} overruns its storage of {} "
                                      "elements",
                                      fmt::join(size, ","), fmt::join(stride, ","), offset, storage.numel()));
  }
  if (empty) return wrap("torch.tensor", torch::empty(size, storage.options()));
  return wrap("torch.tensor", storage.as_strided(size, stride, offset).clone(at::MemoryFormat::Contiguous));
}

pk::GlobalPolicy checkpoint_policy() {
  pk::GlobalPolicy p = pk::GlobalPolicy::plain();
  p.allow_callable("collections.OrderedDict", [](const pk::List& args) {
    if (!args.empty()) throw pk::PickleError("collections.OrderedDict with arguments is not supported");
    return pk::Value{pk::Dict{}};
  });
  p.allow_callable("torch._utils._rebuild_tensor_v2", rebuild_tensor);
  p.allow_callable("torch._utils._rebuild_parameter", [](const pk::List& args) {
    if (args.empty()) throw pk::PickleError("torch _rebuild_parameter has no arguments");
    return args[0];
  });
  for (const auto& s : kStorageTypes) p.allow_reference(std::string("torch.") + s.name);
  p.set_description("tensors and plain data");
  return p;
}

// Persistent id ('storage', torch.FloatStorage, key, location, numel) -> the record data/<key> as a 1-d tensor.
class StorageLoader {
 public:
  explicit StorageLoader(caffe2::serialize::PyTorchStreamReader& reader) : reader_(reader) {}

  pk::Value operator()(const pk::Value& pid) {
    const auto& t = pid.tuple().items;
    if (t.size() != 5 || t[0].str() != "storage") {
      throw pk::PickleError(fmt::format("persistent id is {}, expected ('storage', type, key, location, numel)",
                                        pid.type_name()));
    }
    const auto* type = std::get_if<pk::Object>(&t[1].v);
    torch::ScalarType st = torch::kFloat32;
    bool known = false;
    for (const auto& s : kStorageTypes) {
      if (type && type->kind == std::string("global:torch.") + s.name) st = s.type, known = true;
    }
    if (!known) throw pk::PickleError(fmt::format("persistent id names storage type {}", t[1].type_name()));
    const std::string& key = t[2].str();
    const int64_t numel = t[4].integer();
    if (auto it = cache_.find(key); it != cache_.end()) return wrap("torch.storage", it->second);
    const std::string record = "data/" + key;
    if (!reader_.hasRecord(record)) throw pk::PickleError(fmt::format("the archive has no record {}", record));
    auto [ptr, nbytes] = reader_.getRecord(record);
    const int64_t elem = static_cast<int64_t>(c10::elementSize(st));
    if (numel < 0 || static_cast<uint64_t>(numel) * static_cast<uint64_t>(elem) != nbytes) {
      throw pk::PickleError(fmt::format("record {} has {} bytes, expected {} for {} elements of {}", record, nbytes,
                                        numel * elem, numel, c10::toString(st)));
    }
    torch::Tensor storage = torch::empty({numel}, torch::TensorOptions().dtype(st));
    if (nbytes > 0) std::memcpy(storage.data_ptr(), ptr.get(), nbytes);
    cache_[key] = storage;
    return wrap("torch.storage", storage);
  }

 private:
  caffe2::serialize::PyTorchStreamReader& reader_;
  std::map<std::string, torch::Tensor> cache_;
};

// --- writing: a minimal protocol-2 pickler

class Pickler {
 public:
  std::string bytes;
  void op(char c) { bytes += c; }
  void global(const char* module, const char* name) { bytes += fmt::format("c{}\n{}\n", module, name); }
  void str(const std::string& s) {
    op('X');
    raw<uint32_t>(static_cast<uint32_t>(s.size()));
    bytes += s;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      raw<uint8_t>(static_cast<uint8_t>(v));
    } else if (v >= 0 && v < 65536) {
      op('M');
      raw<uint16_t>(static_cast<uint16_t>(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      raw<int32_t>(static_cast<int32_t>(v));
    } else {
      op('\x8a');  // LONG1, 8 bytes little-endian two's complement
      raw<uint8_t>(8);
      raw<int64_t>(v);
    }
  }
  void int_tuple(const std::vector<int64_t>& v) {
    if (v.empty()) return op(')');
    if (v.size() > 3) op('(');
    for (int64_t x : v) integer(x);
    if (v.size() <= 3) {
      op(static_cast<char>(0x84 + v.size()));  // TUPLE1..3
    } else {
      op('t');
    }
  }

 private:
  template <typename T>
  void raw(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    bytes.append(b, sizeof(T));
  }
};

const char* storage_name(torch::ScalarType t) {
  for (const auto& s : kStorageTypes) {
    if (s.type == t) return s.name;
  }
  throw CheckpointError(fmt::format("cannot write a tensor of dtype {} to a checkpoint", c10::toString(t)));
}

// OrderedDict name -> _rebuild_tensor_v2(persistent storage i, 0, size, stride, False, OrderedDict()).
std::string state_dict_pickle(const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  Pickler p;
  p.op('\x80');
  p.op('\x02');
  p.global("collections", "OrderedDict");
  p.op(')');
  p.op('R');
  if (!tensors.empty()) p.op('(');
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const torch::Tensor& t = tensors[i].second;
    p.str(tensors[i].first);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    p.op('(');
    p.str("storage");
    p.global("torch", storage_name(t.scalar_type()));
    p.str(std::to_string(i));
    p.str("cpu");
    p.integer(t.numel());
    p.op('t');
    p.op('Q');  // BINPERSID
    p.integer(0);
    p.int_tuple(t.sizes().vec());
    p.int_tuple(t.strides().vec());
    p.op('\x89');  // NEWFALSE: requires_grad
    p.global("collections", "OrderedDict");
    p.op(')');
    p.op('R');
    p.op('t');
    p.op('R');
  }
  if (!tensors.empty()) p.op('u');
  p.op('.');
  return p.bytes;
}

}  // namespace

StateDict read_checkpoint(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw CheckpointError(fmt::format("cannot open file {}: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw CheckpointError(fmt::format("cannot read file {}: not a regular file", path));
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("data.pkl")) {
      throw CheckpointError(fmt::format("{} is not a torch.save archive: no data.pkl", path));
    }
    auto [ptr, size] = reader.getRecord("data.pkl");
    auto holder = std::make_shared<at::DataPtr>(std::move(ptr));
    std::shared_ptr<const void> owner(holder, holder->get());
    StorageLoader storages(reader);
    const pk::Value root = pk::loads(static_cast<const std::byte*>(holder->get()), size, owner, checkpoint_policy(),
                                     [&](const pk::Value& pid) { return storages(pid); });
    const auto* dict = std::get_if<pk::Dict>(&root.v);
    if (!dict) throw CheckpointError(fmt::format("{}: data.pkl holds {}, expected an OrderedDict of tensors", path,
                                                 root.type_name()));
    StateDict out;
    for (const auto& [k, v] : *dict) {
      const auto* name = std::get_if<std::string>(&k.v);
      if (!name) throw CheckpointError(fmt::format("{}: a state_dict key is {}, expected a str", path, k.type_name()));
      const auto* o = std::get_if<pk::Object>(&v.v);
      if (!o || o->kind != "torch.tensor") {
        throw CheckpointError(fmt::format("{}: entry '{}' is {}, expected a tensor", path, *name, v.type_name()));
      }
      out.emplace_back(*name, *static_cast<const torch::Tensor*>(o->payload.get()));
    }
    return out;
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("{} is not a readable torch.save archive: {}", path,
                                      first_line(e.what_without_backtrace())));
  } catch (const pk::PickleError& e) {
    throw CheckpointError(fmt::format("{}: {}", path, e.what()));
  }
}

std::string check_loadable(const StateDict& checkpoint, const StateDict& model,
                           const std::vector<std::string>& parameters, const std::string& path) {
  std::map<std::string, const torch::Tensor*> expected;
  for (const auto& [name, t] : model) expected[name] = &t;
  std::vector<std::string> bad, converted;
  for (const auto& [name, t] : checkpoint) {
    auto it = expected.find(name);
    if (it == expected.end()) continue;  // the strict load names unexpected keys
    if (t.scalar_type() != it->second->scalar_type())
      converted.push_back(fmt::format("{} ({} to {})", name, c10::toString(t.scalar_type()),
                                      c10::toString(it->second->scalar_type())));
    if (!t.is_floating_point() || std::find(parameters.begin(), parameters.end(), name) == parameters.end()) continue;
    const int64_t nan = torch::isnan(t).sum().item<int64_t>(), inf = torch::isinf(t).sum().item<int64_t>();
    if (nan + inf > 0) bad.push_back(fmt::format("{} ({} NaN, {} inf)", name, nan, inf));
  }
  if (!bad.empty())
    throw CheckpointError(fmt::format("checkpoint {} holds non-finite weights in {} tensor{}: {}", path, bad.size(),
                                      bad.size() == 1 ? "" : "s", fmt::join(bad, ", ")));
  if (converted.empty()) return "";
  return fmt::format("converted {} tensor{} of checkpoint {} on load: {}", converted.size(),
                     converted.size() == 1 ? "" : "s", path, fmt::join(converted, ", "));
}

void write_checkpoint(const std::string& path, const StateDict& state) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, t] : state) {
    if (!t.defined())
      throw CheckpointError(fmt::format("cannot write checkpoint {}: tensor '{}' is undefined", path, name));
    tensors.emplace_back(name, t.detach().to(torch::kCPU).contiguous());
    storage_name(tensors.back().second.scalar_type());
  }
  try {
    write_file_atomically(path, [&](const FileSink& sink) {
      caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) -> size_t {
        sink(buf, n);
        return n;
      });
      const std::string pkl = state_dict_pickle(tensors);
      writer.writeRecord("data.pkl", pkl.data(), pkl.size());
      // Python writes the storages in sorted key order ("0", "1", "10", ...).
      std::vector<std::string> keys;
      for (std::size_t i = 0; i < tensors.size(); ++i) keys.push_back(std::to_string(i));
      std::sort(keys.begin(), keys.end());
      for (const std::string& k : keys) {
        const torch::Tensor& t = tensors[std::stoul(k)].second;
        static const char zero = 0;
        const void* data = t.numel() > 0 ? t.data_ptr() : &zero;
        writer.writeRecord("data/" + k, data, t.numel() * t.element_size());
      }
      writer.writeEndOfFile();  // adds the "version" record
    });
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("cannot write checkpoint {}: {}", path, first_line(e.what_without_backtrace())));
  } catch (const FileError& e) {
    throw CheckpointError(e.what());
  }
}

}  // namespace dmdbench
