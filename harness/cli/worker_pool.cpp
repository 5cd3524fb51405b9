#include "harness/cli/worker_pool.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

namespace dmdbench::cli {

WorkerPool::WorkerPool(std::string program, std::vector<std::string> argv)
    : program_(std::move(program)), argv_(std::move(argv)) {}

WorkerPool::~WorkerPool() {
  for (auto& [fd, w] : workers_) {
    kill(w.pid, SIGTERM);
    close(fd);
    int status = 0;
    waitpid(w.pid, &status, 0);
  }
}

void WorkerPool::start(int index) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("cannot create a pipe for a worker");
  std::vector<std::string> args = argv_;
  args.insert(args.end(), {"--worker", std::to_string(index)});
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]), close(fds[1]);
    throw std::runtime_error("cannot start a worker process");
  }
  if (pid == 0) {
    // A worker dies with its parent: SIGTERM when the parent goes (it then stops at the next batch and marks
    // its run INTERRUPTED); a parent that died before this line is noticed at once.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);  // one thread per worker, read by OpenBLAS when it loads
    setenv("OMP_NUM_THREADS", "1", 1);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]), close(fds[1]);
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv(program_.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  workers_[fds[0]] = Worker{pid, index, "", "", std::chrono::steady_clock::now()};
}

std::string WorkerPool::Exit::describe() const {
  if (WIFSIGNALED(wait_status)) return fmt::format("worker killed by signal {}", WTERMSIG(wait_status));
  return fmt::format("worker exited with status {}", WEXITSTATUS(wait_status));
}

void WorkerPool::poll(int timeout_ms, const std::function<void(const WorkerMessage&)>& on_message,
                      const std::function<void(const Exit&)>& on_exit) {
  std::vector<pollfd> fds;
  for (const auto& [fd, w] : workers_) fds.push_back({fd, POLLIN, 0});
  if (fds.empty()) return;
  ::poll(fds.data(), fds.size(), timeout_ms);
  for (const auto& p : fds) {
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    Worker& w = workers_.at(p.fd);
    char buf[4096];
    const ssize_t n = read(p.fd, buf, sizeof buf);
    if (n > 0) {
      w.buffer.append(buf, n);
      for (std::size_t nl; (nl = w.buffer.find('\n')) != std::string::npos;) {
        const std::string line = w.buffer.substr(0, nl);
        w.buffer.erase(0, nl + 1);
        bool malformed = false;
        if (auto m = decode(line, &malformed)) {
          if (m->event == WorkerMessage::Event::Failed) w.last_error = m->error;
          on_message(*m);
        }
        malformed_ += malformed;
      }
      continue;
    }
    // The worker closed its output: collect it.
    close(p.fd);
    Exit e;
    e.index = w.index, e.last_error = w.last_error;
    waitpid(w.pid, &e.wait_status, 0);
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - w.started).count();
    workers_.erase(p.fd);
    on_exit(e);
  }
}

void WorkerPool::signal_all(int sig) {
  for (const auto& [fd, w] : workers_) kill(w.pid, sig);
}

}  // namespace dmdbench::cli
