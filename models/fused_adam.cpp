// FusedAdam (see fused_adam.h).
#include "models/fused_adam.h"

#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>

#include "models/compat.h"
#include "models/kernels.h"

namespace dmdbench::models {

namespace {

// The optimizer's state key for a parameter: a string of the TensorImpl address in LibTorch 1.x (what
// c10::guts::to_string writes), the address itself where the map is keyed by pointer.
template <typename Key>
Key state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return Key(p.unsafeGetTensorImpl());
  }
}

bool fusable(const torch::Tensor& p) {
  return p.device().is_cpu() && p.scalar_type() == torch::kFloat && p.is_contiguous() && p.grad().defined() &&
         p.grad().is_contiguous() && !p.grad().is_sparse();
}

}  // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
  for (const auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    if (options.amsgrad()) return torch::optim::Adam::step(std::move(closure));
    for (const auto& p : group.params())
      if (p.grad().defined() && !fusable(p)) return torch::optim::Adam::step(std::move(closure));
  }
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  using Key = typename std::decay_t<decltype(state_)>::key_type;
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const Key key = state_key<Key>(p);
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto st = std::make_unique<torch::optim::AdamParamState>();
        st->step(0);
        st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(st)).first;
      }
      auto& st = static_cast<torch::optim::AdamParamState&>(*it->second);
      st.step(st.step() + 1);
      kernels::AdamStep s;
      s.lr = options.lr(), s.beta1 = beta1, s.beta2 = beta2, s.eps = options.eps();
      s.weight_decay = options.weight_decay();
      s.bias_correction1 = 1 - std::pow(beta1, static_cast<double>(st.step()));
      s.bias_correction2 = 1 - std::pow(beta2, static_cast<double>(st.step()));
      kernels::adam_update(s, p.numel(), p.data_ptr<float>(), compat::const_float_ptr(p.grad()),
                           st.exp_avg().data_ptr<float>(), st.exp_avg_sq().data_ptr<float>());
    }
  }
  return loss;
}

}  // namespace dmdbench::models
