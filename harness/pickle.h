// Restricted unpickler for MMSA feature pickles and torch.save archives.
//
// It understands pickle protocols 2 to 5 and builds only plain data: None, bools, ints, floats, strings,
// bytes, lists, tuples, dicts, numpy arrays and numpy scalars. A GLOBAL / STACK_GLOBAL opcode is resolved
// through an allow-list (GlobalPolicy); any other global is refused with an error naming it, and nothing
// is ever executed. Array payloads are views into the caller's buffer (typically a memory-mapped file),
// so a 10 GB pickle is never copied twice. This file does not include LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace dmdbench::pickle {

// Any malformed, truncated or hostile input raises this, with one lowercase sentence.
struct PickleError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DType { Float32, Float64, Int64, Int32, Bool, UInt8 };
const char* dtype_name(DType t);
std::size_t dtype_size(DType t);

// A numpy array (or a torch storage slice): dtype, shape, element strides in elements, and a view of its bytes.
struct NdArray {
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  bool fortran_order = false;
  const std::byte* data = nullptr;  // little-endian elements, C order unless fortran_order
  std::size_t nbytes = 0;
  std::shared_ptr<const void> owner;  // keeps the backing buffer alive (mmap or owned bytes)
  int64_t numel() const;
};

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<Value, Value>>;  // insertion order kept
struct None {};
struct Bytes {
  const std::byte* data = nullptr;
  std::size_t size = 0;
  std::shared_ptr<const void> owner;
};
struct Tuple {
  List items;
};
// An opaque object produced by an allowed global (e.g. a torch storage reference); kind says what it is.
struct Object {
  std::string kind;
  List args;
  std::shared_ptr<const void> payload;
};

struct Value {
  std::variant<None, bool, int64_t, double, std::string, Bytes, List, Tuple, Dict, NdArray, Object> v;

  bool is_none() const { return std::holds_alternative<None>(v); }
  const Dict& dict() const;      // throws PickleError naming the expected type
  const List& list() const;
  const Tuple& tuple() const;
  const NdArray& array() const;
  const std::string& str() const;
  int64_t integer() const;
  double number() const;         // int or float
  // Look up a string key in a dict; nullptr when absent.
  const Value* find(std::string_view key) const;
  std::string type_name() const;
};

// Allowed globals. A handler receives the call arguments (REDUCE / NEWOBJ) and returns the built value.
// Lookup is by "module.name". Globals that are only referenced as arguments (e.g. numpy.ndarray passed to
// _reconstruct, torch.FloatStorage inside a persistent id) are returned as Object{kind="global:module.name"}.
class GlobalPolicy {
 public:
  using Handler = std::function<Value(const List& args)>;
  void allow_callable(const std::string& qualified, Handler h);
  void allow_reference(const std::string& qualified);  // may appear, but only as a value
  bool allowed(const std::string& qualified) const;
  const Handler* callable(const std::string& qualified) const;

  // numpy arrays, dtypes and scalars (both numpy.core.* and numpy._core.* spellings).
  static GlobalPolicy numpy();

 private:
  std::map<std::string, Handler> callables_;
  std::map<std::string, bool> references_;
};

// Persistent ids (torch.save storages) are passed to this; without one, a PERSID opcode is an error.
using PersistentLoader = std::function<Value(const Value& pid)>;

// Parse a pickle held in [data, data+size). owner keeps the bytes alive for array views.
Value loads(const std::byte* data, std::size_t size, std::shared_ptr<const void> owner,
            const GlobalPolicy& policy, const PersistentLoader& persistent = nullptr);

// A read-only memory map of a whole file; errors name the path.
struct MappedFile {
  const std::byte* data = nullptr;
  std::size_t size = 0;
  std::shared_ptr<const void> owner;  // unmaps when the last reference goes
};
MappedFile map_file(const std::string& path);

}  // namespace dmdbench::pickle
