// The text_bert channel against a BERT (dataset.h: check_text_bert).
#include <fmt/format.h>

#include "harness/data/dataset.h"

namespace dmdbench {

namespace {

// Count of values in `values` ([N,L] float) for which `bad` holds, with the first one and its sample.
template <typename Bad>
void refuse_if_any(const Split& s, const torch::Tensor& values, Bad&& bad, const std::string& what) {
  const torch::Tensor flags = bad(values);  // [N,L] bool
  const int64_t count = flags.sum().item<int64_t>();
  if (count == 0) return;
  const int64_t first = flags.reshape({-1}).nonzero()[0][0].item<int64_t>();
  const float value = values.reshape({-1})[first].item<float>();
  throw DataError(fmt::format("split '{}' text_bert holds {} {} (the first, {}, in sample {})", s.name, count, what,
                              value, first / values.size(1)));
}

}  // namespace

void check_text_bert(const Dataset& data, int64_t vocab, int64_t type_vocab) {
  for (const Split* s : {&data.train, &data.valid, &data.test}) {
    if (!s->text_bert.defined())
      throw DataError(fmt::format("split '{}' of {} has no text_bert (token ids, mask, segment ids) for a BERT to "
                                  "read; --set text_encoder=features reads its text features instead",
                                  s->name, data.name));
    const torch::Tensor ids = s->text_bert.select(1, 0), mask = s->text_bert.select(1, 1),
                        types = s->text_bert.select(1, 2);  // [N,L]
    auto not_integral = [](const torch::Tensor& t) { return t.ne(t.floor()); };
    refuse_if_any(*s, ids, not_integral, "token ids that are not integers");
    refuse_if_any(*s, ids, [&](const torch::Tensor& t) { return t.lt(0).logical_or(t.ge(static_cast<double>(vocab))); },
                  fmt::format("token ids outside the vocabulary 0..{}", vocab - 1));
    refuse_if_any(*s, mask, [](const torch::Tensor& t) { return t.ne(0).logical_and(t.ne(1)); },
                  "attention-mask values other than 0 and 1");
    refuse_if_any(*s, types, not_integral, "segment ids that are not integers");
    refuse_if_any(*s, types,
                  [&](const torch::Tensor& t) { return t.lt(0).logical_or(t.ge(static_cast<double>(type_vocab))); },
                  fmt::format("segment ids outside 0..{}", type_vocab - 1));
  }
}

}  // namespace dmdbench
