// Who holds a RUNNING run: the run-ablation parent that claimed it, named by a token
// "host|boot id|pid|process start time|sweep id". A sweep that finds a run RUNNING asks whether its owner is
// still alive: on this host (same boot), by its pid and start time, so a reused pid is not mistaken for it; on
// another host it cannot tell, and the caller falls back to the heartbeat's age. No LibTorch.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace dmdbench::cli {

struct Owner {
  std::string host, boot_id;
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // field 22 of /proc/PID/stat: the process start time in clock ticks since boot
  std::string sweep;
  std::string token() const;
};

Owner this_process(const std::string& sweep_id);
std::string new_sweep_id();                 // 16 random hex digits
bool parse_owner(const std::string& token, Owner* out);

enum class Liveness { Alive, Gone, Unknown };  // Unknown: another host (use the heartbeat's age)
Liveness liveness(const std::string& token);

// "pid 1234 on host" for messages.
std::string describe_owner(const std::string& token);

}  // namespace dmdbench::cli
