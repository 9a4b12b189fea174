// A line chart as a standalone SVG file (no plotting library on the machines p2l targets):
// what `p2l sweep` draws to show a metric against a hyperparameter.
#pragma once

#include <string>
#include <vector>

namespace p2l::io {

struct PlotSeries {
  std::string label;      // legend entry; empty for a single unnamed series
  std::vector<double> x;  // same length as y; non-finite y values leave a gap
  std::vector<double> y;
  std::vector<double> y_error;  // optional ± bars (same length as y, or empty)
};

struct LinePlot {
  std::string title, x_label, y_label;
  bool log_x = false;  // logarithmic x axis (all x must be > 0)
  std::vector<PlotSeries> series;
};

// The chart as SVG text. Throws p2l::Error when there is nothing finite to plot, when series
// lengths disagree, or when log_x is asked for with x ≤ 0.
std::string render_svg(const LinePlot& plot);
// render_svg written atomically to `path`.
void write_svg(const std::string& path, const LinePlot& plot);

}  // namespace p2l::io
