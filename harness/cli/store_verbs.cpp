// `ls` and `merge`: the store as it is (no LibTorch).
#include <iostream>

#include "harness/cli/verb.h"
#include "results/ls.h"
#include "results/store.h"

namespace dmdbench::cli {

namespace {

int ls_verb(const VerbArgs& a) {
  std::string db = kDefaultDatabase;
  po::options_description desc("options");
  desc.add_options()("db", po::value(&db)->default_value(db), "SQLite results database");
  po::positional_options_description pos;
  pos.add("db", 1);
  po::variables_map vm;
  if (!parse("ls [PATH | --db PATH]", desc, a.args, vm, &pos)) return 0;
  results::Store store(db, /*read_only=*/true);
  std::cout << results::format_ls(store, "");
  return 0;
}

int merge_verb(const VerbArgs& a) {
  std::vector<std::string> files;
  po::options_description desc("options");
  desc.add_options()("files", po::value(&files)->multitoken()->required(), "OUT IN...");
  po::positional_options_description pos;
  pos.add("files", -1);
  po::variables_map vm;
  if (!parse("merge OUT IN...", desc, a.args, vm, &pos)) return 0;
  if (files.size() < 2) throw po::error("merge needs an output database and at least one input");
  results::Store store(files[0]);
  for (std::size_t i = 1; i < files.size(); ++i) {
    store.merge_from(files[i]);
    std::cout << "merged " << files[i] << " into " << files[0] << "\n";
  }
  return 0;
}

}  // namespace

std::vector<VerbImpl> store_verbs() { return {{"ls", ls_verb}, {"merge", merge_verb}}; }

}  // namespace dmdbench::cli
