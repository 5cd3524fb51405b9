// `data info` and `data inspect-checkpoint`.
#include <fmt/format.h>

#include <iostream>

#include "harness/cli/verb.h"
#include "harness/data/data_info.h"

namespace dmdbench::cli {

namespace {

int data_verb(const VerbArgs& a) {
  po::options_description desc("options");
  std::string sub, target, out_dir;
  uint64_t seed = 1;
  desc.add_options()("subcommand", po::value(&sub)->required(), "info | inspect-checkpoint | random-bert")(
      "target", po::value(&target)->required(),
      "PATH or synthetic-NAME (info), PATH (inspect-checkpoint), a BERT config.json (random-bert)")(
      "out", po::value(&out_dir), "random-bert: the model folder to write")(
      "seed", po::value(&seed)->default_value(seed), "random-bert: the initialiser's seed");
  po::positional_options_description pos;
  pos.add("subcommand", 1).add("target", 1);
  po::variables_map vm;
  if (!parse("data info PATH|synthetic-NAME | data inspect-checkpoint PATH | data random-bert CONFIG.json "
             "--out DIR",
             desc, a.args, vm, &pos))
    return 0;
  if (sub == "info") return data_info(target, std::cout);
  if (sub == "inspect-checkpoint") return inspect_checkpoint(target, std::cout);
  if (sub == "random-bert") {
    if (out_dir.empty()) throw po::error("data random-bert needs --out DIR");
    return make_random_bert_folder(target, out_dir, seed, std::cout);
  }
  throw po::error(
      fmt::format("unknown data subcommand '{}', expected info, inspect-checkpoint or random-bert", sub));
}

}  // namespace

std::vector<VerbImpl> data_verbs() { return {{"data", data_verb}}; }

}  // namespace dmdbench::cli
