// The sweep's SVG line chart: one polyline per unbroken run of finite points, a marker per
// point, points placed by their values, labels escaped, bad series rejected.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "cli_runner.h"
#include "p2l/error.h"
#include "p2l/io/svg_plot.h"

namespace p2l::test {
namespace {

size_t count(const std::string& text, const std::string& what) {
  return count_occurrences(text, what);
}

// The (cx, cy) of every marker, in document order.
std::vector<std::pair<double, double>> markers(const std::string& svg) {
  std::vector<std::pair<double, double>> out;
  std::regex circle("<circle cx=\"([-0-9.e]+)\" cy=\"([-0-9.e]+)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle); it != std::sregex_iterator();
       ++it)
    out.emplace_back(std::stod((*it)[1]), std::stod((*it)[2]));
  return out;
}

TEST(SvgPlot, OneLinePerSeriesAndOneMarkerPerPoint) {
  io::LinePlot plot;
  plot.title = "PSNR vs rho";
  plot.series = {{"sr", {0.1, 0.2, 0.4}, {20, 22, 21}, {}},
                 {"box-inpaint", {0.1, 0.2, 0.4}, {18, 19, 23}, {0.5, 0.5, 0.5}}};
  const auto svg = io::render_svg(plot);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "<circle"), 6u);
  EXPECT_NE(svg.find(">sr</text>"), std::string::npos);
  EXPECT_NE(svg.find(">box-inpaint</text>"), std::string::npos);
  // Every element that opens is closed (self-closing or with its end tag).
  EXPECT_EQ(count(svg, "<text"), count(svg, "</text>"));
  EXPECT_EQ(count(svg, "<svg"), count(svg, "</svg>"));
}

TEST(SvgPlot, PointsArePlacedByValue) {
  io::LinePlot plot;
  plot.series = {{"", {1, 2, 3}, {10, 30, 20}, {}}};
  const auto m = markers(io::render_svg(plot));
  ASSERT_EQ(m.size(), 3u);
  // Equal x spacing maps to equal pixel spacing; larger y is higher (smaller SVG y).
  EXPECT_NEAR(m[1].first - m[0].first, m[2].first - m[1].first, 1e-2);
  EXPECT_LT(m[1].second, m[2].second);
  EXPECT_LT(m[2].second, m[0].second);
  // y is linear: 20 lies halfway between 10 and 30.
  EXPECT_NEAR(m[2].second, (m[0].second + m[1].second) / 2, 1e-2);
}

TEST(SvgPlot, LogAxisSpacesDecadesEqually) {
  io::LinePlot plot;
  plot.log_x = true;
  plot.series = {{"", {1e-3, 1e-2, 1e-1}, {1, 2, 3}, {}}};
  const auto m = markers(io::render_svg(plot));
  ASSERT_EQ(m.size(), 3u);
  EXPECT_NEAR(m[1].first - m[0].first, m[2].first - m[1].first, 1e-2);
  plot.series[0].x[0] = 0;
  EXPECT_THROW(io::render_svg(plot), Error);
}

TEST(SvgPlot, NonFiniteValuesBreakTheLine) {
  io::LinePlot plot;
  plot.series = {{"", {1, 2, 3, 4, 5}, {1, 2, NAN, 4, 5}, {}}};
  const auto svg = io::render_svg(plot);
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "<circle"), 4u);
}

TEST(SvgPlot, LabelsAreEscapedAndBadSeriesRejected) {
  io::LinePlot plot;
  plot.title = "a < b & \"c\"";
  plot.series = {{"", {1}, {1}, {}}};
  const auto svg = io::render_svg(plot);
  EXPECT_NE(svg.find("a &lt; b &amp; &quot;c&quot;"), std::string::npos);
  plot.series = {{"", {1, 2}, {1}, {}}};
  EXPECT_THROW(io::render_svg(plot), Error);
  plot.series = {{"", {1, 2}, {NAN, NAN}, {}}};
  EXPECT_THROW(io::render_svg(plot), Error);
}

}  // namespace
}  // namespace p2l::test
