#include "reports/markdown.h"

#include <fmt/format.h>

namespace dmdbench::reports::md {

std::string cell_text(std::string s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += "\\|";
    else if (ch == '\n' || ch == '\r') out += ' ';
    else out += ch;
  }
  return out;
}

std::string row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& c : cells) out += " " + c + " |";
  return out + "\n";
}

std::string header(const std::vector<std::string>& cells, const std::string& align) {
  std::string out = row(cells) + "|";
  for (size_t i = 0; i < cells.size(); ++i) {
    const char a = i < align.size() ? align[i] : 'r';
    out += a == 'l' ? "---|" : a == 'c' ? ":---:|" : "---:|";
  }
  return out + "\n";
}

std::string code(const std::string& s) { return "`" + cell_text(s) + "`"; }

std::string format_p(double p) { return p < 0.001 ? "p<0.001" : fmt::format("p={:.3f}", p); }

}  // namespace dmdbench::reports::md
