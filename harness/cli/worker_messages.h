// What a run-ablation worker tells its parent, as one line each on its stdout:
//
//   @dmdbench {"event":"epoch","run":3,"epoch":2,"max_epochs":6,"valid_loss":0.9312,"seconds":10.1}
//   @dmdbench {"event":"robustness","run":3,"point":2,"points":6,"name":"drop:vision"}
//   @dmdbench {"event":"done","run":3,"wall_seconds":61.2,"summary":{"mae":0.93,"acc2_non0":0.817}}
//   @dmdbench {"event":"failed","run":3,"error":"one sentence"}
//
// "run" is the plan index the worker runs. The tag "@dmdbench " starts every message; other lines on the pipe
// (a library's chatter) are not messages and are skipped, as is a tagged line that does not parse (counted, so
// a protocol error shows). No LibTorch.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dmdbench::cli {

struct WorkerMessage {
  enum class Event { Epoch, Robustness, Done, Failed } event = Event::Epoch;
  int run = -1;
  // epoch
  int epoch = 0, max_epochs = 0;
  double valid_loss = 0, seconds = 0;
  // robustness: the grid point just evaluated (1-based) of `points`, by name
  int point = 0, points = 0;
  std::string name;
  // done
  double wall_seconds = 0;
  std::vector<std::pair<std::string, double>> summary;
  // failed
  std::string error;
};

std::string encode(const WorkerMessage& m);  // one line, without the newline
// nullopt for a line that is not a message; `malformed` is set when the line carries the tag but does not parse.
std::optional<WorkerMessage> decode(const std::string& line, bool* malformed = nullptr);

}  // namespace dmdbench::cli
