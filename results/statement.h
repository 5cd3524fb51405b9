// A small RAII layer over the SQLite C API, internal to results/: prepared statements with typed binds,
// IMMEDIATE transactions that roll back unless committed, and one translation of SQLite errors into
// StoreError sentences that name the database path.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "results/store.h"

namespace dmdbench::results::detail {

// The one error sentence for a failed SQLite call `what` on database `path`.
[[noreturn]] void fail(sqlite3* db, int rc, const std::string& path, const std::string& what);

class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind_text(int i, const std::string& v);
  Statement& bind_int(int i, int64_t v);
  Statement& bind_real(int i, double v);
  Statement& bind_null(int i);
  template <class T>
  Statement& bind(int i, const T& v) {
    if constexpr (std::is_same_v<T, bool>) return bind_int(i, v ? 1 : 0);
    else if constexpr (std::is_integral_v<T>) return bind_int(i, static_cast<int64_t>(v));
    else if constexpr (std::is_floating_point_v<T>) return bind_real(i, static_cast<double>(v));
    else return bind_text(i, std::string(v));
  }
  // Binds the arguments to parameters 1..N in order.
  template <class... A>
  Statement& bind_all(const A&... a) {
    return bind_all_from(1, a...);
  }
  // Binds the arguments to parameters first, first+1, ... in order.
  template <class... A>
  Statement& bind_all_from(int first, const A&... a) {
    int i = first - 1;
    (bind(++i, a), ...);
    return *this;
  }

  bool step();      // true while a row is available
  void run();       // steps to completion (statements without rows)
  void reset();     // for reuse with new binds

  std::string text(int col) const;
  int64_t integer(int col) const;
  double real(int col) const;
  bool is_null(int col) const;

 private:
  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
};

// BEGIN IMMEDIATE (takes the write lock up front, so the busy timeout applies and no deadlock-style
// SQLITE_BUSY can occur on upgrade); rolls back in the destructor unless commit() ran.
class Transaction {
 public:
  Transaction(sqlite3* db, const std::string& path);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  sqlite3* db_;
  const std::string& path_;
  bool done_ = false;
};

// Runs SQL text without values (DDL, pragmas with constants).
void exec(sqlite3* db, const std::string& path, const std::string& sql);

}  // namespace dmdbench::results::detail
