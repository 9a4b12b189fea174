// `p2l score`: how close restored images are to their references. Per pair (an image and the
// reference with the same file name, extension aside): PSNR, SSIM and, given LPIPS weights,
// LPIPS; per set, given Inception weights, FID and KID between all references and all images,
// and given p2l's emoji feature network, FD-emoji (a Fréchet distance on that network's
// features, never called FID). What each metric computes: docs/metrics.md.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p2l/metrics/feature_distances.h"
#include "p2l/metrics/lpips.h"

namespace p2l::eval {

struct ScoreOptions {
  std::vector<std::string> reference, images;  // files and/or folders
  std::string lpips_weights;                   // "" = no LPIPS
  metrics::LpipsNet lpips_net = metrics::LpipsNet::Alex;
  std::string inception_weights;  // "" = no FID / KID
  std::string fd_emoji;           // the FD-emoji network's folder, "" = none
  torch::Device device = torch::kCPU;
  int64_t batch_size = 16;  // images per Inception / FD-emoji batch
  metrics::KernelDistanceOptions kid;
};

// The scores as `p2l score --json` writes them: pairs, means ("psnr", "ssim", "lpips"), the set
// metrics asked for ("fid", "kid_mean", …, "fd_emoji") with the weights they used, and
// "per_pair". Checks every input before the slow work; throws p2l::Error naming the flag, file
// or image at fault (a missing path, two images of one name, a size mismatch, nothing to score).
nlohmann::json score_images(const ScoreOptions& options);

}  // namespace p2l::eval
