// The judgments (reports/judgments.h) as the report shows them: a column of the results table, the difference
// cells, the headline, the generated "How to read this report" paragraph and each group's Judgments section.
#pragma once

#include <string>
#include <vector>

#include "reports/collect.h"
#include "reports/judgments.h"
#include "results/metrics.h"

namespace dmdbench::reports {

// The results table's judgment cell: "VALID", or the variant's flags ("INVALID: not converged 3/3").
std::string variant_judgment_cell(const GroupJudgments& j, const std::string& variant);
// "+0.1138 (p=0.047*, MDD 0.0890)" or "-0.0140 (p=0.661, MDD 0.0520, underpowered)", in shown units.
std::string difference_cell(const results::MetricDef& m, const PowerCell& cell);
// "VALID" or "INVALID: reasons".
std::string comparison_cell(const Comparison& c);

// What each group's judgments say in a few lines, for the top of the report (group titles when several).
std::string headline(const Collected& c, const std::vector<GroupJudgments>& judged);
// "How to read this report": one paragraph per group, built from the judgments that apply.
std::string how_to_read(const Collected& c, const std::vector<GroupJudgments>& judged);
// A group's Judgments section: convergence, power, prediction spread, test-batch sensitivity, protocol.
std::string judgments_section(const Collected& c, const Group& g, const GroupJudgments& j);

}  // namespace dmdbench::reports
