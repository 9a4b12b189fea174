// Access to the golden tensors for the tests: $P2L_GOLDENS, else the repository's copy
// (tests/goldens, linked into the build folder with the assembled single files).
// Everything about the golden set (configs, shapes, prompts, tolerances) is read from its files.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "p2l/io/safetensors.h"
#include "p2l/model/checkpoint.h"

namespace p2l::test {

inline std::string goldens_dir() {
  if (const char* env = std::getenv("P2L_GOLDENS"); env && *env) return env;
  return P2L_DEFAULT_GOLDENS;
}

class Goldens {
 public:
  static Goldens& get() {
    static Goldens instance;
    return instance;
  }
  const std::string& dir() const { return dir_; }
  const nlohmann::json& meta() const { return meta_; }
  torch::Tensor tensor(const std::string& name) const { return file_->load(name); }
  bool has(const std::string& name) const { return file_->contains(name); }
  // Per-tensor absolute tolerance from goldens.json (0 when none is given).
  double suggested_atol(const std::string& name) const {
    const auto& t = meta_.at("tensors").at(name);
    return t.contains("suggested_atol") && t["suggested_atol"].is_number()
               ? t["suggested_atol"].get<double>()
               : 0.0;
  }
  std::string diffusers_dir() const { return dir_ + "/diffusers"; }
  // Whether this LibTorch has the major.minor version the goldens were computed with
  // (goldens.json "versions"."torch"): only then can float32 results be bit-identical.
  bool same_torch_version() const {
    if (!meta_.contains("versions") || !meta_["versions"].contains("torch")) return false;
    const std::string theirs = meta_["versions"]["torch"].get<std::string>();
    const std::string ours =
        std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + ".";
    return theirs.rfind(ours, 0) == 0;
  }
  // The single file of the original layout (the one *.safetensors beside a *.yaml).
  std::string single_file() const { return single_file_; }

 private:
  Goldens() : dir_(goldens_dir()) {
    std::ifstream in(dir_ + "/goldens.json");
    if (!in) throw std::runtime_error("cannot read " + dir_ + "/goldens.json (set P2L_GOLDENS)");
    meta_ = nlohmann::json::parse(in);
    file_ = std::make_unique<io::SafeTensorsFile>(dir_ + "/goldens.safetensors");
    if (meta_.contains("files") && meta_["files"].contains("compvis_single_file")) {
      std::string entry = meta_["files"]["compvis_single_file"].get<std::string>();
      single_file_ = dir_ + "/" + entry.substr(0, entry.find(' '));
    }
  }
  std::string dir_;
  nlohmann::json meta_;
  std::unique_ptr<io::SafeTensorsFile> file_;
  std::string single_file_;
};

// ‖got − want‖ / ‖want‖.
inline double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  auto g = got.detach().to(torch::kCPU, torch::kDouble);
  auto w = want.detach().to(torch::kCPU, torch::kDouble);
  const double denom = w.norm().item<double>();
  const double num = (g - w).norm().item<double>();
  return denom == 0 ? num : num / denom;
}

// The criterion: relative error ≤ rel, or max |got − want| within the golden's
// suggested_atol where that is looser.
inline ::testing::AssertionResult matches_golden(const torch::Tensor& got, const std::string& name,
                                                 double rel = 1e-4) {
  const auto& g = Goldens::get();
  const auto want = g.tensor(name);
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure()
           << name << ": shape " << got.sizes() << " vs golden " << want.sizes();
  const double err = relative_error(got, want);
  const double max_abs =
      (got.detach().to(torch::kCPU, torch::kDouble) - want.to(torch::kDouble)).abs().max().item<double>();
  const double atol = g.suggested_atol(name);
  if (err <= rel || max_abs <= atol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": relative error " << err << " (limit " << rel
                                       << "), max abs diff " << max_abs << " (atol " << atol
                                       << ")";
}

inline model::StableDiffusion load_golden_model(model::Layout layout) {
  const auto& g = Goldens::get();
  model::LoadOptions options;
  options.tokenizer_dir = g.diffusers_dir() + "/tokenizer";
  return model::load_stable_diffusion(
      layout == model::Layout::Diffusers ? g.diffusers_dir() : g.single_file(), options);
}

}  // namespace p2l::test
