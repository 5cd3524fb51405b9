// run-ablation on Slurm (see slurm.h): experiment folder, array script, sbatch, scontrol, collect, resubmit.
#include "harness/cli/slurm.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "ablations/variants.h"
#include "harness/cli/verb.h"
#include "harness/experiment/config.h"
#include "harness/experiment/plan.h"
#include "harness/io/output_file.h"
#include "reports/report.h"
#include "results/ls.h"
#include "results/store.h"

namespace dmdbench::cli::slurm {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

TaskEnv task_env() {
  auto env = [](const char* name) { const char* v = std::getenv(name); return std::string(v ? v : ""); };
  TaskEnv t;
  t.in_slurm = !env("SLURM_JOB_ID").empty();
  for (const char* name : {"SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"})
    if (t.cpus <= 0 && !env(name).empty()) t.cpus = std::atoi(env(name).c_str());
  t.cpus = std::max(0, t.cpus);
  t.cuda_visible = env("CUDA_VISIBLE_DEVICES");
  if (!env("SLURM_ARRAY_JOB_ID").empty()) t.array_task = env("SLURM_ARRAY_JOB_ID") + "_" + env("SLURM_ARRAY_TASK_ID");
  return t;
}

std::string task_device(const TaskEnv& env) {
  const bool gpu = !env.cuda_visible.empty() && env.cuda_visible != "NoDevFiles" && env.cuda_visible != "-1";
  return gpu ? "cuda" : "cpu";
}

bool active_state(const std::string& state) {
  static const std::set<std::string> active = {"PENDING",  "RUNNING",      "CONFIGURING", "COMPLETING",
                                               "SUSPENDED", "REQUEUED",    "REQUEUE_HOLD", "REQUEUE_FED",
                                               "RESIZING",  "SIGNALING",   "STAGE_OUT",   "STOPPED"};
  return active.count(state) > 0;
}

std::vector<int> parse_task_ids(const std::string& text) {
  std::vector<int> out;
  std::string t = text.substr(0, text.find('%'));
  t.erase(std::remove_if(t.begin(), t.end(), [](char c) { return c == '[' || c == ']'; }), t.end());
  std::stringstream in(t);
  for (std::string part; std::getline(in, part, ',');) {
    if (part.empty()) continue;
    const auto dash = part.find('-');
    int step = 1;
    std::string range = part;
    if (const auto colon = part.find(':'); colon != std::string::npos) {
      step = std::max(1, std::atoi(part.substr(colon + 1).c_str()));
      range = part.substr(0, colon);
    }
    const int lo = std::atoi(range.substr(0, dash).c_str());
    const int hi = dash == std::string::npos ? lo : std::atoi(range.substr(dash + 1).c_str());
    for (int i = lo; i <= hi; i += step) out.push_back(i);
  }
  return out;
}

std::string experiment_dir(const std::string& db, const std::string& experiment_id) {
  const fs::path p = fs::absolute(db);
  return (p.parent_path() / (p.stem().string() + ".slurm-" + experiment_id)).string();
}

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// ---------------------------------------------------------------- running the Slurm commands

struct Output {
  int code = -1;
  std::string out, err;
};

// Runs argv (found on PATH) and returns its exit status, stdout and stderr.
Output run_command(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0)
    throw std::runtime_error(fmt::format("cannot run {}: {}", argv[0], std::strerror(errno)));
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1), dup2(err_pipe[1], 2);
    close(out_pipe[0]), close(out_pipe[1]), close(err_pipe[0]), close(err_pipe[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", argv[0].c_str(), std::strerror(errno));
    _exit(127);
  }
  close(out_pipe[1]), close(err_pipe[1]);
  Output o;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&o.out, &o.err};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return o;
}

std::string first_line(const std::string& s) {
  std::string t = s.substr(0, s.find('\n'));
  while (!t.empty() && (t.back() == '\r' || t.back() == ' ')) t.pop_back();
  return t;
}

std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  return last.size() > 300 ? last.substr(0, 300) + "..." : last;
}

// One task of an array as scontrol shows it.
struct TaskInfo {
  std::string state, reason, exit_code, node;
};

// The tasks of array job `job_id` (task id -> info). Sets `error` when Slurm could not be asked; a job Slurm no
// longer knows (purged after MinJobAge) gives an empty map and no error.
std::map<int, TaskInfo> query_array(const std::string& job_id, std::string& error) {
  std::map<int, TaskInfo> tasks;
  const Output o = run_command({"scontrol", "-o", "show", "job", job_id});
  if (o.code != 0) {
    if (o.err.find("Invalid job id") == std::string::npos) error = first_line(o.err.empty() ? o.out : o.err);
    return tasks;
  }
  std::stringstream in(o.out);
  for (std::string line; std::getline(in, line);) {
    std::map<std::string, std::string> kv;
    std::stringstream words(line);
    for (std::string w; words >> w;)
      if (const auto eq = w.find('='); eq != std::string::npos) kv.emplace(w.substr(0, eq), w.substr(eq + 1));
    if (!kv.count("ArrayTaskId") || kv["ArrayJobId"] != job_id) continue;
    const TaskInfo info{kv["JobState"], kv["Reason"], kv["ExitCode"], kv["NodeList"]};
    for (int t : parse_task_ids(kv["ArrayTaskId"])) tasks[t] = info;
  }
  return tasks;
}

// ---------------------------------------------------------------- the experiment folder

struct Submission {
  std::string job_id, submitted_at;
  std::vector<int> shards;
};

struct Experiment {
  std::string dir, experiment_id, db, report, command, description, dmdbench, workdir;
  std::vector<std::string> task_args, sbatch_options;
  int shards = 0;
  std::vector<PlanRun> runs;
  std::vector<std::vector<int>> shard_runs;  // shard -> plan indices
  std::vector<Submission> submissions;

  std::string file() const { return dir + "/experiment.json"; }
  std::string shard_path(int shard, const char* ext) const { return fmt::format("{}/shard-{}.{}", dir, shard, ext); }

  void save() const {
    json j = {{"experiment_id", experiment_id}, {"db", db},           {"report", report},
              {"command", command},             {"description", description}, {"dmdbench", dmdbench},
              {"workdir", workdir},             {"task_args", task_args},     {"sbatch_options", sbatch_options},
              {"shards", shards}};
    j["runs"] = json::array();
    for (const auto& r : runs)
      j["runs"].push_back({{"index", r.index}, {"run_id", r.run_id}, {"variant", r.variant}, {"seed", r.seed},
                           {"cost", r.cost}});
    j["shard_runs"] = shard_runs;
    j["submissions"] = json::array();
    for (const auto& s : submissions)
      j["submissions"].push_back({{"job_id", s.job_id}, {"submitted_at", s.submitted_at}, {"shards", s.shards}});
    write_file_atomically(file(), j.dump(1) + "\n");
  }

  static Experiment load(const std::string& dir_arg) {
    Experiment e;
    e.dir = fs::absolute(dir_arg).lexically_normal().string();
    while (e.dir.size() > 1 && e.dir.back() == '/') e.dir.pop_back();
    std::ifstream in(e.file());
    if (!in)
      throw std::runtime_error(fmt::format("{} is not a Slurm experiment folder (no experiment.json); run-ablation "
                                           "--slurm writes one next to the database", dir_arg));
    try {
      const json j = json::parse(in);
      auto text = [&](const char* key) { return j.at(key).get<std::string>(); };
      e.experiment_id = text("experiment_id"), e.db = text("db"), e.report = text("report");
      e.command = text("command"), e.description = text("description"), e.dmdbench = text("dmdbench");
      e.workdir = text("workdir");
      e.task_args = j.at("task_args").get<std::vector<std::string>>();
      e.sbatch_options = j.at("sbatch_options").get<std::vector<std::string>>();
      e.shards = j.at("shards").get<int>();
      for (const auto& r : j.at("runs"))
        e.runs.push_back({r.at("index").get<int>(), r.at("run_id").get<std::string>(),
                          r.at("variant").get<std::string>(), r.at("seed").get<int64_t>(), r.at("cost").get<double>()});
      e.shard_runs = j.at("shard_runs").get<std::vector<std::vector<int>>>();
      for (const auto& s : j.at("submissions"))
        e.submissions.push_back({s.at("job_id").get<std::string>(), s.at("submitted_at").get<std::string>(),
                                 s.at("shards").get<std::vector<int>>()});
    } catch (const json::exception& err) {
      throw std::runtime_error(fmt::format("{} is damaged: {}", e.file(), err.what()));
    }
    return e;
  }

  const PlanRun& run(int index) const {
    for (const auto& r : runs)
      if (r.index == index) return r;
    throw std::runtime_error(fmt::format("plan index {} is not in {}", index, file()));
  }
  std::string describe(int index) const {
    const PlanRun& r = run(index);
    return fmt::format("{} seed {}", r.variant, r.seed);
  }
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string join(const std::vector<int>& v, const char* sep = ",") {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : sep) + std::to_string(x);
  return s;
}

// The array script of one submission: task N runs shard N's plan entries into shard-N.sqlite, forwards SIGTERM
// to run-ablation and waits for it (Slurm sends SIGTERM to every process of the task, then SIGKILL after
// KillWait; a batch shell that exits first would orphan the runs), and leaves the exit status in shard-N.exit.
std::string array_script(const Experiment& e, const Submission& s) {
  std::string out = "#!/bin/bash\n";
  out += fmt::format("# dmdbench experiment {}: {}\n# {}\n", e.experiment_id, e.description, e.command);
  out += fmt::format("#SBATCH --job-name=dmdbench-{}\n#SBATCH --array={}\n", e.experiment_id, join(s.shards));
  out += fmt::format("#SBATCH --output={}/shard-%a.log\n#SBATCH --chdir={}\n", e.dir, e.workdir);
  for (const auto& o : e.sbatch_options) out += "#SBATCH " + o + "\n";
  out += "case \"$SLURM_ARRAY_TASK_ID\" in\n";
  for (int shard : s.shards) out += fmt::format("  {}) runs={} ;;\n", shard, join(e.shard_runs.at(shard)));
  out += "  *) echo \"dmdbench: array task $SLURM_ARRAY_TASK_ID is not a shard of this submission\" >&2; exit 2 ;;\n";
  out += "esac\n";
  out += fmt::format("shard={}/shard-$SLURM_ARRAY_TASK_ID\n", quote(e.dir));
  out += "rm -f \"$shard.exit\"\n";
  std::string cmd = quote(e.dmdbench) + " run-ablation";
  for (const auto& a : e.task_args) cmd += " " + quote(a);
  out += cmd + " --runs \"$runs\" --db \"$shard.sqlite\" --no-report &\n";
  out += "child=$!\n";
  out += "trap 'kill -TERM \"$child\" 2>/dev/null' TERM INT\n";
  out += "while :; do wait \"$child\"; rc=$?; kill -0 \"$child\" 2>/dev/null || break; done\n";
  out += "echo \"$rc\" > \"$shard.exit.tmp\" && mv -f \"$shard.exit.tmp\" \"$shard.exit\"\n";
  out += "exit \"$rc\"\n";
  return out;
}

// Writes the script of a new submission of `shards`, submits it with sbatch --parsable, records it.
void submit(Experiment& e, const std::vector<int>& shards) {
  Submission s;
  s.shards = shards;
  const std::string script = fmt::format("{}/submit-{}.sh", e.dir, e.submissions.size());
  write_file_atomically(script, array_script(e, s));
  for (int shard : shards)
    for (const char* ext : {"sqlite", "sqlite-wal", "sqlite-shm", "log", "exit"}) fs::remove(e.shard_path(shard, ext));
  const Output o = run_command({"sbatch", "--parsable", script});
  const std::string id = first_line(o.out);
  if (o.code != 0 || id.empty() || id.find_first_not_of("0123456789;") != std::string::npos)
    throw std::runtime_error(fmt::format("sbatch refused {} (exit {}): {}", script, o.code,
                                         first_line(o.err.empty() ? o.out : o.err)));
  s.job_id = id.substr(0, id.find(';'));  // "JOBID;CLUSTER" on a federation
  s.submitted_at = results::utc_now();
  e.submissions.push_back(s);
  e.save();
  std::cout << fmt::format("submitted array job {} (shards {}): {}\n", s.job_id, join(shards, ", "), script);
}

// Splits plan indices into new shards balanced by cost, numbered after the existing ones.
std::vector<int> add_shards(Experiment& e, const std::vector<int>& indices) {
  std::vector<std::pair<int, double>> items;
  for (int i : indices) items.emplace_back(i, e.run(i).cost);
  const int count = std::min<int>(e.shards > 0 ? e.shards : static_cast<int>(indices.size()),
                                  static_cast<int>(indices.size()));
  std::vector<int> numbers;
  for (auto& group : balance_by_cost(items, count)) {
    numbers.push_back(static_cast<int>(e.shard_runs.size()));
    e.shard_runs.push_back(std::move(group));
  }
  return numbers;
}

// ---------------------------------------------------------------- shard states

struct ShardState {
  int shard = 0;
  std::string job;        // ARRAYJOB_TASK
  std::string state;      // Slurm's JobState, or from the exit status when Slurm no longer knows the task
  std::string reason, node, exit_code, error;
  bool finished = false;
  int runs = 0, done = 0;  // runs of the shard, and how many its log says are done
};

int done_in_log(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.find(" runs] done ") != std::string::npos || line.find("was completed by another sweep") != std::string::npos)
      ++n;
  return n;
}

// Every shard's state (from scontrol, the exit file and the log). `error` is set when Slurm cannot be asked;
// the states then come from the exit files alone.
std::vector<ShardState> shard_states(const Experiment& e, std::string& error) {
  std::vector<ShardState> out;
  for (const auto& sub : e.submissions) {
    const auto tasks = query_array(sub.job_id, error);
    for (int shard : sub.shards) {
      ShardState s;
      s.shard = shard, s.job = fmt::format("{}_{}", sub.job_id, shard);
      s.runs = static_cast<int>(e.shard_runs.at(shard).size());
      s.done = done_in_log(e.shard_path(shard, "log"));
      std::ifstream exit_file(e.shard_path(shard, "exit"));
      int rc = -1;
      const bool has_exit = static_cast<bool>(exit_file >> rc);
      if (const auto it = tasks.find(shard); it != tasks.end()) {
        s.state = it->second.state, s.reason = it->second.reason, s.node = it->second.node;
        s.finished = !active_state(s.state);
        if (s.finished) {
          const std::string& ec = it->second.exit_code;  // "status:signal"
          const int code = std::atoi(ec.c_str()), sig = std::atoi(ec.substr(ec.find(':') + 1).c_str());
          s.exit_code = sig ? fmt::format("signal {}", sig) : fmt::format("exit {}", code);
        }
      } else if (has_exit) {
        s.state = rc == 0 ? "COMPLETED" : "FAILED", s.finished = true, s.exit_code = fmt::format("exit {}", rc);
      } else if (error.empty()) {
        s.state = "LOST", s.finished = true, s.exit_code = "no exit status";  // Slurm forgot it, no exit file
      } else {
        s.state = "UNKNOWN";
      }
      if (s.finished && s.state != "COMPLETED") s.error = last_line(e.shard_path(shard, "log"));
      out.push_back(s);
    }
  }
  return out;
}

std::string describe_shard(const ShardState& s) {
  std::string d = fmt::format("shard {} ({}) {}", s.shard, s.job, s.state);
  if (s.state == "PENDING" && !s.reason.empty() && s.reason != "None") d += " (" + s.reason + ")";
  if (s.state == "RUNNING" && !s.node.empty()) d += " on " + s.node;
  d += fmt::format(", {}/{} runs done", s.done, s.runs);
  if (s.finished && s.state != "COMPLETED") d += fmt::format(", {}: {}", s.exit_code, s.error.empty() ? "no output" : s.error);
  return d;
}

// Merges the databases of finished shards into the main database (idempotent: merge keeps a completed row over
// any other); shards still pending or running are left alone. Returns the shards merged.
std::vector<int> merge_finished(const Experiment& e, const std::vector<ShardState>& states) {
  results::Store store(e.db);
  std::vector<int> merged;
  for (const auto& s : states) {
    if (!s.finished || !fs::exists(e.shard_path(s.shard, "sqlite"))) continue;
    store.merge_from(e.shard_path(s.shard, "sqlite"));
    merged.push_back(s.shard);
  }
  return merged;
}

// The end of a sweep: the runs table, the report, and the exit status (1 naming the runs not completed).
int finish(const Experiment& e) {
  results::Store store(e.db);
  std::cout << "\n" << results::format_ls(store, e.experiment_id);
  if (!e.report.empty()) {
    reports::ReportOptions ro;
    ro.db_path = e.db, ro.out_path = e.report, ro.experiment = e.experiment_id, ro.command = e.command;
    for (const auto& v : ablations::registry()) ro.variants.push_back({v.name, v.description});
    reports::write_report(store, ro);
  }
  std::vector<std::string> incomplete;
  for (const auto& r : e.runs) {
    const auto row = store.find_run(r.run_id);
    if (!row || row->status != results::RunStatus::Completed)
      incomplete.push_back(fmt::format("{} ({}): {}{}", e.describe(r.index), r.run_id,
                                       row ? results::status_name(row->status) : "not started",
                                       row && !row->error.empty() ? ", " + row->error : ""));
  }
  if (!incomplete.empty()) {
    std::cerr << fmt::format("{} run(s) of the plan are not completed:\n", incomplete.size());
    for (const auto& f : incomplete) std::cerr << "  " << f << "\n";
    std::cerr << fmt::format("submit them again: dmdbench slurm resubmit {}\n", e.dir);
    return 1;
  }
  if (!e.report.empty()) std::cout << "report: " << e.report << "\n";
  return 0;
}

void print_states(const std::vector<ShardState>& states) {
  for (const auto& s : states) std::cout << "  " << describe_shard(s) << "\n";
}

std::string how_to_resume(const Experiment& e) {
  std::string jobs;
  for (const auto& s : e.submissions) jobs += (jobs.empty() ? "" : ", ") + s.job_id;
  return fmt::format("the Slurm jobs keep running (array job {}). Follow them again: dmdbench slurm status {} "
                     "--wait; merge what finished: dmdbench slurm collect {}; stop them: scancel {}",
                     jobs, e.dir, e.dir, jobs);
}

// Follows every submission until no shard is pending or running, printing a progress line when something
// changes (at least every 30 s), then collects and finishes. Ctrl-C stops following, not the jobs.
int follow(Experiment& e) {
  g_stop = 0;
  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  const auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  std::string last_shown;
  auto last_print = Clock::now() - std::chrono::hours(1);
  int total = static_cast<int>(e.runs.size()), done_at_start = -1;
  std::vector<ShardState> states;
  for (;;) {
    std::string error;
    states = shard_states(e, error);
    // Runs done: completed in the main database before this follow began, plus what the shard logs report.
    int done = 0, active = 0;
    std::string shards_line;
    for (const auto& s : states) {
      done += s.done;
      active += !s.finished;
      shards_line += fmt::format("  [{}]", describe_shard(s));
    }
    if (done_at_start < 0) done_at_start = done;
    if (!error.empty()) shards_line += "  (Slurm: " + error + ")";
    const int recent = done - done_at_start;
    const double t = elapsed();
    const std::string remaining =
        recent > 0 ? format_duration(t / recent * std::max(0, total - done)) : std::string("?");
    if (shards_line != last_shown || Clock::now() - last_print > std::chrono::seconds(30) || active == 0) {
      std::cout << fmt::format("[{}/{} runs, elapsed {}, remaining ~{}]{}", std::min(done, total), total,
                               format_duration(t), active ? remaining : format_duration(0), shards_line)
                << std::endl;
      last_shown = shards_line, last_print = Clock::now();
    }
    if (active == 0 && error.empty()) break;
    for (int i = 0; i < 20 && !g_stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (g_stop) {
      sigaction(SIGINT, &old_int, nullptr);
      sigaction(SIGTERM, &old_term, nullptr);
      std::cerr << "\nstopped following; " << how_to_resume(e) << "\n";
      return 130;
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  const auto merged = merge_finished(e, states);
  std::cout << fmt::format("merged {} shard database(s) into {}\n", merged.size(), e.db);
  for (const auto& s : states)
    if (s.state != "COMPLETED") std::cout << "  " << describe_shard(s) << "\n";
  return finish(e);
}

// Shards still pending or running; refuses to go on (one sentence) when there are any.
void require_idle(const Experiment& e, const std::vector<ShardState>& states, const char* what) {
  std::vector<std::string> busy;
  for (const auto& s : states)
    if (!s.finished) busy.push_back(fmt::format("{} ({})", s.job, s.state));
  if (busy.empty()) return;
  std::string list;
  for (const auto& b : busy) list += (list.empty() ? "" : ", ") + b;
  throw std::runtime_error(fmt::format("cannot {} experiment {}: shard task(s) {} have not ended; wait for them "
                                       "(dmdbench slurm status {} --wait) or scancel them first",
                                       what, e.experiment_id, list, e.dir));
}

// Submits the plan runs not COMPLETED in the main database as a new array (after merging every finished shard).
int submit_missing(Experiment& e, bool wait) {
  std::string error;
  const auto states = shard_states(e, error);
  if (!error.empty()) throw std::runtime_error("cannot ask Slurm about the shards: " + error);
  require_idle(e, states, "resubmit");
  merge_finished(e, states);
  std::vector<int> missing;
  {
    results::Store store(e.db);
    for (const auto& r : e.runs) {
      const auto row = store.find_run(r.run_id);
      if (!row || row->status != results::RunStatus::Completed) missing.push_back(r.index);
    }
  }
  if (missing.empty()) {
    std::cout << fmt::format("every run of experiment {} is completed; nothing to resubmit\n", e.experiment_id);
    return finish(e);
  }
  std::string names;
  for (int i : missing) names += (names.empty() ? "" : ", ") + e.describe(i);
  std::cout << fmt::format("{} run(s) not completed: {}\n", missing.size(), names);
  submit(e, add_shards(e, missing));
  if (!wait) {
    std::cout << fmt::format("follow: dmdbench slurm status {} --wait\n", e.dir);
    return 0;
  }
  return follow(e);
}

}  // namespace

int submit_sweep(const SubmitRequest& req) {
  if (req.shards < 0) throw ConfigError(fmt::format("--shards is {}, expected 1 or more (0: one per run)", req.shards));
  Experiment e;
  e.dir = experiment_dir(req.db, req.experiment_id);
  if (fs::exists(e.dir + "/experiment.json")) {
    e = Experiment::load(e.dir);
    e.sbatch_options = req.sbatch_options;
    if (req.shards > 0) e.shards = req.shards;
    std::cout << fmt::format("dmdbench run-ablation --slurm: experiment {} was submitted before ({})\n",
                             e.experiment_id, e.dir);
    std::string error;
    const auto states = shard_states(e, error);
    bool busy = false;
    for (const auto& s : states) busy = busy || !s.finished;
    if (busy || !error.empty()) {
      print_states(states);
      if (!req.wait) return 0;
      return follow(e);
    }
    return submit_missing(e, req.wait);
  }
  e.experiment_id = req.experiment_id, e.db = fs::absolute(req.db).string();
  e.report = req.report.empty() ? "" : fs::absolute(req.report).string();
  e.command = req.command, e.description = req.description;
  e.workdir = fs::current_path().string();
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  e.dmdbench = (fs::path(n > 0 ? std::string(self, n) : std::string("dmdbench")).parent_path() / "dmdbench").string();
  e.task_args = req.task_args, e.sbatch_options = req.sbatch_options, e.shards = req.shards;
  e.runs = req.runs;
  fs::create_directories(e.dir);
  {
    results::Store store(e.db);  // the main database: created, and the experiment's command recorded, now
    store.add_experiment({e.experiment_id, results::utc_now(), e.command, e.description});
  }
  std::vector<int> all;
  for (const auto& r : e.runs) all.push_back(r.index);
  const std::vector<int> shards = add_shards(e, all);
  e.save();
  std::cout << fmt::format("dmdbench run-ablation --slurm: experiment {}, {} runs in {} shard(s) balanced by "
                           "expected cost, folder {}\n",
                           e.experiment_id, e.runs.size(), shards.size(), e.dir);
  for (int s : shards) {
    double cost = 0;
    for (int i : e.shard_runs[s]) cost += e.run(i).cost;
    std::cout << fmt::format("  shard {}: {} run(s), cost {:.3g}\n", s, e.shard_runs[s].size(), cost);
  }
  submit(e, shards);
  if (!req.wait) {
    std::cout << fmt::format("not waiting; follow: dmdbench slurm status {} --wait\n", e.dir);
    return 0;
  }
  return follow(e);
}

int status(const std::string& dir, bool wait) {
  Experiment e = Experiment::load(dir);
  if (wait) return follow(e);
  std::string error;
  const auto states = shard_states(e, error);
  int done = 0, active = 0;
  for (const auto& s : states) done += s.done, active += !s.finished;
  std::cout << fmt::format("experiment {} ({}): {}/{} runs done, {} of {} shard task(s) pending or running\n",
                           e.experiment_id, e.description, std::min<int>(done, e.runs.size()), e.runs.size(),
                           active, states.size());
  if (!error.empty()) std::cout << "  Slurm cannot be asked: " << error << "\n";
  print_states(states);
  return 0;
}

int collect(const std::string& dir) {
  Experiment e = Experiment::load(dir);
  std::string error;
  const auto states = shard_states(e, error);
  const auto merged = merge_finished(e, states);
  std::cout << fmt::format("merged {} finished shard database(s) into {}{}\n", merged.size(), e.db,
                           merged.empty() ? "" : ": shards " + join(merged, ", "));
  bool busy = !error.empty();
  for (const auto& s : states)
    if (!s.finished) {
      busy = true;
      std::cout << "  not yet: " << describe_shard(s) << "\n";
    }
  if (busy) {
    if (!error.empty()) std::cout << "  Slurm cannot be asked: " << error << "\n";
    return 0;
  }
  return finish(e);
}

int resubmit(const std::string& dir, const std::vector<std::string>& sbatch_options, bool wait) {
  Experiment e = Experiment::load(dir);
  if (!sbatch_options.empty()) e.sbatch_options = sbatch_options;
  return submit_missing(e, wait);
}

}  // namespace dmdbench::cli::slurm
