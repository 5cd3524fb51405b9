// `data info` and `data inspect-checkpoint`.
#include <fmt/format.h>

#include <iostream>

#include "harness/cli/verb.h"
#include "harness/data/data_info.h"

namespace dmdbench::cli {

namespace {

int data_verb(const VerbArgs& a) {
  po::options_description desc("options");
  std::string sub, target;
  desc.add_options()("subcommand", po::value(&sub)->required(), "info | inspect-checkpoint")(
      "target", po::value(&target)->required(), "PATH or synthetic-NAME (info), PATH (inspect-checkpoint)");
  po::positional_options_description pos;
  pos.add("subcommand", 1).add("target", 1);
  po::variables_map vm;
  if (!parse("data info PATH|synthetic-NAME | data inspect-checkpoint PATH", desc, a.args, vm, &pos)) return 0;
  if (sub == "info") return data_info(target, std::cout);
  if (sub == "inspect-checkpoint") return inspect_checkpoint(target, std::cout);
  throw po::error(fmt::format("unknown data subcommand '{}', expected info or inspect-checkpoint", sub));
}

}  // namespace

std::vector<VerbImpl> data_verbs() { return {{"data", data_verb}}; }

}  // namespace dmdbench::cli
