// The sweep's worker processes: each runs one plan entry (`dmdbench-torch run-ablation ... --worker INDEX`) with
// one intra-op and one OpenBLAS thread, and reports on its stdout in the format of worker_messages.h. The pool
// starts them, reads their messages and collects their exit statuses. No LibTorch.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "harness/cli/worker_messages.h"

namespace dmdbench::cli {

class WorkerPool {
 public:
  // argv of a worker, without "--worker INDEX" (appended per worker); program: the executable to run.
  WorkerPool(std::string program, std::vector<std::string> argv);
  ~WorkerPool();  // sends SIGTERM to workers still running and reaps them
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void start(int index);
  std::size_t running() const { return workers_.size(); }

  struct Exit {
    int index = -1;
    int wait_status = 0;  // as waitpid gives it
    double seconds = 0;
    std::string last_error;  // the worker's own "failed" message, if it sent one
    std::string describe() const;  // "worker killed by signal 9", "worker exited with status 1"
  };
  // Waits up to timeout_ms for output; every message goes to on_message, every worker that ended to on_exit.
  void poll(int timeout_ms, const std::function<void(const WorkerMessage&)>& on_message,
            const std::function<void(const Exit&)>& on_exit);
  void signal_all(int sig);
  int malformed_messages() const { return malformed_; }

 private:
  struct Worker {
    pid_t pid = -1;
    int index = -1;
    std::string buffer, last_error;
    std::chrono::steady_clock::time_point started;
  };
  std::string program_;
  std::vector<std::string> argv_;
  std::map<int, Worker> workers_;  // by pipe fd
  int malformed_ = 0;
};

}  // namespace dmdbench::cli
