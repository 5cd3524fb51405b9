// state_dict / strict load_state_dict with the reference's key order and error messages that name every key.
#include "models/state_dict.h"

#include <map>
#include <sstream>

namespace dmdbench::models {

namespace {

// Python's Module.state_dict order: own parameters, own buffers, then each child recursively.
void collect(const torch::nn::Module& m, const std::string& prefix, StateDict& out) {
  for (const auto& item : m.named_parameters(/*recurse=*/false))
    out.emplace_back(prefix + item.key(), item.value());
  for (const auto& item : m.named_buffers(/*recurse=*/false))
    out.emplace_back(prefix + item.key(), item.value());
  for (const auto& child : m.named_children()) collect(*child.value(), prefix + child.key() + ".", out);
}

std::string shape_str(const torch::Tensor& t) {
  std::ostringstream os;
  os << "[";
  for (int64_t i = 0; i < t.dim(); ++i) os << (i ? "," : "") << t.size(i);
  os << "]";
  return os.str();
}

}  // namespace

StateDict state_dict(const torch::nn::Module& m) {
  StateDict out;
  collect(m, "", out);
  return out;
}

void load_state_dict(torch::nn::Module& m, const StateDict& state) {
  const StateDict own = state_dict(m);
  std::map<std::string, const torch::Tensor*> given;
  std::vector<std::string> duplicate;
  for (const auto& [name, tensor] : state) {
    if (!given.emplace(name, &tensor).second) duplicate.push_back(name);
  }
  std::vector<std::string> missing, unexpected, shape;
  std::map<std::string, bool> known;
  for (const auto& [name, tensor] : own) {
    known[name] = true;
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
    } else if (!it->second->defined() || it->second->sizes() != tensor.sizes()) {
      shape.push_back(name + " expected " + shape_str(tensor) + " got " +
                      (it->second->defined() ? shape_str(*it->second) : std::string("undefined")));
    }
  }
  for (const auto& [name, tensor] : state) {
    (void)tensor;
    if (!known.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !shape.empty() || !duplicate.empty()) {
    std::ostringstream os;
    os << "state dict does not match the model";
    auto list = [&os](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      os << "; " << what << ": ";
      for (size_t i = 0; i < names.size(); ++i) os << (i ? ", " : "") << names[i];
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("shape", shape);
    list("duplicate", duplicate);
    throw StateDictMismatch(os.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : own) {
    torch::Tensor dst = tensor;  // shares storage with the module's parameter/buffer
    dst.copy_(*given.at(name));
  }
}

}  // namespace dmdbench::models
