#include "reports/figures.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "reports/report.h"
#include "reports/stats.h"
#include "results/robustness.h"

namespace dmdbench::reports {

namespace fs = std::filesystem;

namespace {

const std::array<const char*, 3> kModalities = {"l", "v", "a"};

// Runs argv in cwd; returns the exit status (127 when the program cannot be started) and its output.
int run_program(const std::vector<std::string>& argv, const std::string& cwd, std::string& output) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipefd[2];
  if (::pipe(pipefd) != 0) return 127;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return 127;
  }
  if (pid == 0) {
    ::dup2(pipefd[1], STDOUT_FILENO);
    ::dup2(pipefd[1], STDERR_FILENO);
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    output.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// A gnuplot single-quoted string.
std::string gp_string(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("''") : std::string(1, ch);
  return out + "'";
}

// A double-quoted label inside a gnuplot data file.
std::string data_label(const std::string& s) {
  std::string out = "\"";
  for (char ch : s)
    if (ch != '"' && ch != '\\' && ch != '\n') out += ch;
  return out + "\"";
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw ReportError(fmt::format("cannot write {}", path.string()));
}

int index_of(const std::string& modality) {
  for (size_t i = 0; i < kModalities.size(); ++i)
    if (modality == kModalities[i]) return static_cast<int>(i);
  return -1;
}

struct Range {
  double lo = 0, hi = 0;
  bool any = false;
  void add(double v) {
    lo = any ? std::min(lo, v) : v;
    hi = any ? std::max(hi, v) : v;
    any = true;
  }
  std::string gnuplot() const {
    const double pad = hi > lo ? 0.15 * (hi - lo) : std::max(1e-3, 0.05 * std::fabs(hi));
    return fmt::format("[{:.6g}:{:.6g}]", lo - pad, hi + pad);
  }
};

// Edge heatmaps for one space; returns the script part, or empty when no variant has edges there.
std::string edge_figure(const Collected& c, const Group& g, const std::string& space, const std::string& stem,
                        const fs::path& dir) {
  std::string data;
  int block = 0;
  double max_weight = 0;
  std::vector<std::string> titles;
  for (const auto& variant : g.variants) {
    auto it = g.completed.find(variant);
    if (it == g.completed.end()) continue;
    std::map<std::pair<int, int>, std::vector<double>> cells;  // (from, to) -> weights over seeds
    for (size_t i : it->second)
      for (const auto& e : c.runs[i].edges)
        if (e.space == space && index_of(e.from) >= 0 && index_of(e.to) >= 0)
          cells[{index_of(e.from), index_of(e.to)}].push_back(e.weight);
    if (cells.empty()) continue;
    if (block > 0) data += "\n\n";
    data += fmt::format("# {}: to from mean_weight (mean over {} seeds)\n", variant, it->second.size());
    for (const auto& [key, w] : cells) {
      const double mean = summarize(w).mean;
      max_weight = std::max(max_weight, mean);
      data += fmt::format("{} {} {:.6f}\n", key.second, key.first, mean);
    }
    titles.push_back(variant);
    ++block;
  }
  if (block == 0) return "";
  const std::string dat = stem + ".dat";
  write_text(dir / dat, data);
  const int cols = std::min(block, 4), rows = (block + cols - 1) / cols;
  std::string s = fmt::format("set terminal svg size {},{} noenhanced font 'sans,11'\nset output {}\n",
                              300 * cols, 300 * rows + 40, gp_string(stem + ".svg"));
  s += fmt::format("set multiplot layout {},{} title {}\n", rows, cols,
                   gp_string(fmt::format("{} edge weights (from -> to), mean over seeds",
                                      space == "homo" ? "HomoGD" : space == "hetero" ? "HeteroGD" : space)));
  s += "set xrange [-0.5:2.5]\nset yrange [2.5:-0.5]\nset size ratio 1\nunset key\n";
  s += "set xtics ('l' 0, 'v' 1, 'a' 2)\nset ytics ('l' 0, 'v' 1, 'a' 2)\nset xlabel 'to'\nset ylabel 'from'\n";
  s += fmt::format("set cbrange [0:{:.6g}]\nset palette defined (0 'white', 1 '#2166ac')\n",
                   max_weight > 0 ? max_weight : 1.0);
  for (int b = 0; b < block; ++b) {
    s += fmt::format("set title {}\n", gp_string(titles[static_cast<size_t>(b)]));
    s += fmt::format("plot {0} index {1} using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 lc palette, "
                     "{0} index {1} using 1:2:(sprintf('%.3f', $3)) with labels\n",
                     gp_string(dat), b);
  }
  return s + "unset multiplot\nset output\nreset\n";
}

std::string loss_figure(const Collected& c, const Group& g, const std::string& stem, const fs::path& dir) {
  std::string data, plots;
  int block = 0, last_epoch = 0;
  for (const auto& variant : g.variants) {
    auto it = g.completed.find(variant);
    if (it == g.completed.end()) continue;
    std::map<int, std::vector<double>> by_epoch;
    for (size_t i : it->second)
      for (const auto& e : c.runs[i].epochs) by_epoch[e.epoch].push_back(e.valid_loss);
    if (by_epoch.empty()) continue;
    if (block > 0) data += "\n\n";
    data += fmt::format("# {}: epoch mean_valid_loss seeds\n", variant);
    last_epoch = std::max(last_epoch, by_epoch.rbegin()->first);
    for (const auto& [epoch, losses] : by_epoch)
      data += fmt::format("{} {:.6g} {}\n", epoch, summarize(losses).mean, losses.size());
    plots += fmt::format("{}{} index {} using 1:2 with linespoints title {}", block ? ", " : "",
                         gp_string(stem + ".dat"), block, gp_string(variant));
    ++block;
  }
  if (block == 0) return "";
  write_text(dir / (stem + ".dat"), data);
  std::string s = fmt::format("set terminal svg size 720,420 noenhanced font 'sans,11'\nset output {}\n",
                              gp_string(stem + ".svg"));
  s += "set title 'Validation loss per epoch (mean over the seeds that reached the epoch)'\n";
  s += "set xlabel 'epoch'\nset ylabel 'validation loss'\nset key outside right\nset grid\n";
  if (last_epoch <= 20) s += "set xtics 1\n";
  return s + "plot " + plots + "\nset output\nreset\n";
}

// Two metrics side by side, one bar per variant (mean ± std over seeds), in the units the tables show.
std::string bar_figure(const Collected& c, const Group& g, const std::string& stem, const fs::path& dir,
                       const results::MetricDef& left, const results::MetricDef& right) {
  std::string data = fmt::format("# index {0}_mean {0}_std {1}_mean {1}_std variant (shown units)\n", left.name,
                                 right.name);
  Range range[2];
  int n = 0;
  for (const auto& variant : g.variants) {
    const auto a = summarize(g.values(c, variant, left.name));
    const auto b = summarize(g.values(c, variant, right.name));
    if (a.n == 0 || b.n == 0) continue;
    const double am = results::shown_value(left, a.mean), as = results::shown_value(left, a.std);
    const double bm = results::shown_value(right, b.mean), bs = results::shown_value(right, b.std);
    data += fmt::format("{} {:.6f} {:.6f} {:.6f} {:.6f} {}\n", n, am, as, bm, bs, data_label(variant));
    range[0].add(am - as);
    range[0].add(am + as);
    range[1].add(bm - bs);
    range[1].add(bm + bs);
    ++n;
  }
  if (n == 0) return "";
  const std::string dat = stem + ".dat";
  write_text(dir / dat, data);
  auto title = [](const results::MetricDef& m) {
    return fmt::format("{}{} ({} is better)", m.label, m.percent ? " (%)" : "",
                       m.better == results::Better::Lower ? "lower" : "higher");
  };
  std::string s = fmt::format("set terminal svg size {},420 noenhanced font 'sans,11'\nset output {}\n",
                              std::max(640, 2 * 90 * n + 160), gp_string(stem + ".svg"));
  s += "set multiplot layout 1,2 title 'Test metrics per variant (mean ± std over seeds)'\n";
  s += fmt::format("set style fill solid 0.6 border -1\nset boxwidth 0.6\nset xrange [-0.6:{}]\n", n - 0.4);
  s += "set xtics rotate by 30 right nomirror\nset bmargin 6\nunset key\nset grid ytics\n";
  s += fmt::format("set title '{}'\nset yrange {}\n", title(left), range[0].gnuplot());
  s += fmt::format("plot {} using 1:2:3:xtic(6) with boxerrorbars\n", gp_string(dat));
  s += fmt::format("set title '{}'\nset yrange {}\n", title(right), range[1].gnuplot());
  s += fmt::format("plot {} using 1:4:5:xtic(6) with boxerrorbars\n", gp_string(dat));
  return s + "unset multiplot\nset output\nreset\n";
}

// Acc-2 non0 and MAE against the missing rate (missing:all; rate 0 is the clean test split), per variant: the mean
// over seeds as a line and mean ± std as a band. Empty when no run of the group has a missing:all curve.
std::string robustness_figure(const Collected& c, const Group& g, const std::string& stem, const fs::path& dir) {
  const results::MetricDef* metrics[2] = {results::find_metric("acc2_non0"), results::find_metric("mae")};
  std::string data;
  std::vector<std::string> titles;
  Range range[2];
  for (const auto& variant : g.variants) {
    auto it = g.completed.find(variant);
    if (it == g.completed.end()) continue;
    std::map<double, std::vector<double>> by_level[2];
    for (size_t i : it->second)
      for (int k = 0; k < 2; ++k) {
        const auto clean = c.runs[i].test.find(metrics[k]->name);
        if (clean == c.runs[i].test.end() || c.runs[i].robustness.empty()) continue;
        for (const auto& [level, value] :
             results::curve_of(c.runs[i].robustness, "missing:all", metrics[k]->name, clean->second))
          by_level[k][level].push_back(results::shown_value(*metrics[k], value));
      }
    if (by_level[0].size() < 2) continue;
    if (!titles.empty()) data += "\n\n";
    data += fmt::format("# {0}: rate {1}_mean {1}_lo {1}_hi {2}_mean {2}_lo {2}_hi (mean ± std over seeds)\n",
                        variant, metrics[0]->name, metrics[1]->name);
    for (const auto& [level, values] : by_level[0]) {
      const auto a = summarize(values), b = summarize(by_level[1][level]);
      data += fmt::format("{:.6g} {:.6f} {:.6f} {:.6f} {:.6f} {:.6f} {:.6f}\n", level, a.mean, a.mean - a.std,
                          a.mean + a.std, b.mean, b.mean - b.std, b.mean + b.std);
      range[0].add(a.mean - a.std), range[0].add(a.mean + a.std), range[1].add(b.mean - b.std),
          range[1].add(b.mean + b.std);
    }
    titles.push_back(variant);
  }
  if (titles.empty()) return "";
  const std::string dat = stem + ".dat";
  write_text(dir / dat, data);
  std::string s = fmt::format("set terminal svg size 1100,440 noenhanced font 'sans,11'\nset output {}\n",
                              gp_string(stem + ".svg"));
  s += "set multiplot layout 1,2 title 'Test metrics against the missing rate (missing:all; band = mean ± std over "
       "seeds)'\n";
  s += "set xlabel 'missing rate'\nset grid\nset key outside bottom center horizontal\nset xrange [0:1]\n";
  for (int k = 0; k < 2; ++k) {
    const auto& m = *metrics[k];
    s += fmt::format("set title {}\nset yrange {}\n",
                     gp_string(fmt::format("{}{} ({} is better)", m.label, m.percent ? " (%)" : "",
                                           m.better == results::Better::Lower ? "lower" : "higher")),
                     range[k].gnuplot());
    std::string plots;
    for (size_t b = 0; b < titles.size(); ++b) {
      const int col = 2 + 3 * k;
      plots += fmt::format("{}{} index {} using 1:{}:{} with filledcurves fs transparent solid 0.2 noborder lc {} "
                           "notitle, {} index {} using 1:{} with linespoints lc {} title {}",
                           b ? ", " : "", gp_string(dat), b, col + 1, col + 2, b + 1, gp_string(dat), b, col, b + 1,
                           gp_string(titles[b]));
    }
    s += "plot " + plots + "\n";
  }
  return s + "unset multiplot\nset output\nreset\n";
}

}  // namespace

GroupFigures draw_group_figures(const Collected& c, const Group& g, int group_number, const std::string& dir,
                                const std::string& gnuplot) {
  GroupFigures out;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw ReportError(fmt::format("cannot create figure directory {}: {}", dir, ec.message()));
  const std::string prefix = fmt::format("g{}-", group_number);
  struct Part {
    std::string stem, caption, script;
  };
  std::vector<Part> parts;
  for (const char* space : {"homo", "hetero"}) {
    const std::string stem = prefix + "edges-" + space;
    parts.push_back({stem,
                     fmt::format("Learned {} edge weights (from -> to), mean over seeds",
                                 std::string(space) == "homo" ? "HomoGD" : "HeteroGD"),
                     edge_figure(c, g, space, stem, dir)});
  }
  parts.push_back({prefix + "valid-loss", "Validation loss per epoch, mean over seeds",
                   loss_figure(c, g, prefix + "valid-loss", dir)});
  const auto& mae = *results::find_metric("mae");
  const auto& acc2 = *results::find_metric("acc2_non0");
  parts.push_back({prefix + "mae-acc2",
                   fmt::format("{} and {} per variant, error bars = std over seeds", mae.label, acc2.label),
                   bar_figure(c, g, prefix + "mae-acc2", dir, mae, acc2)});
  // Only groups with robustness rows get the curves (no "no data" note for runs evaluated without a grid).
  if (const std::string curves = robustness_figure(c, g, prefix + "robustness", dir); !curves.empty())
    parts.push_back({prefix + "robustness",
                     "Acc-2 non0 and MAE against the missing rate (missing:all), band = mean ± std over seeds",
                     curves});
  std::string script = "# Redraw with: gnuplot " + fmt::format("g{}.gp", group_number) + " (in this directory)\n";
  std::vector<std::string> missing;
  for (const auto& p : parts) {
    if (p.script.empty())
      missing.push_back(p.caption);
    else
      script += p.script;
  }
  if (!missing.empty()) {
    out.note = "No data for: ";
    for (size_t i = 0; i < missing.size(); ++i) out.note += (i ? "; " : "") + missing[i];
    out.note += ".";
  }
  if (missing.size() == parts.size()) return out;
  const std::string gp = fmt::format("g{}.gp", group_number);
  write_text(fs::path(dir) / gp, script);
  std::string output;
  const int status = run_program({gnuplot, gp}, dir, output);
  if (status != 0) {
    const std::string tail = output.size() > 300 ? output.substr(output.size() - 300) : output;
    out.note = status == 127
                   ? fmt::format("Figures were not drawn: {} was not found (install gnuplot-nox and rerun the "
                                 "command below).", gnuplot)
                   : fmt::format("Figures were not drawn: {} {} failed with status {}: {}", gnuplot, gp, status,
                                 tail);
    return out;
  }
  for (const auto& p : parts)
    if (!p.script.empty()) out.figures.push_back({p.caption, p.stem + ".svg"});
  return out;
}

}  // namespace dmdbench::reports
