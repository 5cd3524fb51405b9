// Markdown pieces shared by the report's sections: table rows and headers, code spans, p-values.
#pragma once

#include <string>
#include <vector>

namespace dmdbench::reports::md {

inline constexpr const char* kNone = "—";

std::string cell_text(std::string s);  // '|' escaped, line breaks as spaces
std::string row(const std::vector<std::string>& cells);
// align: one character per column, 'l', 'c' or 'r'; columns past its end are right-aligned (numbers).
std::string header(const std::vector<std::string>& cells, const std::string& align = "l");
std::string code(const std::string& s);  // `s`, escaped for a table cell
std::string format_p(double p);          // "p<0.001" or "p=0.123"

}  // namespace dmdbench::reports::md
