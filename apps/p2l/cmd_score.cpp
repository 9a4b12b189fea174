// `p2l score`: flags for eval::score_images (p2l/eval/score.h) and its summary on stdout.
// What each metric computes and how to make the weight files: docs/metrics.md.
#include <iomanip>
#include <iostream>

#include "commands.h"
#include "p2l/error.h"
#include "p2l/eval/score.h"
#include "p2l/io/json_file.h"

namespace p2l::cli {

namespace {

struct ScoreArgs {
  eval::ScoreOptions options;
  std::string lpips_net = "alex", device = "cpu", json;
};

}  // namespace

void add_score_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "score",
      "Score images against references: PSNR, SSIM and LPIPS per pair (same file name, any "
      "extension), FID, KID and FD-emoji between the sets. Example: p2l score --reference "
      "clean/ --images restored/ --lpips-weights lpips_alex.safetensors --json scores.json");
  auto a = std::make_shared<ScoreArgs>();
  auto& o = a->options;
  cmd->add_option("--reference", o.reference, "Reference images: files and/or folders")->required();
  cmd->add_option("--images", o.images, "Images to score: files and/or folders")->required();
  cmd->add_option("--lpips-weights", o.lpips_weights,
                  "LPIPS weights (.safetensors, see docs/metrics.md); without it no LPIPS");
  auto* net = cmd->add_option("--lpips-net", a->lpips_net, "LPIPS backbone: alex or vgg (alex)");
  cmd->add_option("--inception-weights", o.inception_weights,
                  "FID Inception weights (.safetensors, see docs/metrics.md); without it no "
                  "FID/KID");
  cmd->add_option("--fd-emoji", o.fd_emoji,
                  "FD-emoji network (e.g. models/emoji-64/fd_emoji): Fréchet distance between "
                  "the sets on features of p2l's emoji classifier (each set needs >= 2 images)");
  cmd->add_option("--json", a->json, "Also write the scores (and per-pair values) as JSON");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N");
  cmd->add_option("--batch-size", o.batch_size, "Images per Inception / FD-emoji batch (16)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--kid-subsets", o.kid.subsets, "KID: number of subsets (100)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--kid-subset-size", o.kid.subset_size,
                  "KID: subset size, capped at the smaller set (1000)");
  cmd->add_option("--kid-seed", o.kid.seed, "KID: seed of the subset draws (2020)");

  cmd->callback([a, net] {
    if (net->count() > 0 && a->options.lpips_weights.empty())
      throw Error("--lpips-net: needs --lpips-weights");
    a->options.lpips_net = metrics::lpips_net_from_name(a->lpips_net);
    a->options.device = parse_device(a->device);
    const auto report = eval::score_images(a->options);
    std::cout << "pairs:  " << report["pairs"] << " (of " << report["image_count"] << " images, "
              << report["reference_count"] << " references)\n"
              << std::fixed;
    if (report.contains("psnr"))
      std::cout << "PSNR:   " << std::setprecision(2) << report["psnr"].get<double>() << " dB\n"
                << "SSIM:   " << std::setprecision(4) << report["ssim"].get<double>() << "\n";
    if (report.contains("lpips"))
      std::cout << "LPIPS:  " << std::setprecision(4) << report["lpips"].get<double>() << " ("
                << a->lpips_net << ")\n";
    if (report.contains("fid"))
      std::cout << "FID:    " << std::setprecision(4) << report["fid"].get<double>() << "\n"
                << "KID:    " << std::setprecision(6) << report["kid_mean"].get<double>() << " ± "
                << report["kid_std"].get<double>() << " (" << report["kid_subsets"]
                << " subsets of " << report["kid_subset_size"] << ")\n";
    if (report.contains("fd_emoji"))
      std::cout << "FD-emoji: " << std::setprecision(4) << report["fd_emoji"].get<double>() << "\n";
    if (!a->json.empty()) {
      io::write_json(a->json, report);
      std::cout << "wrote " << a->json << "\n";
    }
  });
}

}  // namespace p2l::cli
