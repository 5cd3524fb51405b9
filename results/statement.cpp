#include "results/statement.h"

#include <fmt/format.h>

namespace dmdbench::results::detail {

void fail(sqlite3* db, int rc, const std::string& path, const std::string& what) {
  const std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_FULL:
      throw StoreError(fmt::format("disk full while writing database {} ({}); the change was rolled back", path,
                                   msg));
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      throw StoreError(fmt::format("cannot use database {}: {}; the file was left unchanged", path, msg));
    case SQLITE_READONLY:
      throw StoreError(
          fmt::format("cannot write database {}: the file or its directory is read-only ({})", path, msg));
    case SQLITE_CANTOPEN:
      throw StoreError(fmt::format(
          "cannot open database {}: {} (the directory must exist and be writable)", path, msg));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw StoreError(fmt::format("the database {} was locked for more than {} s by another process ({})", path,
                                   busy_timeout_seconds(), what));
    default:
      throw StoreError(fmt::format("database {}: {} failed: {}", path, what, msg));
  }
}

Statement::Statement(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path), sql_(sql) {
  const int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr);
  if (rc != SQLITE_OK) fail(db_, rc, path_, fmt::format("preparing '{}'", sql_));
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind_text(int i, const std::string& v) {
  const int rc = sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) fail(db_, rc, path_, "binding a value");
  return *this;
}

Statement& Statement::bind_int(int i, int64_t v) {
  const int rc = sqlite3_bind_int64(stmt_, i, v);
  if (rc != SQLITE_OK) fail(db_, rc, path_, "binding a value");
  return *this;
}

Statement& Statement::bind_real(int i, double v) {
  const int rc = sqlite3_bind_double(stmt_, i, v);
  if (rc != SQLITE_OK) fail(db_, rc, path_, "binding a value");
  return *this;
}

Statement& Statement::bind_null(int i) {
  const int rc = sqlite3_bind_null(stmt_, i);
  if (rc != SQLITE_OK) fail(db_, rc, path_, "binding a value");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(db_, rc, path_, fmt::format("running '{}'", sql_));
}

void Statement::run() {
  while (step()) {
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Statement::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}

int64_t Statement::integer(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::real(int col) const { return sqlite3_column_double(stmt_, col); }
bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

Transaction::Transaction(sqlite3* db, const std::string& path) : db_(db), path_(path) {
  exec(db_, path_, "BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  exec(db_, path_, "COMMIT");
  done_ = true;
}

void exec(sqlite3* db, const std::string& path, const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) fail(db, rc, path, fmt::format("running '{}'", sql.substr(0, 60)));
}

}  // namespace dmdbench::results::detail
