// Restricted unpickler: a pickle virtual machine that builds plain data and numpy arrays, and never executes.
//
// Stack entries are shared nodes so that MEMOIZE / GET / DUP alias one object as Python does (BUILD and
// APPENDS on an object are seen through the memo). When a node is placed into a container, it is moved if
// nothing else refers to it and copied otherwise; copies are charged to a budget proportional to the input
// size, so a small hostile pickle cannot expand into gigabytes. Every length is checked against the bytes left.
#include "harness/io/pickle.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

namespace dmdbench::pickle {

// ---------------------------------------------------------------------------------------------------------
// dtypes and values

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::Bool: return "bool";
    case DType::UInt8: return "uint8";
  }
  return "unknown";
}

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::Int32: return 4;
    case DType::Bool: return 1;
    case DType::UInt8: return 1;
  }
  return 1;
}

bool dtype_from_numpy(std::string_view code, DType* out) {
  if (!code.empty() && (code[0] == '<' || code[0] == '|' || code[0] == '=')) code.remove_prefix(1);
  static const std::pair<const char*, DType> table[] = {
      {"f4", DType::Float32}, {"f8", DType::Float64}, {"i8", DType::Int64},
      {"i4", DType::Int32},   {"b1", DType::Bool},    {"u1", DType::UInt8}};
  for (const auto& [name, t] : table) {
    if (code == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

int64_t NdArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

std::string join_shape(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

// Names taken from the input go into one-line error messages: printable ASCII only, bounded length.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 120)) out += (c >= 32 && c < 127) ? c : '?';
  if (s.size() > 120) out += "...";
  return out;
}

}  // namespace

std::string Value::type_name() const {
  switch (v.index()) {
    case 0: return "None";
    case 1: return "bool";
    case 2: return "int";
    case 3: return "float";
    case 4: return "str";
    case 5: return "bytes";
    case 6: return "list";
    case 7: return "tuple";
    case 8: return "dict";
    case 9: {
      const auto& a = std::get<NdArray>(v);
      return fmt::format("numpy array {} {}", dtype_name(a.dtype), join_shape(a.shape));
    }
    default: return fmt::format("object '{}'", printable(std::get<Object>(v).kind));
  }
}

const Dict& Value::dict() const {
  if (auto* d = std::get_if<Dict>(&v)) return *d;
  throw PickleError(fmt::format("expected a dict, got {}", type_name()));
}
const List& Value::list() const {
  if (auto* l = std::get_if<List>(&v)) return *l;
  throw PickleError(fmt::format("expected a list, got {}", type_name()));
}
const Tuple& Value::tuple() const {
  if (auto* t = std::get_if<Tuple>(&v)) return *t;
  throw PickleError(fmt::format("expected a tuple, got {}", type_name()));
}
const NdArray& Value::array() const {
  if (auto* a = std::get_if<NdArray>(&v)) return *a;
  throw PickleError(fmt::format("expected a numpy array, got {}", type_name()));
}
const std::string& Value::str() const {
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  throw PickleError(fmt::format("expected a str, got {}", type_name()));
}

namespace {
template <typename T>
T load_le(const std::byte* p) {
  T x;
  std::memcpy(&x, p, sizeof(T));
  return x;
}
// The single element of a 0-d (or one-element) numeric array, as double; false if not numeric.
bool scalar_as_double(const NdArray& a, double* out) {
  if (a.numel() != 1 || a.nbytes != dtype_size(a.dtype)) return false;
  switch (a.dtype) {
    case DType::Float32: *out = load_le<float>(a.data); return true;
    case DType::Float64: *out = load_le<double>(a.data); return true;
    case DType::Int64: *out = static_cast<double>(load_le<int64_t>(a.data)); return true;
    case DType::Int32: *out = load_le<int32_t>(a.data); return true;
    case DType::Bool: *out = a.data[0] != std::byte{0}; return true;
    case DType::UInt8: *out = static_cast<double>(a.data[0]); return true;
  }
  return false;
}
}  // namespace

int64_t Value::integer() const {
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* b = std::get_if<bool>(&v)) return *b ? 1 : 0;
  if (auto* a = std::get_if<NdArray>(&v)) {
    if (a->numel() == 1 && a->nbytes == dtype_size(a->dtype)) {
      switch (a->dtype) {
        case DType::Int64: return load_le<int64_t>(a->data);
        case DType::Int32: return load_le<int32_t>(a->data);
        case DType::UInt8: return static_cast<int64_t>(a->data[0]);
        case DType::Bool: return a->data[0] != std::byte{0};
        default: break;
      }
    }
  }
  throw PickleError(fmt::format("expected an int, got {}", type_name()));
}

double Value::number() const {
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (auto* b = std::get_if<bool>(&v)) return *b ? 1.0 : 0.0;
  double x = 0;
  if (auto* a = std::get_if<NdArray>(&v); a && scalar_as_double(*a, &x)) return x;
  throw PickleError(fmt::format("expected a number, got {}", type_name()));
}

const Value* Value::find(std::string_view key) const {
  const auto* d = std::get_if<Dict>(&v);
  if (!d) return nullptr;
  for (const auto& [k, val] : *d) {
    if (auto* s = std::get_if<std::string>(&k.v); s && *s == key) return &val;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------------------
// policy

void GlobalPolicy::allow_callable(const std::string& qualified, Handler h) { callables_[qualified] = std::move(h); }
void GlobalPolicy::allow_reference(const std::string& qualified) { references_[qualified] = true; }
void GlobalPolicy::allow_build(const std::string& kind, Builder b) { builders_[kind] = std::move(b); }
bool GlobalPolicy::allowed(const std::string& qualified) const {
  return callables_.count(qualified) > 0 || references_.count(qualified) > 0;
}
const GlobalPolicy::Handler* GlobalPolicy::callable(const std::string& qualified) const {
  auto it = callables_.find(qualified);
  return it == callables_.end() ? nullptr : &it->second;
}
const GlobalPolicy::Builder* GlobalPolicy::builder(const std::string& kind) const {
  auto it = builders_.find(kind);
  return it == builders_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------------------------
// the virtual machine

namespace {

struct Node {
  Value v;
  int depth = 0;  // container nesting below this value
};
using NodePtr = std::shared_ptr<Node>;

NodePtr make_node(Value v, int depth = 0) {
  auto n = std::make_shared<Node>();
  n->v = std::move(v);
  n->depth = depth;
  return n;
}

// Cost of copying a value: its nodes plus the bytes of its strings (arrays and bytes are shared views).
std::size_t copy_cost(const Value& v) {
  std::size_t c = sizeof(Value);
  if (auto* s = std::get_if<std::string>(&v.v)) return c + s->size();
  if (auto* l = std::get_if<List>(&v.v)) {
    for (const auto& x : *l) c += copy_cost(x);
  } else if (auto* t = std::get_if<Tuple>(&v.v)) {
    for (const auto& x : t->items) c += copy_cost(x);
  } else if (auto* d = std::get_if<Dict>(&v.v)) {
    for (const auto& [k, x] : *d) c += copy_cost(k) + copy_cost(x);
  } else if (auto* o = std::get_if<Object>(&v.v)) {
    c += o->kind.size();
    for (const auto& x : o->args) c += copy_cost(x);
  }
  return c;
}

class Machine {
 public:
  Machine(const std::byte* data, std::size_t size, std::shared_ptr<const void> owner, const GlobalPolicy& policy,
          const PersistentLoader& persistent)
      : begin_(data), p_(data), end_(data + size), owner_(std::move(owner)), policy_(policy),
        persistent_(persistent), budget_(64 * size + (64u << 20)) {}

  Value run();

 private:
  // --- reading, every length checked against what is left
  std::size_t offset() const { return static_cast<std::size_t>(p_ - begin_); }
  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }
  const std::byte* take(uint64_t n, const char* what) {
    if (n > left()) {
      throw PickleError(fmt::format("truncated pickle: {} needs {} bytes at offset {} but only {} are left", what,
                                    n, offset(), left()));
    }
    const std::byte* at = p_;
    p_ += n;
    return at;
  }
  template <typename T>
  T read(const char* what) {
    return load_le<T>(take(sizeof(T), what));
  }
  std::string_view line(const char* what) {
    const void* nl = std::memchr(p_, '\n', left());
    if (!nl) throw PickleError(fmt::format("truncated pickle: {} at offset {} has no end of line", what, offset()));
    std::string_view s(reinterpret_cast<const char*>(p_), static_cast<const std::byte*>(nl) - p_);
    p_ = static_cast<const std::byte*>(nl) + 1;
    return s;
  }
  uint64_t length(uint64_t n, const char* what) {
    if (n > left()) {
      throw PickleError(fmt::format("truncated pickle: {} of {} bytes at offset {} but only {} are left", what, n,
                                    offset(), left()));
    }
    return n;
  }

  // --- stack
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  NodePtr pop(const char* op) {
    if (stack_.size() <= floor()) throw PickleError(fmt::format("pickle stack underflow at {} (offset {})", op, at_));
    NodePtr n = std::move(stack_.back());
    stack_.pop_back();
    return n;
  }
  NodePtr& top(const char* op) {
    if (stack_.size() <= floor()) throw PickleError(fmt::format("pickle stack underflow at {} (offset {})", op, at_));
    return stack_.back();
  }
  std::vector<NodePtr> pop_mark(const char* op) {
    if (marks_.empty()) throw PickleError(fmt::format("pickle {} at offset {} has no MARK", op, at_));
    std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<NodePtr> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(m)),
                               std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  void push(Value v, int depth = 0) { stack_.push_back(make_node(std::move(v), depth)); }

  // The value of a node, moved out when nothing else refers to it, otherwise copied against the budget.
  Value take_value(NodePtr n) {
    if (n.use_count() == 1) return std::move(n->v);
    std::size_t c = copy_cost(n->v);
    if (c > budget_) {
      throw PickleError(fmt::format("pickle expands past {} MB of copied values (offset {}); refusing it",
                                    (64 * (end_ - begin_) + (64 << 20)) >> 20, at_));
    }
    budget_ -= c;
    return n->v;
  }
  int deepen(int depth, const NodePtr& child) {
    int d = std::max(depth, child->depth + 1);
    if (d > kMaxDepth) {
      throw PickleError(fmt::format("pickle nests containers deeper than {} levels (offset {})", kMaxDepth, at_));
    }
    return d;
  }
  List take_list(std::vector<NodePtr> items, int* depth) {
    List out;
    out.reserve(items.size());
    for (auto& n : items) {
      *depth = deepen(*depth, n);
      out.push_back(take_value(std::move(n)));
    }
    return out;
  }

  // --- opcodes with some logic
  void op_global(std::string module, std::string name);
  void call(const NodePtr& callable, List args, int depth);
  void op_build();
  void op_persid(NodePtr pid);
  void append_to(NodePtr& target, std::vector<NodePtr> items, const char* op);
  void setitems(NodePtr& target, std::vector<NodePtr> items, const char* op);
  void memo_put(uint64_t index, const char* op) { memo_[index] = top(op); }
  void memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) throw PickleError(fmt::format("pickle memo has no entry {} (offset {})", index, at_));
    stack_.push_back(it->second);
  }
  int64_t text_int(std::string_view s, const char* what);
  void push_long(const std::byte* p, std::size_t n);

  const std::byte* begin_;
  const std::byte* p_;
  const std::byte* end_;
  std::shared_ptr<const void> owner_;
  const GlobalPolicy& policy_;
  const PersistentLoader& persistent_;
  std::size_t budget_;
  std::size_t at_ = 0;  // offset of the opcode being run, for messages
  std::vector<NodePtr> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<uint64_t, NodePtr> memo_;
};

void Machine::op_global(std::string module, std::string name) {
  std::string q = module + "." + name;
  if (!policy_.allowed(q)) {
    throw PickleError(
        fmt::format("refusing pickle global '{}': only {} are allowed", printable(q), policy_.description()));
  }
  push(Value{Object{"global:" + q, {}, nullptr}});
}

void Machine::call(const NodePtr& callable, List args, int depth) {
  const auto* obj = std::get_if<Object>(&callable->v.v);
  if (!obj || obj->kind.rfind("global:", 0) != 0) {
    throw PickleError(fmt::format("pickle calls {} at offset {}; only allowed globals can be called",
                                  callable->v.type_name(), at_));
  }
  std::string q = obj->kind.substr(7);
  const auto* h = policy_.callable(q);
  if (!h) {
    throw PickleError(fmt::format("pickle global '{}' may only appear as a value, not be called", printable(q)));
  }
  if (depth + 1 > kMaxDepth) {
    throw PickleError(fmt::format("pickle nests containers deeper than {} levels (offset {})", kMaxDepth, at_));
  }
  Value result = (*h)(args);
  push(std::move(result), depth + 1);
}

void Machine::op_build() {
  NodePtr state = pop("BUILD");
  NodePtr& target = top("BUILD");
  if (auto* obj = std::get_if<Object>(&target->v.v)) {
    const auto* b = policy_.builder(obj->kind);
    if (!b) throw PickleError(fmt::format("pickle BUILD on {} is not allowed", target->v.type_name()));
    Value built = (*b)(*obj, state->v);
    target->depth = deepen(target->depth, state);
    target->v = std::move(built);  // in place: the memo sees the built object
    return;
  }
  if (std::holds_alternative<Dict>(target->v.v)) return;  // OrderedDict attributes (state_dict._metadata)
  throw PickleError(fmt::format("pickle BUILD on {} is not allowed", target->v.type_name()));
}

void Machine::op_persid(NodePtr pid) {
  if (!persistent_) {
    throw PickleError(fmt::format("pickle has a persistent id at offset {} but no persistent loader was given", at_));
  }
  push(persistent_(pid->v), pid->depth + 1);
}

void Machine::append_to(NodePtr& target, std::vector<NodePtr> items, const char* op) {
  auto* l = std::get_if<List>(&target->v.v);
  if (!l) throw PickleError(fmt::format("pickle {} on {} at offset {}", op, target->v.type_name(), at_));
  int depth = target->depth;
  List more = take_list(std::move(items), &depth);
  target->depth = depth;
  for (auto& x : more) l->push_back(std::move(x));
}

void Machine::setitems(NodePtr& target, std::vector<NodePtr> items, const char* op) {
  auto* d = std::get_if<Dict>(&target->v.v);
  if (!d) throw PickleError(fmt::format("pickle {} on {} at offset {}", op, target->v.type_name(), at_));
  if (items.size() % 2 != 0) throw PickleError(fmt::format("pickle {} at offset {} has an odd item count", op, at_));
  int depth = target->depth;
  List kv = take_list(std::move(items), &depth);
  target->depth = depth;
  for (std::size_t i = 0; i < kv.size(); i += 2) {
    // A repeated key replaces the earlier value, as a Python dict does.
    bool replaced = false;
    auto* ks = std::get_if<std::string>(&kv[i].v);
    if (ks && d->size() < 4096) {  // bounded scan: huge dicts come from plain dumps without repeats
      for (auto& [k, v] : *d) {
        if (auto* s = std::get_if<std::string>(&k.v); s && *s == *ks) {
          v = std::move(kv[i + 1]);
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) d->emplace_back(std::move(kv[i]), std::move(kv[i + 1]));
  }
}

int64_t Machine::text_int(std::string_view s, const char* what) {
  if (!s.empty() && (s.back() == 'L')) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t x = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    throw PickleError(fmt::format("pickle {} at offset {} is not a 64-bit integer: '{}'", what, at_, printable(s)));
  }
  return x;
}

void Machine::push_long(const std::byte* p, std::size_t n) {
  if (n == 0) return push(Value{int64_t{0}});
  // Little-endian two's complement; beyond 8 bytes only sign extension is allowed.
  bool negative = (static_cast<uint8_t>(p[n - 1]) & 0x80) != 0;
  for (std::size_t i = 8; i < n; ++i) {
    if (static_cast<uint8_t>(p[i]) != (negative ? 0xff : 0x00)) {
      throw PickleError(fmt::format("pickle integer of {} bytes at offset {} does not fit in 64 bits", n, at_));
    }
  }
  uint64_t u = negative ? ~uint64_t{0} : 0;
  for (std::size_t i = 0; i < std::min<std::size_t>(n, 8); ++i) {
    u &= ~(uint64_t{0xff} << (8 * i));
    u |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
  }
  if (n > 8 && (static_cast<int64_t>(u) < 0) != negative) {
    throw PickleError(fmt::format("pickle integer of {} bytes at offset {} does not fit in 64 bits", n, at_));
  }
  push(Value{static_cast<int64_t>(u)});
}

Value Machine::run() {
  while (p_ < end_) {
    at_ = offset();
    const auto op = static_cast<uint8_t>(*p_++);
    switch (op) {
      case 0x80: {  // PROTO
        uint8_t v = read<uint8_t>("PROTO");
        if (v > 5) throw PickleError(fmt::format("unsupported pickle protocol {} (expected 2 to 5)", v));
        break;
      }
      case 0x95:  // FRAME: only a length hint; check it is not absurd
        length(read<uint64_t>("FRAME"), "FRAME");
        break;
      case '.': {  // STOP
        NodePtr n = pop("STOP");
        return take_value(std::move(n));
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '0':  // POP: the top item, or the topmost mark when the current frame is empty
        if (stack_.size() > floor()) {
          stack_.pop_back();
        } else {
          pop_mark("POP");
        }
        break;
      case '1': pop_mark("POP_MARK"); break;
      case '2': stack_.push_back(top("DUP")); break;

      // --- scalars
      case 'N': push(Value{None{}}); break;
      case 0x88: push(Value{true}); break;
      case 0x89: push(Value{false}); break;
      case 'K': push(Value{int64_t{read<uint8_t>("BININT1")}}); break;
      case 'M': push(Value{int64_t{read<uint16_t>("BININT2")}}); break;
      case 'J': push(Value{int64_t{read<int32_t>("BININT")}}); break;
      case 0x8a: {  // LONG1
        uint8_t n = read<uint8_t>("LONG1");
        push_long(take(n, "LONG1"), n);
        break;
      }
      case 0x8b: {  // LONG4
        int32_t n = read<int32_t>("LONG4");
        if (n < 0) throw PickleError(fmt::format("pickle LONG4 at offset {} has a negative length", at_));
        push_long(take(static_cast<uint64_t>(n), "LONG4"), static_cast<std::size_t>(n));
        break;
      }
      case 'I': {  // INT (text); "01"/"00" are True/False
        std::string_view s = line("INT");
        if (s == "01" || s == "00") {
          push(Value{s == "01"});
        } else {
          push(Value{text_int(s, "INT")});
        }
        break;
      }
      case 'L': push(Value{text_int(line("LONG"), "LONG")}); break;
      case 'G': {  // BINFLOAT, big-endian
        const std::byte* b = take(8, "BINFLOAT");
        uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(b[i]);
        double d;
        std::memcpy(&d, &u, 8);
        push(Value{d});
        break;
      }
      case 'F': {  // FLOAT (text)
        std::string s(line("FLOAT"));
        char* e = nullptr;
        double d = std::strtod(s.c_str(), &e);
        if (s.empty() || e != s.c_str() + s.size()) {
          throw PickleError(fmt::format("pickle FLOAT at offset {} is not a number: '{}'", at_, printable(s)));
        }
        push(Value{d});
        break;
      }

      // --- strings and bytes
      case 0x8c: {  // SHORT_BINUNICODE
        uint64_t n = read<uint8_t>("SHORT_BINUNICODE");
        const std::byte* b = take(n, "SHORT_BINUNICODE");
        push(Value{std::string(reinterpret_cast<const char*>(b), n)});
        break;
      }
      case 'X': {  // BINUNICODE
        uint64_t n = read<uint32_t>("BINUNICODE");
        const std::byte* b = take(n, "BINUNICODE");
        push(Value{std::string(reinterpret_cast<const char*>(b), n)});
        break;
      }
      case 0x8d: {  // BINUNICODE8
        uint64_t n = read<uint64_t>("BINUNICODE8");
        const std::byte* b = take(n, "BINUNICODE8");
        push(Value{std::string(reinterpret_cast<const char*>(b), n)});
        break;
      }
      case 'U': {  // SHORT_BINSTRING (Python 2 str)
        uint64_t n = read<uint8_t>("SHORT_BINSTRING");
        const std::byte* b = take(n, "SHORT_BINSTRING");
        push(Value{std::string(reinterpret_cast<const char*>(b), n)});
        break;
      }
      case 'T': {  // BINSTRING (Python 2 str)
        int32_t n = read<int32_t>("BINSTRING");
        if (n < 0) throw PickleError(fmt::format("pickle BINSTRING at offset {} has a negative length", at_));
        const std::byte* b = take(static_cast<uint64_t>(n), "BINSTRING");
        push(Value{std::string(reinterpret_cast<const char*>(b), static_cast<std::size_t>(n))});
        break;
      }
      case 'S':    // STRING (text, quoted) and UNICODE (text): accepted without escapes only
      case 'V': {
        std::string_view s = line(op == 'S' ? "STRING" : "UNICODE");
        if (op == 'S') {
          if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front()) {
            throw PickleError(fmt::format("pickle STRING at offset {} is not quoted", at_));
          }
          s = s.substr(1, s.size() - 2);
        }
        if (s.find('\\') != std::string_view::npos) {
          throw PickleError(fmt::format("pickle text string at offset {} uses escapes, which are not supported", at_));
        }
        push(Value{std::string(s)});
        break;
      }
      case 'C': {  // SHORT_BINBYTES
        uint64_t n = read<uint8_t>("SHORT_BINBYTES");
        push(Value{Bytes{take(n, "SHORT_BINBYTES"), n, owner_}});
        break;
      }
      case 'B': {  // BINBYTES
        uint64_t n = read<uint32_t>("BINBYTES");
        push(Value{Bytes{take(n, "BINBYTES"), n, owner_}});
        break;
      }
      case 0x8e:    // BINBYTES8
      case 0x96: {  // BYTEARRAY8 (built as bytes)
        const char* what = op == 0x8e ? "BINBYTES8" : "BYTEARRAY8";
        uint64_t n = read<uint64_t>(what);
        push(Value{Bytes{take(n, what), n, owner_}});
        break;
      }
      case 0x97:
        throw PickleError(fmt::format("pickle uses an out-of-band buffer (NEXT_BUFFER at offset {}), "
                                      "which is not supported",
                                      at_));
      case 0x98:  // READONLY_BUFFER: a no-op on bytes
        if (!std::holds_alternative<Bytes>(top("READONLY_BUFFER")->v.v)) {
          throw PickleError(fmt::format("pickle READONLY_BUFFER at offset {} is not on bytes", at_));
        }
        break;

      // --- tuples, lists, dicts, sets
      case ')': push(Value{Tuple{}}); break;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::size_t n = op - 0x84u;
        std::vector<NodePtr> items(n);
        for (std::size_t i = n; i-- > 0;) items[i] = pop("TUPLEn");
        int depth = 0;
        List l = take_list(std::move(items), &depth);
        push(Value{Tuple{std::move(l)}}, depth);
        break;
      }
      case 't': {
        int depth = 0;
        List l = take_list(pop_mark("TUPLE"), &depth);
        push(Value{Tuple{std::move(l)}}, depth);
        break;
      }
      case ']': push(Value{List{}}); break;
      case 0x8f: push(Value{List{}}); break;  // EMPTY_SET, built as a list
      case 'l':
      case 0x91: {  // LIST, FROZENSET
        int depth = 0;
        List l = take_list(pop_mark(op == 'l' ? "LIST" : "FROZENSET"), &depth);
        push(Value{std::move(l)}, depth);
        break;
      }
      case 'a': {  // APPEND
        NodePtr x = pop("APPEND");
        std::vector<NodePtr> one{std::move(x)};
        append_to(top("APPEND"), std::move(one), "APPEND");
        break;
      }
      case 'e':
      case 0x90: {  // APPENDS, ADDITEMS
        const char* name = op == 'e' ? "APPENDS" : "ADDITEMS";
        std::vector<NodePtr> items = pop_mark(name);
        append_to(top(name), std::move(items), name);
        break;
      }
      case '}': push(Value{Dict{}}); break;
      case 'd': {  // DICT
        std::vector<NodePtr> items = pop_mark("DICT");
        push(Value{Dict{}});
        setitems(stack_.back(), std::move(items), "DICT");
        break;
      }
      case 's': {  // SETITEM
        NodePtr v = pop("SETITEM");
        NodePtr k = pop("SETITEM");
        std::vector<NodePtr> kv{std::move(k), std::move(v)};
        setitems(top("SETITEM"), std::move(kv), "SETITEM");
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<NodePtr> items = pop_mark("SETITEMS");
        setitems(top("SETITEMS"), std::move(items), "SETITEMS");
        break;
      }

      // --- memo
      case 'p': memo_put(static_cast<uint64_t>(text_int(line("PUT"), "PUT")), "PUT"); break;
      case 'q': memo_put(read<uint8_t>("BINPUT"), "BINPUT"); break;
      case 'r': memo_put(read<uint32_t>("LONG_BINPUT"), "LONG_BINPUT"); break;
      case 0x94: memo_put(memo_.size(), "MEMOIZE"); break;
      case 'g': memo_get(static_cast<uint64_t>(text_int(line("GET"), "GET"))); break;
      case 'h': memo_get(read<uint8_t>("BINGET")); break;
      case 'j': memo_get(read<uint32_t>("LONG_BINGET")); break;

      // --- globals and calls
      case 'c': {  // GLOBAL
        std::string module(line("GLOBAL"));
        std::string name(line("GLOBAL"));
        op_global(std::move(module), std::move(name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        NodePtr name = pop("STACK_GLOBAL");
        NodePtr module = pop("STACK_GLOBAL");
        auto* m = std::get_if<std::string>(&module->v.v);
        auto* n = std::get_if<std::string>(&name->v.v);
        if (!m || !n) throw PickleError(fmt::format("pickle STACK_GLOBAL at offset {} needs two strings", at_));
        op_global(*m, *n);
        break;
      }
      case 'i': {  // INST: module, name lines; arguments since the mark
        std::string module(line("INST"));
        std::string name(line("INST"));
        int depth = 0;
        List args = take_list(pop_mark("INST"), &depth);
        op_global(std::move(module), std::move(name));
        NodePtr cls = pop("INST");
        call(cls, std::move(args), depth);
        break;
      }
      case 'o': {  // OBJ: class then arguments since the mark
        std::vector<NodePtr> items = pop_mark("OBJ");
        if (items.empty()) throw PickleError(fmt::format("pickle OBJ at offset {} has no class", at_));
        NodePtr cls = std::move(items.front());
        items.erase(items.begin());
        int depth = 0;
        List args = take_list(std::move(items), &depth);
        call(cls, std::move(args), depth);
        break;
      }
      case 'R':       // REDUCE
      case 0x81: {    // NEWOBJ
        const char* name = op == 'R' ? "REDUCE" : "NEWOBJ";
        NodePtr args = pop(name);
        NodePtr fn = pop(name);
        auto* t = std::get_if<Tuple>(&args->v.v);
        if (!t) throw PickleError(fmt::format("pickle {} at offset {} needs an argument tuple", name, at_));
        int depth = args->depth;
        Value a = take_value(std::move(args));
        call(fn, std::move(std::get<Tuple>(a.v).items), depth);
        break;
      }
      case 0x92: {  // NEWOBJ_EX: cls, args, kwargs (must be empty)
        NodePtr kwargs = pop("NEWOBJ_EX");
        NodePtr args = pop("NEWOBJ_EX");
        NodePtr cls = pop("NEWOBJ_EX");
        auto* kw = std::get_if<Dict>(&kwargs->v.v);
        if (!std::holds_alternative<Tuple>(args->v.v) || !kw || !kw->empty()) {
          throw PickleError(fmt::format("pickle NEWOBJ_EX at offset {} needs a tuple and no keywords", at_));
        }
        int depth = args->depth;
        Value a = take_value(std::move(args));
        call(cls, std::move(std::get<Tuple>(a.v).items), depth);
        break;
      }
      case 'b': op_build(); break;
      case 'P': {  // PERSID (text)
        std::string_view s = line("PERSID");
        op_persid(make_node(Value{std::string(s)}));
        break;
      }
      case 'Q': op_persid(pop("BINPERSID")); break;
      case 0x82:
      case 0x83:
      case 0x84:
        throw PickleError(fmt::format("pickle uses the extension registry (EXT opcode at offset {}), "
                                      "which is not supported",
                                      at_));
      default:
        throw PickleError(fmt::format("bad pickle opcode 0x{:02x} at offset {}", op, at_));
    }
  }
  throw PickleError(fmt::format("truncated pickle: no STOP opcode in {} bytes", end_ - begin_));
}

}  // namespace

Value loads(const std::byte* data, std::size_t size, std::shared_ptr<const void> owner, const GlobalPolicy& policy,
            const PersistentLoader& persistent) {
  if (size == 0 || data == nullptr) throw PickleError("truncated pickle: the input is empty");
  if (data[0] != std::byte{0x80}) {
    bool zip = size >= 2 && data[0] == std::byte{'P'} && data[1] == std::byte{'K'};
    throw PickleError(fmt::format("not a pickle of protocol 2 to 5: the first byte is 0x{:02x}, expected 0x80{}",
                                  static_cast<unsigned>(data[0]), zip ? " (this looks like a zip archive)" : ""));
  }
  Machine m(data, size, std::move(owner), policy, persistent);
  return m.run();
}

// ---------------------------------------------------------------------------------------------------------
// plain data spelled through globals (protocol 2), and numpy

namespace {

const List& expect_args(const List& args, std::size_t lo, std::size_t hi, const char* fn) {
  if (args.size() < lo || args.size() > hi) {
    throw PickleError(fmt::format("pickle call of {} has {} arguments, expected {} to {}", fn, args.size(), lo, hi));
  }
  return args;
}

// UTF-8 (as pickled) to the latin-1 bytes it spells: _codecs.encode(str, 'latin1').
Value latin1_bytes(const List& args) {
  expect_args(args, 2, 2, "_codecs.encode");
  const std::string& enc = args[1].str();
  if (enc != "latin1" && enc != "latin-1" && enc != "iso-8859-1") {
    throw PickleError(fmt::format("pickle _codecs.encode uses encoding '{}', expected 'latin1'", printable(enc)));
  }
  const std::string& s = args[0].str();
  auto buf = std::make_shared<std::vector<std::byte>>();
  buf->reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      buf->push_back(std::byte{c});
    } else if ((c == 0xc2 || c == 0xc3) && i + 1 < s.size() && (static_cast<uint8_t>(s[i + 1]) & 0xc0) == 0x80) {
      buf->push_back(std::byte(static_cast<uint8_t>(((c & 0x1f) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3f))));
      ++i;
    } else {
      throw PickleError("pickle _codecs.encode argument is not latin-1 text");
    }
  }
  const std::byte* data = buf->data();
  std::size_t n = buf->size();
  return Value{Bytes{data, n, std::shared_ptr<const void>(std::move(buf))}};
}

Value bytes_ctor(const List& args) {
  expect_args(args, 0, 2, "bytes");
  if (args.empty()) return Value{Bytes{}};
  if (std::holds_alternative<Bytes>(args[0].v)) return args[0];
  throw PickleError(fmt::format("pickle bytes() of {} is not supported", args[0].type_name()));
}

Value set_ctor(const List& args) {
  expect_args(args, 0, 1, "set");
  if (args.empty()) return Value{List{}};
  return Value{args[0].list()};
}

// --- numpy dtypes: Object{kind="numpy.dtype", args={code, byteorder, elsize}}

struct DtypeInfo {
  char kind = '?';
  int64_t itemsize = 0;
  bool little = true;
  std::string code;  // for messages, e.g. "<f2"
};

Value dtype_ctor(const List& args) {
  expect_args(args, 1, 3, "numpy.dtype");
  if (!std::holds_alternative<std::string>(args[0].v)) {
    throw PickleError(fmt::format("pickle numpy.dtype of {} is not supported", args[0].type_name()));
  }
  return Value{Object{"numpy.dtype", {args[0], Value{std::string("|")}, Value{int64_t{-1}}}, nullptr}};
}

Value dtype_setstate(const Object& obj, const Value& state) {
  // (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
  const auto& t = state.tuple().items;
  if (t.size() < 8) throw PickleError("pickle numpy dtype state has fewer than 8 items");
  Object out = obj;
  out.args[1] = Value{t[1].str()};
  out.args[2] = Value{t[5].integer()};
  if (!t[2].is_none() || !t[3].is_none()) out.args[0] = Value{std::string("structured")};
  return Value{std::move(out)};
}

DtypeInfo dtype_info(const Value& v) {
  const auto* o = std::get_if<Object>(&v.v);
  if (!o || o->kind != "numpy.dtype" || o->args.size() != 3) {
    throw PickleError(fmt::format("expected a numpy dtype, got {}", v.type_name()));
  }
  DtypeInfo d;
  std::string_view code = o->args[0].str();
  const std::string& order = o->args[1].str();
  if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '|' || code[0] == '=')) {
    if (code[0] == '>') d.little = false;
    code.remove_prefix(1);
  }
  if (order == ">") d.little = false;
  d.code = std::string(order.empty() ? "|" : order.substr(0, 1)) + std::string(code);
  if (code.empty() || code == "structured") return d;
  d.kind = code[0];
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(code.data() + 1, code.data() + code.size(), n);
  if (ec != std::errc() || ptr != code.data() + code.size() || n < 0 || n > (int64_t{1} << 30)) {
    d.kind = '?';
    return d;
  }
  int64_t elsize = o->args[2].integer();
  d.itemsize = d.kind == 'U' ? (elsize > 0 ? elsize : 4 * n) : n;
  if (d.itemsize <= 1) d.little = true;  // byte order does not apply
  return d;
}

std::vector<int64_t> shape_of(const Value& v, int64_t* numel) {
  std::vector<int64_t> shape;
  const List* items = nullptr;
  if (auto* t = std::get_if<Tuple>(&v.v)) items = &t->items;
  if (auto* l = std::get_if<List>(&v.v)) items = l;
  if (!items) return {v.integer()};  // _frombuffer may get a bare int
  if (items->size() > 32) throw PickleError(fmt::format("numpy array has {} dimensions", items->size()));
  int64_t n = 1;
  for (const auto& d : *items) {
    int64_t x = d.integer();
    if (x < 0) throw PickleError(fmt::format("numpy array has a negative dimension {}", x));
    if (x != 0 && n > (int64_t{1} << 62) / x) throw PickleError("numpy array shape is absurdly large");
    n *= x;
    shape.push_back(x);
  }
  *numel = n;
  return shape;
}

void append_utf8(std::string& out, uint32_t c) {
  if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) c = 0xfffd;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xc0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xe0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  }
}

// Fixed-width 'U' (UTF-32LE) or 'S' (bytes) elements to a list of strings, trailing NULs dropped.
Value text_elements(const DtypeInfo& d, const Bytes& raw, int64_t numel) {
  List out;
  out.reserve(static_cast<std::size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) {
    const std::byte* e = raw.data + i * d.itemsize;
    std::string s;
    if (d.kind == 'S') {
      std::size_t n = static_cast<std::size_t>(d.itemsize);
      while (n > 0 && e[n - 1] == std::byte{0}) --n;
      s.assign(reinterpret_cast<const char*>(e), n);
    } else {
      int64_t n = d.itemsize / 4;
      while (n > 0 && load_le<uint32_t>(e + 4 * (n - 1)) == 0) --n;
      for (int64_t j = 0; j < n; ++j) append_utf8(s, load_le<uint32_t>(e + 4 * j));
    }
    out.push_back(Value{std::move(s)});
  }
  return Value{std::move(out)};
}

// An array from its dtype, shape, order and raw data (bytes, or a list for dtype object).
Value make_array(const DtypeInfo& d, std::vector<int64_t> shape, int64_t numel, bool fortran, const Value& raw) {
  if (d.kind == 'O') {
    const List& items = raw.list();
    if (static_cast<int64_t>(items.size()) != numel) {
      throw PickleError(fmt::format("numpy object array of shape {} holds {} items", join_shape(shape), items.size()));
    }
    return Value{items};
  }
  DType t{};
  bool numeric = d.little && dtype_from_numpy(fmt::format("{}{}", d.kind, d.itemsize), &t);
  bool text = d.itemsize > 0 && ((d.kind == 'U' && d.little && d.itemsize % 4 == 0) || d.kind == 'S');
  if (!numeric && !text) return Value{Object{fmt::format("numpy array of unsupported dtype '{}'", d.code), {}, {}}};
  const auto* bytes = std::get_if<Bytes>(&raw.v);
  if (!bytes) throw PickleError(fmt::format("numpy array data is {}, expected bytes", raw.type_name()));
  if (d.itemsize != 0 && numel > static_cast<int64_t>(bytes->size) / d.itemsize) {
    throw PickleError(fmt::format("numpy array of shape {} and dtype '{}' needs {} bytes, got {}", join_shape(shape),
                                  d.code, static_cast<uint64_t>(numel) * static_cast<uint64_t>(d.itemsize), bytes->size));
  }
  std::size_t nbytes = static_cast<std::size_t>(numel * d.itemsize);
  if (nbytes != bytes->size) {
    throw PickleError(fmt::format("numpy array of shape {} and dtype '{}' needs {} bytes, got {}", join_shape(shape),
                                  d.code, nbytes, bytes->size));
  }
  if (text) return text_elements(d, *bytes, numel);
  NdArray a;
  a.dtype = t;
  a.shape = std::move(shape);
  a.fortran_order = fortran && a.shape.size() > 1;
  a.data = bytes->data;
  a.nbytes = nbytes;
  a.owner = bytes->owner;
  return Value{std::move(a)};
}

// numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b'): an empty array that BUILD fills.
Value reconstruct(const List& args) {
  expect_args(args, 1, 3, "numpy _reconstruct");
  const auto* cls = std::get_if<Object>(&args[0].v);
  if (!cls || cls->kind != "global:numpy.ndarray") {
    throw PickleError(fmt::format("numpy _reconstruct of {} is not supported, expected numpy.ndarray",
                                  args[0].type_name()));
  }
  return Value{Object{"numpy.ndarray", {}, nullptr}};
}

// ndarray.__setstate__((version, shape, dtype, is_fortran, rawdata)); the version is absent in old pickles.
Value ndarray_setstate(const Object&, const Value& state) {
  const auto& t = state.tuple().items;
  if (t.size() != 4 && t.size() != 5) {
    throw PickleError(fmt::format("numpy array state has {} items, expected 4 or 5", t.size()));
  }
  std::size_t o = t.size() - 4;
  int64_t numel = 1;
  std::vector<int64_t> shape = shape_of(t[o], &numel);
  DtypeInfo d = dtype_info(t[o + 1]);
  bool fortran = t[o + 2].integer() != 0;
  return make_array(d, std::move(shape), numel, fortran, t[o + 3]);
}

// numpy.core.multiarray.scalar(dtype, bytes-or-object).
Value np_scalar(const List& args) {
  expect_args(args, 1, 2, "numpy scalar");
  DtypeInfo d = dtype_info(args[0]);
  if (d.kind == 'O') {
    if (args.size() < 2) throw PickleError("numpy object scalar has no value");
    return args[1];
  }
  if (args.size() < 2) throw PickleError("numpy scalar has no data");
  Value v = make_array(d, {}, 1, false, args[1]);
  if (auto* l = std::get_if<List>(&v.v); l && l->size() == 1) return (*l)[0];  // a 'U' / 'S' scalar
  return v;
}

// numpy.core.numeric._frombuffer(buffer, dtype, shape, order): protocol 5's spelling of a contiguous array.
Value frombuffer(const List& args) {
  expect_args(args, 4, 4, "numpy _frombuffer");
  DtypeInfo d = dtype_info(args[1]);
  int64_t numel = 1;
  std::vector<int64_t> shape = shape_of(args[2], &numel);
  const std::string& order = args[3].str();
  if (order != "C" && order != "F") throw PickleError(fmt::format("numpy _frombuffer order '{}'", printable(order)));
  return make_array(d, std::move(shape), numel, order == "F", args[0]);
}

}  // namespace

GlobalPolicy GlobalPolicy::plain() {
  GlobalPolicy p;
  p.allow_callable("_codecs.encode", latin1_bytes);
  for (const char* m : {"__builtin__", "builtins"}) {
    std::string mod = m;
    p.allow_callable(mod + ".bytes", bytes_ctor);
    p.allow_callable(mod + ".bytearray", bytes_ctor);
    p.allow_callable(mod + ".set", set_ctor);
    p.allow_callable(mod + ".frozenset", set_ctor);
  }
  p.set_description("plain data");
  return p;
}

GlobalPolicy GlobalPolicy::numpy() {
  GlobalPolicy p = plain();
  for (const char* core : {"numpy.core", "numpy._core"}) {
    std::string c = core;
    p.allow_callable(c + ".multiarray._reconstruct", reconstruct);
    p.allow_callable(c + ".multiarray.scalar", np_scalar);
    p.allow_callable(c + ".numeric._frombuffer", frombuffer);
  }
  p.allow_reference("numpy.ndarray");
  p.allow_callable("numpy.dtype", dtype_ctor);
  p.allow_build("numpy.ndarray", ndarray_setstate);
  p.allow_build("numpy.dtype", dtype_setstate);
  p.set_description("numpy arrays and plain data");
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// files

namespace {

// The mappings the SIGBUS handler may repair: fixed slots, claimed and released with atomics (no locks, no
// allocation: the handler runs inside a signal).
struct MappingSlot {
  std::atomic<uintptr_t> begin{0}, end{0};
  std::atomic<bool> truncated{false};
};
constexpr int kMappingSlots = 64;
MappingSlot g_mappings[kMappingSlots];
struct sigaction g_previous_bus;

void on_bus(int sig, siginfo_t* info, void* context) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (auto& m : g_mappings) {
    const uintptr_t begin = m.begin.load(), end = m.end.load();
    if (begin == 0 || addr < begin || addr >= end) continue;
    // The file shrank under this mapping: zeros over the rest of it, so the faulting read and the ones after it
    // complete; the reader checks truncated() before it trusts what it read.
    const uintptr_t page = addr & ~(static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE)) - 1);
    ::mmap(reinterpret_cast<void*>(page), end - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    m.truncated = true;
    return;
  }
  // Not ours: what would have happened without this handler.
  if (g_previous_bus.sa_flags & SA_SIGINFO && g_previous_bus.sa_sigaction) {
    g_previous_bus.sa_sigaction(sig, info, context);
  } else if (g_previous_bus.sa_handler != SIG_DFL && g_previous_bus.sa_handler != SIG_IGN && g_previous_bus.sa_handler) {
    g_previous_bus.sa_handler(sig);
  } else {
    ::signal(SIGBUS, SIG_DFL);
    ::raise(SIGBUS);
  }
}

int register_mapping(const void* addr, std::size_t size) {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous_bus);
  });
  const auto begin = reinterpret_cast<uintptr_t>(addr);
  for (int i = 0; i < kMappingSlots; ++i) {
    uintptr_t expected = 0;
    if (g_mappings[i].begin.compare_exchange_strong(expected, begin)) {
      g_mappings[i].truncated = false;
      g_mappings[i].end = begin + size;
      return i;
    }
  }
  return -1;  // more than 64 files mapped at once: this one is not protected
}

void unregister_mapping(int slot) {
  if (slot < 0) return;
  g_mappings[slot].end = 0;
  g_mappings[slot].begin = 0;
}

}  // namespace

bool MappedFile::truncated() const { return slot >= 0 && g_mappings[slot].truncated.load(); }

MappedFile map_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; it is refused below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw PickleError(fmt::format("cannot open file {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw PickleError(fmt::format("cannot read file {}: {}", path, std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw PickleError(fmt::format("cannot read file {}: not a regular file", path));
  }
  MappedFile f;
  f.size = static_cast<std::size_t>(st.st_size);
  if (f.size == 0) {
    ::close(fd);
    return f;
  }
  void* addr = ::mmap(nullptr, f.size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (addr == MAP_FAILED) throw PickleError(fmt::format("cannot map file {}: {}", path, std::strerror(e)));
  ::madvise(addr, f.size, MADV_SEQUENTIAL);
  std::size_t n = f.size;
  f.data = static_cast<const std::byte*>(addr);
  f.slot = register_mapping(addr, n);
  const int slot = f.slot;
  f.owner = std::shared_ptr<const void>(addr, [n, slot](const void* p) {
    unregister_mapping(slot);
    ::munmap(const_cast<void*>(p), n);
  });
  return f;
}

Value load_file(const std::string& path, const GlobalPolicy& policy, const PersistentLoader& persistent) {
  MappedFile f = map_file(path);
  auto truncated = [&] { return PickleError(fmt::format("file {} was truncated while it was being read", path)); };
  try {
    Value v = loads(f.data, f.size, f.owner, policy, persistent);
    if (f.truncated()) throw truncated();
    return v;
  } catch (const PickleError& e) {
    if (f.truncated()) throw truncated();
    throw PickleError(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace dmdbench::pickle
