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

// numpy's dtype code ("f4", "<f8", "|b1", "i8", ...) to ours; false for anything else.
bool dtype_from_numpy(std::string_view code, DType* out);

// A numpy array (or a torch storage slice): dtype, shape and a view of its bytes. A shape of [] is a numpy scalar.
struct NdArray {
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  bool fortran_order = false;
  const std::byte* data = nullptr;  // little-endian elements, C order unless fortran_order; may be unaligned
  std::size_t nbytes = 0;           // == numel() * dtype_size(dtype)
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
  int64_t integer() const;      // int, bool or a 0-d integer numpy scalar
  double number() const;         // int, float, bool or a 0-d numeric numpy scalar
  // Look up a string key in a dict; nullptr when absent.
  const Value* find(std::string_view key) const;
  std::string type_name() const;
};

// Allowed globals. A handler receives the call arguments (REDUCE / NEWOBJ) and returns the built value.
// Lookup is by "module.name". Every allowed global is pushed as Object{kind="global:module.name"}; calling one
// that is only a reference (e.g. numpy.ndarray passed to _reconstruct, torch.FloatStorage inside a persistent
// id) is an error. BUILD (__setstate__) on an Object goes to the builder registered for its kind; BUILD on a
// dict (an OrderedDict's attributes, such as a state_dict's _metadata) is ignored; anything else is an error.
class GlobalPolicy {
 public:
  using Handler = std::function<Value(const List& args)>;
  using Builder = std::function<Value(const Object& obj, const Value& state)>;
  void allow_callable(const std::string& qualified, Handler h);
  void allow_reference(const std::string& qualified);  // may appear, but only as a value
  void allow_build(const std::string& kind, Builder b);
  bool allowed(const std::string& qualified) const;
  const Handler* callable(const std::string& qualified) const;
  const Builder* builder(const std::string& kind) const;
  // Ends the refusal message: "refusing pickle global 'x': only <description> are allowed".
  void set_description(std::string what) { description_ = std::move(what); }
  const std::string& description() const { return description_; }

  // Plain data spelled through globals by protocol 2: _codecs.encode (bytes), bytes(), bytearray(),
  // set() / frozenset() (built as lists).
  static GlobalPolicy plain();
  // plain() plus numpy arrays, dtypes and scalars (both numpy.core.* and numpy._core.* spellings).
  // Arrays of dtype object, unicode ('U') or bytes ('S') are built as a List; an array of another dtype
  // (float16, big-endian, ...) is built as Object{kind="numpy array of unsupported dtype '<f2'"}.
  static GlobalPolicy numpy();

 private:
  std::map<std::string, Handler> callables_;
  std::map<std::string, bool> references_;
  std::map<std::string, Builder> builders_;
  std::string description_ = "numpy arrays and plain data";
};

// Persistent ids (torch.save storages) are passed to this; without one, a PERSID opcode is an error.
using PersistentLoader = std::function<Value(const Value& pid)>;

// Parse a pickle held in [data, data+size). owner keeps the bytes alive for array views. Shared references
// (a memoized value used twice) are copied into each place; a pickle that would expand past a budget
// proportional to its size, or nest containers deeper than kMaxDepth, is refused.
constexpr int kMaxDepth = 256;
Value loads(const std::byte* data, std::size_t size, std::shared_ptr<const void> owner,
            const GlobalPolicy& policy, const PersistentLoader& persistent = nullptr);

// A read-only memory map of a whole regular file; errors name the path. A file that shrinks while it is mapped
// would make the next read of the lost pages raise SIGBUS and end the process: instead, a SIGBUS handler maps
// zeros over the lost part and marks the mapping truncated, so the reader finishes and then asks truncated().
struct MappedFile {
  const std::byte* data = nullptr;
  std::size_t size = 0;
  std::shared_ptr<const void> owner;  // unmaps when the last reference goes
  bool truncated() const;             // the file shrank under the mapping; what was read from it is not the file
  int slot = -1;                      // internal: the mapping's entry in the SIGBUS handler's table
};
MappedFile map_file(const std::string& path);

// Convenience: map_file + loads.
Value load_file(const std::string& path, const GlobalPolicy& policy, const PersistentLoader& persistent = nullptr);

}  // namespace dmdbench::pickle
