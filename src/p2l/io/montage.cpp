#include "p2l/io/montage.h"

#include <algorithm>

namespace p2l::io {

torch::Tensor montage(const std::vector<std::vector<torch::Tensor>>& rows, int64_t gap) {
  int64_t h = 1, w = 1;
  size_t columns = 0;
  for (const auto& row : rows) {
    columns = std::max(columns, row.size());
    for (const auto& cell : row)
      if (cell.defined()) h = std::max(h, cell.size(-2)), w = std::max(w, cell.size(-1));
  }
  const auto n_rows = static_cast<int64_t>(rows.size());
  const auto n_cols = static_cast<int64_t>(columns);
  auto canvas = torch::ones({1, 3, n_rows * h + (n_rows + 1) * gap,
                             n_cols * w + (n_cols + 1) * gap});
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t c = 0; c < static_cast<int64_t>(rows[r].size()); ++c) {
      const auto& cell = rows[r][c];
      if (!cell.defined()) continue;
      auto image = cell.detach().to(torch::kCPU, torch::kFloat).view({1, 3, cell.size(-2), cell.size(-1)});
      if (image.size(2) != h || image.size(3) != w)
        image = torch::nn::functional::interpolate(
            image, torch::nn::functional::InterpolateFuncOptions()
                       .size(std::vector<int64_t>{h, w})
                       .mode(torch::kNearest));
      const int64_t y = gap + r * (h + gap), x = gap + c * (w + gap);
      canvas.slice(2, y, y + h).slice(3, x, x + w).copy_(image.clamp(-1, 1));
    }
  return canvas;
}

}  // namespace p2l::io
