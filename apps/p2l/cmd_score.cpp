// `p2l score`: how close restored images are to their references. Per pair (an image and the
// reference with the same file name, extension aside): PSNR, SSIM and, given LPIPS weights,
// LPIPS; per set, given Inception weights, FID and KID between all references and all images,
// and given p2l's emoji feature network, FD-emoji (a Fréchet distance on that network's features,
// never called FID).
// What each metric computes and how to make the weight files: docs/metrics.md.
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>

#include "commands.h"
#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/eval/statistics.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/log.h"
#include "p2l/metrics/emoji_features.h"
#include "p2l/metrics/feature_distances.h"
#include "p2l/metrics/image_quality.h"
#include "p2l/metrics/inception.h"
#include "p2l/metrics/lpips.h"
#include "p2l/progress.h"

namespace p2l::cli {

namespace fs = std::filesystem;

namespace {

struct ScoreArgs {
  std::vector<std::string> reference, images;
  std::string lpips_weights, lpips_net = "alex", inception_weights, fd_emoji, json,
      device = "cpu";
  int64_t batch_size = 16;
  metrics::KernelDistanceOptions kid;
};

struct ImageFile {
  std::string name;  // file name without extension: what pairs an image with its reference
  std::string path;
};

// Files as given, folders as their image files in name order. Names must be unique in a set:
// otherwise an image would have two candidate references.
std::vector<ImageFile> collect_images(const std::vector<std::string>& inputs,
                                      const std::string& flag) {
  std::vector<ImageFile> out;
  std::map<std::string, std::string> seen;
  for (const auto& input : inputs) {
    std::vector<fs::path> files;
    if (fs::is_directory(input)) {
      for (const auto& file : eval::image_files_in(input)) files.emplace_back(file);
      if (files.empty())
        throw Error(flag + " " + input + ": no images (.png, .jpg, .jpeg) in this folder");
    } else if (fs::is_regular_file(input)) {
      files.emplace_back(input);
    } else {
      throw Error(flag + " " + input + ": no such file or folder");
    }
    for (const auto& file : files) {
      const auto name = file.stem().string();
      const auto [it, inserted] = seen.emplace(name, file.string());
      if (!inserted)
        throw Error(flag + ": two images named '" + name + "': " + it->second + " and " +
                    file.string());
      out.push_back({name, file.string()});
    }
  }
  return out;
}

std::string size_str(const torch::Tensor& image) {
  return std::to_string(image.size(-1)) + "×" + std::to_string(image.size(-2));
}

// A network's features of a set (Inception pool3, FD-emoji), batched over consecutive images of
// the same size (each network resizes images to its input size itself).
using FeatureNetwork = std::function<torch::Tensor(const torch::Tensor&)>;
torch::Tensor set_features(const FeatureNetwork& net, const std::vector<ImageFile>& files,
                           int64_t batch_size, const std::string& label) {
  std::vector<torch::Tensor> features, pending;
  Progress progress(label, static_cast<int64_t>(files.size()));
  int64_t done = 0;
  auto flush = [&] {
    if (pending.empty()) return;
    features.push_back(net(torch::cat(pending)).cpu());
    done += static_cast<int64_t>(pending.size());
    pending.clear();
    progress.update(done);
  };
  for (const auto& file : files) {
    auto image = io::load_image(file.path);
    if (!pending.empty() && (image.sizes() != pending.front().sizes() ||
                             static_cast<int64_t>(pending.size()) == batch_size))
      flush();
    pending.push_back(image);
  }
  flush();
  progress.finish();
  return torch::cat(features);
}

}  // namespace

void add_score_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "score",
      "Score images against references: PSNR, SSIM and LPIPS per pair (same file name, any "
      "extension), FID, KID and FD-emoji between the sets. Example: p2l score --reference "
      "clean/ --images restored/ --lpips-weights lpips_alex.safetensors --json scores.json");
  auto a = std::make_shared<ScoreArgs>();
  cmd->add_option("--reference", a->reference, "Reference images: files and/or folders")
      ->required();
  cmd->add_option("--images", a->images, "Images to score: files and/or folders")->required();
  cmd->add_option("--lpips-weights", a->lpips_weights,
                  "LPIPS weights (.safetensors, see docs/metrics.md); without it no LPIPS");
  auto* net = cmd->add_option("--lpips-net", a->lpips_net, "LPIPS backbone: alex or vgg (alex)");
  cmd->add_option("--inception-weights", a->inception_weights,
                  "FID Inception weights (.safetensors, see docs/metrics.md); without it no "
                  "FID/KID");
  cmd->add_option("--fd-emoji", a->fd_emoji,
                  "FD-emoji network (e.g. models/emoji-64/fd_emoji): Fréchet distance between "
                  "the sets on features of p2l's emoji classifier (each set needs >= 2 images)");
  cmd->add_option("--json", a->json, "Also write the scores (and per-pair values) as JSON");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N");
  cmd->add_option("--batch-size", a->batch_size, "Images per Inception / FD-emoji batch (16)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--kid-subsets", a->kid.subsets, "KID: number of subsets (100)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--kid-subset-size", a->kid.subset_size,
                  "KID: subset size, capped at the smaller set (1000)");
  cmd->add_option("--kid-seed", a->kid.seed, "KID: seed of the subset draws (2020)");

  cmd->callback([a, net] {
    // Check every input before the slow work.
    if (net->count() > 0 && a->lpips_weights.empty())
      throw Error("--lpips-net: needs --lpips-weights");
    const auto lpips_net = metrics::lpips_net_from_name(a->lpips_net);
    if (a->kid.subset_size < 2) throw Error("--kid-subset-size: must be at least 2");
    const auto device = parse_device(a->device);
    const auto references = collect_images(a->reference, "--reference");
    const auto images = collect_images(a->images, "--images");
    const bool set_metrics = !a->inception_weights.empty() || !a->fd_emoji.empty();
    if (set_metrics && (references.size() < 2 || images.size() < 2))
      throw Error("FID, KID and FD-emoji need at least 2 images in each set (got " +
                  std::to_string(references.size()) + " references and " +
                  std::to_string(images.size()) + " images)");
    std::map<std::string, std::string> reference_of;
    for (const auto& r : references) reference_of[r.name] = r.path;
    std::vector<std::string> unmatched;
    for (const auto& image : images)
      if (!reference_of.count(image.name)) unmatched.push_back(image.name);
    const size_t pairs = images.size() - unmatched.size();
    if (pairs == 0 && !set_metrics)
      throw Error(
          "no image in --images has a reference of the same name in --reference (and "
          "without --inception-weights or --fd-emoji there is nothing else to score)");
    if (pairs > 0 && !unmatched.empty())
      log::warn(std::to_string(unmatched.size()) + " of " + std::to_string(images.size()) +
                " images have no reference of the same name (first: " + unmatched.front() + ")");

    metrics::Lpips lpips{nullptr};
    if (!a->lpips_weights.empty()) lpips = metrics::load_lpips(a->lpips_weights, lpips_net, device);
    metrics::FidInception inception{nullptr};
    if (!a->inception_weights.empty())
      inception = metrics::load_fid_inception(a->inception_weights, device);
    metrics::EmojiFeatureNet fd_emoji{nullptr};
    if (!a->fd_emoji.empty()) fd_emoji = metrics::load_emoji_feature_net(a->fd_emoji, device);
    torch::NoGradGuard no_grad;

    nlohmann::json per_pair = nlohmann::json::array();
    std::vector<double> psnrs, ssims, lpipses;
    Progress progress("pairs", static_cast<int64_t>(pairs));
    for (const auto& image : images) {
      const auto it = reference_of.find(image.name);
      if (it == reference_of.end()) continue;
      const auto x = io::load_image(image.path), ref = io::load_image(it->second);
      if (x.sizes() != ref.sizes())
        throw Error(image.path + " is " + size_str(x) + " but its reference " + it->second +
                    " is " + size_str(ref));
      nlohmann::json entry = {
          {"name", image.name}, {"image", image.path}, {"reference", it->second}};
      psnrs.push_back(metrics::psnr(x, ref));
      ssims.push_back(metrics::ssim(x, ref));
      entry["psnr"] = psnrs.back();  // null in JSON for identical images (+∞)
      entry["ssim"] = ssims.back();
      if (lpips) {
        try {
          lpipses.push_back(lpips(x, ref).item<double>());
        } catch (const Error& e) {
          throw Error(image.path + ": " + e.what());
        }
        entry["lpips"] = lpipses.back();
      }
      per_pair.push_back(entry);
      progress.update(static_cast<int64_t>(psnrs.size()));
    }
    progress.finish();

    nlohmann::json report = {{"reference", a->reference},
                             {"images", a->images},
                             {"image_count", images.size()},
                             {"reference_count", references.size()},
                             {"pairs", pairs},
                             {"unmatched", unmatched}};
    std::cout << "pairs:  " << pairs << " (of " << images.size() << " images, " << references.size()
              << " references)\n"
              << std::fixed;
    if (pairs > 0) {
      report["psnr"] = eval::mean_std(psnrs).mean;
      report["ssim"] = eval::mean_std(ssims).mean;
      std::cout << "PSNR:   " << std::setprecision(2) << eval::mean_std(psnrs).mean << " dB\n"
                << "SSIM:   " << std::setprecision(4) << eval::mean_std(ssims).mean << "\n";
    }
    if (lpips && pairs > 0) {
      report["lpips"] = eval::mean_std(lpipses).mean;
      report["lpips_net"] = a->lpips_net;
      report["lpips_weights"] = a->lpips_weights;
      std::cout << "LPIPS:  " << std::setprecision(4) << eval::mean_std(lpipses).mean << " (" << a->lpips_net
                << ")\n";
    }
    if (inception) {
      const FeatureNetwork net = [&](const torch::Tensor& x) { return inception->features(x); };
      const auto ref_features =
          set_features(net, references, a->batch_size, "inception reference");
      const auto image_features = set_features(net, images, a->batch_size, "inception images");
      const double fid = metrics::frechet_distance(ref_features, image_features);
      const auto kid = metrics::kernel_distance(ref_features, image_features, a->kid);
      report["fid"] = fid;
      report["kid_mean"] = kid.mean;
      report["kid_std"] = kid.std;
      report["kid_subsets"] = kid.subsets;
      report["kid_subset_size"] = kid.subset_size;
      report["kid_seed"] = a->kid.seed;
      report["inception_weights"] = a->inception_weights;
      std::cout << "FID:    " << std::setprecision(4) << fid << "\n"
                << "KID:    " << std::setprecision(6) << kid.mean << " ± " << kid.std << " ("
                << kid.subsets << " subsets of " << kid.subset_size << ")\n";
    }
    if (fd_emoji) {
      const FeatureNetwork net = [&](const torch::Tensor& x) { return fd_emoji->features(x); };
      const double fd = metrics::frechet_distance(
          set_features(net, references, a->batch_size, "fd-emoji reference"),
          set_features(net, images, a->batch_size, "fd-emoji images"));
      report["fd_emoji"] = fd;
      report["fd_emoji_network"] = a->fd_emoji;
      std::cout << "FD-emoji: " << std::setprecision(4) << fd << "\n";
    }
    report["per_pair"] = per_pair;
    if (!a->json.empty()) {
      io::write_json(a->json, report);
      std::cout << "wrote " << a->json << "\n";
    }
  });
}

}  // namespace p2l::cli
