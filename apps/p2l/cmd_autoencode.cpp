// `p2l autoencode`: how well a model's autoencoder reproduces images, D(E(x)) against x. Every
// latent method's restoration passes through the decoder, so this is the ceiling a style or image
// set imposes before any prior or measurement enters (docs/results.md, the cross-style run).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/metrics/image_quality.h"
#include "p2l/model/checkpoint.h"

namespace p2l::cli {

namespace fs = std::filesystem;

namespace {
struct AutoencodeArgs {
  std::string model, output, json, device = "cpu";
  std::vector<std::string> images;
};
}  // namespace

void add_autoencode_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "autoencode",
      "Encode and decode images with a model's autoencoder: PSNR/SSIM of D(E(x)) per image and "
      "their mean, the ceiling of every latent method on those images. Example: p2l autoencode "
      "-m models/emoji-64 images/ -o reconstructed/");
  auto a = std::make_shared<AutoencodeArgs>();
  cmd->add_option("-m,--model", a->model,
                  "Model folder or weight file (.safetensors, .ckpt, .pt, .pth, .bin)")
      ->required();
  cmd->add_option("images", a->images, "Image files or folders (their *.png)")->required();
  cmd->add_option("-o,--output", a->output, "Folder for the reconstructions (same file names)");
  cmd->add_option("--json", a->json, "Write the per-image values and the means as JSON");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N");
  cmd->callback([=] {
    model::LoadOptions load;
    load.device = parse_device(a->device);
    auto sd = model::load_stable_diffusion(a->model, load);
    const auto images = eval::collect_images(a->images, "");
    if (!a->output.empty()) io::check_writable((fs::path(a->output) / "report.json").string());
    torch::InferenceMode inference;
    nlohmann::json rows = nlohmann::json::array();
    double psnr_sum = 0, ssim_sum = 0;
    std::cout << "| image | PSNR (dB) | SSIM |\n|---|---|---|\n";
    for (const auto& path : images) {
      const auto x = io::load_image(path).to(load.device, sd.arithmetic_dtype());
      torch::Tensor reconstruction;
      try {
        reconstruction = sd.decode(sd.encode(x));
      } catch (const Error& e) {
        throw Error(path + ": " + e.what());
      }
      const auto name = fs::path(path).filename().string();
      const double psnr = metrics::psnr(reconstruction, x), ssim = metrics::ssim(reconstruction, x);
      psnr_sum += psnr;
      ssim_sum += ssim;
      rows.push_back({{"image", name}, {"psnr", psnr}, {"ssim", ssim}});
      if (!a->output.empty())
        io::save_png((fs::path(a->output) / name).replace_extension(".png").string(),
                     reconstruction);
      std::printf("| %s | %.2f | %.3f |\n", name.c_str(), psnr, ssim);
    }
    const double n = static_cast<double>(images.size());
    std::printf("| mean of %zu | %.2f | %.3f |\n", images.size(), psnr_sum / n, ssim_sum / n);
    if (!a->json.empty())
      io::write_json(a->json, {{"model", a->model},
                               {"images", rows},
                               {"mean_psnr", psnr_sum / n},
                               {"mean_ssim", ssim_sum / n}});
  });
}

}  // namespace p2l::cli
