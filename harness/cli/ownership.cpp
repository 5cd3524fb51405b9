#include "harness/cli/ownership.h"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <vector>

namespace dmdbench::cli {

namespace {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id.empty() ? "unknown" : id;
}

// Field 22 of /proc/PID/stat (after the parenthesised command name, which may hold spaces); 0 if unreadable.
uint64_t start_ticks_of(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(in, line)) return 0;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i)
    if (i == 22) return std::stoull(field);
  return 0;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

}  // namespace

std::string Owner::token() const { return fmt::format("{}|{}|{}|{}|{}", host, boot_id, pid, start_ticks, sweep); }

Owner this_process(const std::string& sweep_id) {
  Owner o;
  o.host = host_name(), o.boot_id = boot_id(), o.pid = getpid(), o.start_ticks = start_ticks_of(getpid());
  o.sweep = sweep_id;
  return o;
}

std::string new_sweep_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

bool parse_owner(const std::string& token, Owner* out) {
  const auto parts = split(token, '|');
  if (parts.size() != 5) return false;
  try {
    out->host = parts[0], out->boot_id = parts[1];
    out->pid = static_cast<pid_t>(std::stol(parts[2]));
    out->start_ticks = std::stoull(parts[3]);
    out->sweep = parts[4];
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

Liveness liveness(const std::string& token) {
  Owner o;
  if (!parse_owner(token, &o)) return Liveness::Unknown;  // a row from before ownership: the heartbeat decides
  if (o.host != host_name()) return Liveness::Unknown;
  if (o.boot_id != boot_id()) return Liveness::Gone;  // this host rebooted since
  const uint64_t now = start_ticks_of(o.pid);
  return now != 0 && now == o.start_ticks ? Liveness::Alive : Liveness::Gone;
}

std::string describe_owner(const std::string& token) {
  Owner o;
  if (!parse_owner(token, &o)) return token.empty() ? "an unknown process" : token;
  return fmt::format("pid {} on {}", o.pid, o.host);
}

}  // namespace dmdbench::cli
