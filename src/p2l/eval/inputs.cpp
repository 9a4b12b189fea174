#include "p2l/eval/inputs.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>

#include "p2l/error.h"
#include "p2l/operators/noise.h"
#include "p2l/operators/presets.h"

namespace p2l::eval {

namespace fs = std::filesystem;

std::vector<std::string> image_files_in(const std::string& folder) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (entry.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg"))
      files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> collect_images(const std::vector<std::string>& given,
                                        const std::string& default_folder) {
  std::vector<std::string> paths = given;
  if (paths.empty()) paths.push_back(default_folder);
  std::vector<std::string> images;
  for (const auto& path : paths) {
    if (fs::is_directory(path)) {
      const auto files = image_files_in(path);
      images.insert(images.end(), files.begin(), files.end());
    } else if (fs::exists(path)) {
      images.push_back(path);
    } else {
      throw Error(path + ": no such image or folder");
    }
  }
  if (images.empty())
    throw Error("no images in " + paths.front() + " (pass --images FILES or FOLDERS)");
  return images;
}

std::vector<EvalImage> evaluation_images(const std::vector<std::string>& given,
                                         const std::string& model_folder) {
  std::vector<EvalImage> images;
  for (const auto& path : collect_images(given, (fs::path(model_folder) / "test_images").string()))
    images.push_back(
        {fs::path(path).filename().string(), fs::absolute(path).lexically_normal().string()});
  return images;
}

operators::Measurement measure_task(const torch::Tensor& clean, const std::string& task,
                                    double noise_sigma, uint64_t seed) {
  const int64_t h = clean.size(2), w = clean.size(3);
  std::shared_ptr<const operators::Operator> op = operators::make_operator(
      operators::parse_task(task), operators::TaskParams::preset(operators::preset_for_image(h, w)),
      h, w, seed);
  return operators::measure(clean, op, operators::NoiseModel::gaussian(noise_sigma), seed);
}

const std::vector<std::string>& evaluation_tasks() {
  static const std::vector<std::string> tasks = {"sr", "gauss-blur", "motion-blur", "box-inpaint",
                                                 "random-inpaint"};
  return tasks;
}

}  // namespace p2l::eval
