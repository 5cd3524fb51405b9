#include "harness/cli/worker_messages.h"

#include <nlohmann/json.hpp>

namespace dmdbench::cli {

namespace {
constexpr const char* kTag = "@dmdbench ";
}

std::string encode(const WorkerMessage& m) {
  nlohmann::ordered_json j;
  switch (m.event) {
    case WorkerMessage::Event::Epoch:
      j = {{"event", "epoch"},           {"run", m.run},           {"epoch", m.epoch},
           {"max_epochs", m.max_epochs}, {"valid_loss", m.valid_loss}, {"seconds", m.seconds}};
      break;
    case WorkerMessage::Event::Done: {
      nlohmann::ordered_json summary = nlohmann::ordered_json::object();
      for (const auto& [name, value] : m.summary) summary[name] = value;
      j = {{"event", "done"}, {"run", m.run}, {"wall_seconds", m.wall_seconds}, {"summary", summary}};
      break;
    }
    case WorkerMessage::Event::Failed:
      j = {{"event", "failed"}, {"run", m.run}, {"error", m.error}};
      break;
  }
  // dump() escapes newlines inside strings, so a message is always one line.
  return kTag + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<WorkerMessage> decode(const std::string& line, bool* malformed) {
  if (malformed) *malformed = false;
  if (line.rfind(kTag, 0) != 0) return std::nullopt;
  auto bad = [&]() -> std::optional<WorkerMessage> {
    if (malformed) *malformed = true;
    return std::nullopt;
  };
  const auto j = nlohmann::ordered_json::parse(line.substr(std::char_traits<char>::length(kTag)), nullptr, false);
  if (!j.is_object() || !j.contains("event") || !j["event"].is_string() || !j.contains("run")) return bad();
  try {
    WorkerMessage m;
    m.run = j.at("run").get<int>();
    const std::string event = j.at("event").get<std::string>();
    if (event == "epoch") {
      m.event = WorkerMessage::Event::Epoch;
      m.epoch = j.at("epoch").get<int>(), m.max_epochs = j.at("max_epochs").get<int>();
      m.valid_loss = j.at("valid_loss").get<double>(), m.seconds = j.at("seconds").get<double>();
    } else if (event == "done") {
      m.event = WorkerMessage::Event::Done;
      m.wall_seconds = j.at("wall_seconds").get<double>();
      for (const auto& [name, value] : j.at("summary").items()) m.summary.emplace_back(name, value.get<double>());
    } else if (event == "failed") {
      m.event = WorkerMessage::Event::Failed;
      m.error = j.at("error").get<std::string>();
    } else {
      return bad();
    }
    return m;
  } catch (const nlohmann::json::exception&) {  // a missing key or a value of the wrong type
    return bad();
  }
}

}  // namespace dmdbench::cli
