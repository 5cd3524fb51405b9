// Report figures as SVG drawn by gnuplot: per group, learned edge weights (HomoGD, HeteroGD) as from -> to
// heatmaps, validation loss per epoch, and MAE / Acc-2 bars with std error bars. The data (.dat) and the
// script (.gp) stay beside the SVGs, so `cd DIR && gnuplot gN.gp` redraws them.
#pragma once

#include <string>
#include <vector>

#include "reports/collect.h"

namespace dmdbench::reports {

struct Figure {
  std::string caption;
  std::string file;  // SVG file name inside the figure directory
};

struct GroupFigures {
  std::vector<Figure> figures;  // drawn
  std::string note;             // why some or all were not drawn; empty when all were
};

// Writes gN-*.dat and gN.gp into dir (N = group_number) and runs gnuplot there. A missing or failing gnuplot
// is reported in the note, never thrown.
GroupFigures draw_group_figures(const Collected& c, const Group& g, int group_number, const std::string& dir,
                                const std::string& gnuplot);

}  // namespace dmdbench::reports
