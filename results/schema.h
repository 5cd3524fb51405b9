// The schema as a list of forward migrations. Version N's statements take a database from N-1 to N;
// kSchemaVersion (store.h) is the last entry's version. Never edit a shipped migration: append one.
#pragma once

#include <vector>

namespace dmdbench::results::detail {

struct Migration {
  int version;
  std::vector<const char*> statements;  // DDL only, no values
};

const std::vector<Migration>& migrations();

}  // namespace dmdbench::results::detail
