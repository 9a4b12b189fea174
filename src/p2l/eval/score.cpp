#include "p2l/eval/score.h"

#include <filesystem>
#include <functional>
#include <map>

#include "p2l/error.h"
#include "p2l/eval/inputs.h"
#include "p2l/eval/statistics.h"
#include "p2l/io/image.h"
#include "p2l/log.h"
#include "p2l/metrics/emoji_features.h"
#include "p2l/metrics/image_quality.h"
#include "p2l/metrics/inception.h"
#include "p2l/progress.h"

namespace p2l::eval {

namespace fs = std::filesystem;

namespace {

struct ImageFile {
  std::string name;  // file name without extension: what pairs an image with its reference
  std::string path;
};

// Files as given, folders as their image files in name order. Names must be unique in a set:
// otherwise an image would have two candidate references.
std::vector<ImageFile> image_set(const std::vector<std::string>& inputs, const std::string& flag) {
  std::vector<ImageFile> out;
  std::map<std::string, std::string> seen;
  for (const auto& input : inputs) {
    std::vector<fs::path> files;
    if (fs::is_directory(input)) {
      for (const auto& file : image_files_in(input)) files.emplace_back(file);
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

nlohmann::json score_images(const ScoreOptions& o) {
  // Every input is checked before the slow work.
  if (o.kid.subset_size < 2) throw Error("--kid-subset-size: must be at least 2");
  if (o.batch_size < 1) throw Error("--batch-size: must be at least 1");
  const auto references = image_set(o.reference, "--reference");
  const auto images = image_set(o.images, "--images");
  const bool set_metrics = !o.inception_weights.empty() || !o.fd_emoji.empty();
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
  if (!o.lpips_weights.empty()) lpips = metrics::load_lpips(o.lpips_weights, o.lpips_net, o.device);
  metrics::FidInception inception{nullptr};
  if (!o.inception_weights.empty())
    inception = metrics::load_fid_inception(o.inception_weights, o.device);
  metrics::EmojiFeatureNet fd_emoji{nullptr};
  if (!o.fd_emoji.empty()) fd_emoji = metrics::load_emoji_feature_net(o.fd_emoji, o.device);
  torch::NoGradGuard no_grad;

  nlohmann::json per_pair = nlohmann::json::array();
  std::vector<double> psnrs, ssims, lpipses;
  Progress progress("pairs", static_cast<int64_t>(pairs));
  for (const auto& image : images) {
    const auto it = reference_of.find(image.name);
    if (it == reference_of.end()) continue;
    const auto x = io::load_image(image.path), ref = io::load_image(it->second);
    if (x.sizes() != ref.sizes())
      throw Error(image.path + " is " + size_str(x) + " but its reference " + it->second + " is " +
                  size_str(ref));
    nlohmann::json entry = {{"name", image.name}, {"image", image.path}, {"reference", it->second}};
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

  nlohmann::json report = {{"reference", o.reference},
                           {"images", o.images},
                           {"image_count", images.size()},
                           {"reference_count", references.size()},
                           {"pairs", pairs},
                           {"unmatched", unmatched}};
  if (pairs > 0) {
    report["psnr"] = mean_std(psnrs).mean;
    report["ssim"] = mean_std(ssims).mean;
  }
  if (lpips && pairs > 0) {
    report["lpips"] = mean_std(lpipses).mean;
    report["lpips_net"] = metrics::lpips_net_name(o.lpips_net);
    report["lpips_weights"] = o.lpips_weights;
  }
  if (inception) {
    const FeatureNetwork net = [&](const torch::Tensor& x) { return inception->features(x); };
    const auto ref_features = set_features(net, references, o.batch_size, "inception reference");
    const auto image_features = set_features(net, images, o.batch_size, "inception images");
    const auto kid = metrics::kernel_distance(ref_features, image_features, o.kid);
    report["fid"] = metrics::frechet_distance(ref_features, image_features);
    report["kid_mean"] = kid.mean;
    report["kid_std"] = kid.std;
    report["kid_subsets"] = kid.subsets;
    report["kid_subset_size"] = kid.subset_size;
    report["kid_seed"] = o.kid.seed;
    report["inception_weights"] = o.inception_weights;
  }
  if (fd_emoji) {
    const FeatureNetwork net = [&](const torch::Tensor& x) { return fd_emoji->features(x); };
    report["fd_emoji"] =
        metrics::frechet_distance(set_features(net, references, o.batch_size, "fd-emoji reference"),
                                  set_features(net, images, o.batch_size, "fd-emoji images"));
    report["fd_emoji_network"] = o.fd_emoji;
  }
  report["per_pair"] = per_pair;
  return report;
}

}  // namespace p2l::eval
