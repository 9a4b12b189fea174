#include "p2l/io/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "p2l/error.h"
#include "p2l/io/json_file.h"

namespace p2l::io {

namespace {

// Canvas and margins in SVG user units (pixels).
constexpr double kWidth = 640, kHeight = 400;
constexpr double kLeft = 70, kRight = 170, kTop = 40, kBottom = 55;
// Distinguishable colours (the Okabe–Ito palette, safe for colour-blind readers).
const char* const kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                "#E69F00", "#56B4E9", "#000000", "#F0E442"};

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// About five round tick values covering [lo, hi].
std::vector<double> linear_ticks(double lo, double hi) {
  const double span = hi - lo;
  const double raw = span / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + 1e-9 * span; t += step)
    ticks.push_back(std::abs(t) < 1e-12 * step ? 0.0 : t);
  return ticks;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  // A flat range gets some room so the line sits mid-axis.
  void pad(double fraction) {
    const double span = hi > lo ? hi - lo : std::max(std::abs(hi), 1.0);
    lo -= fraction * span;
    hi += fraction * span;
  }
};

}  // namespace

std::string render_svg(const LinePlot& plot) {
  Range xr, yr;
  for (const auto& s : plot.series) {
    if (s.x.size() != s.y.size() || (!s.y_error.empty() && s.y_error.size() != s.y.size()))
      throw Error("plot '" + plot.title + "': series '" + s.label + "' has mismatched lengths");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
      if (plot.log_x && s.x[i] <= 0)
        throw Error("plot '" + plot.title + "': logarithmic x axis needs x > 0 (got " +
                    number(s.x[i]) + ")");
      xr.add(plot.log_x ? std::log10(s.x[i]) : s.x[i]);
      const double e = s.y_error.empty() ? 0.0 : std::abs(s.y_error[i]);
      yr.add(s.y[i] - e);
      yr.add(s.y[i] + e);
    }
  }
  if (!(xr.lo <= xr.hi)) throw Error("plot '" + plot.title + "': no finite points to plot");
  xr.pad(0.05);
  yr.pad(0.08);
  const double w = kWidth - kLeft - kRight, h = kHeight - kTop - kBottom;
  auto px = [&](double x) {
    const double v = plot.log_x ? std::log10(x) : x;
    return kLeft + (v - xr.lo) / (xr.hi - xr.lo) * w;
  };
  auto py = [&](double y) { return kTop + (yr.hi - y) / (yr.hi - yr.lo) * h; };

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\""
      << kHeight << "\" viewBox=\"0 0 " << kWidth << " " << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << kLeft + w / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">"
      << escape(plot.title) << "</text>\n";
  // Axes, grid and ticks.
  svg << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << w << "\" height=\"" << h
      << "\" fill=\"none\" stroke=\"#444\"/>\n";
  std::vector<double> xticks;
  if (plot.log_x) {
    for (double d = std::floor(xr.lo); d <= std::ceil(xr.hi); ++d)
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = std::log10(m) + d;
        if (v >= xr.lo && v <= xr.hi) xticks.push_back(std::pow(10.0, v));
      }
  } else {
    xticks = linear_ticks(xr.lo, xr.hi);
  }
  for (double t : xticks)
    svg << "<line x1=\"" << px(t) << "\" x2=\"" << px(t) << "\" y1=\"" << kTop << "\" y2=\""
        << kTop + h << "\" stroke=\"#ddd\"/>\n<text x=\"" << px(t) << "\" y=\"" << kTop + h + 16
        << "\" text-anchor=\"middle\">" << number(t) << "</text>\n";
  for (double t : linear_ticks(yr.lo, yr.hi))
    svg << "<line x1=\"" << kLeft << "\" x2=\"" << kLeft + w << "\" y1=\"" << py(t) << "\" y2=\""
        << py(t) << "\" stroke=\"#ddd\"/>\n<text x=\"" << kLeft - 6 << "\" y=\"" << py(t) + 4
        << "\" text-anchor=\"end\">" << number(t) << "</text>\n";
  svg << "<text x=\"" << kLeft + w / 2 << "\" y=\"" << kHeight - 12
      << "\" text-anchor=\"middle\">" << escape(plot.x_label) << (plot.log_x ? " (log)" : "")
      << "</text>\n<text transform=\"translate(18," << kTop + h / 2
      << ") rotate(-90)\" text-anchor=\"middle\">" << escape(plot.y_label) << "</text>\n";
  // Series: polylines broken at non-finite values, markers, error bars, legend.
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const auto& s = plot.series[k];
    const char* colour = kColours[k % (sizeof kColours / sizeof kColours[0])];
    std::vector<size_t> order(s.x.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s.x[a] < s.x[b]; });
    std::string points;
    auto flush = [&] {
      if (!points.empty())
        svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\""
            << points << "\"/>\n";
      points.clear();
    };
    for (size_t i : order) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) {
        flush();
        continue;
      }
      points += number(px(s.x[i])) + "," + number(py(s.y[i])) + " ";
    }
    flush();
    for (size_t i : order) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
      const double x = px(s.x[i]), y = py(s.y[i]);
      if (!s.y_error.empty() && s.y_error[i] > 0)
        svg << "<line x1=\"" << x << "\" x2=\"" << x << "\" y1=\"" << py(s.y[i] - s.y_error[i])
            << "\" y2=\"" << py(s.y[i] + s.y_error[i]) << "\" stroke=\"" << colour << "\"/>\n";
      svg << "<circle cx=\"" << x << "\" cy=\"" << y << "\" r=\"3.5\" fill=\"" << colour
          << "\"/>\n";
    }
    if (!s.label.empty()) {
      const double ly = kTop + 10 + 18 * static_cast<double>(k);
      svg << "<line x1=\"" << kLeft + w + 12 << "\" x2=\"" << kLeft + w + 32 << "\" y1=\"" << ly
          << "\" y2=\"" << ly << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n<text x=\""
          << kLeft + w + 38 << "\" y=\"" << ly + 4 << "\">" << escape(s.label) << "</text>\n";
    }
  }
  svg << "</svg>\n";
  return svg.str();
}

void write_svg(const std::string& path, const LinePlot& plot) { write_text(path, render_svg(plot)); }

}  // namespace p2l::io
