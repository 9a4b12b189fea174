#include "p2l/operators/motion_blur.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/operators/prng.h"
#include "p2l/operators/resizer.h"

namespace p2l::operators {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Bounds the step-drawing loop when the target length is vanishingly small.
constexpr int64_t kMaxStepDraws = 100000;

void check_motion_parameters(int64_t size, double intensity) {
  if (size < 1 || size % 2 == 0)
    throw Error("motion blur: kernel size must be odd and positive, got " + std::to_string(size));
  if (!(intensity >= 0 && intensity <= 1))
    throw Error("motion blur: intensity must be in [0, 1], got " + c10::str(intensity));
}

// Beta(1, b) by inversion.
double beta_1(SplitMix64& rng, double b) { return 1 - std::pow(1 - rng.uniform(), 1 / b); }

// Beta(a, b) for integer a, b: ratio of Gamma(a) and Gamma(a) + Gamma(b), each a sum of
// exponentials.
double beta_int(SplitMix64& rng, int a, int b) {
  auto gamma = [&](int k) {
    double s = 0;
    for (int i = 0; i < k; ++i) s -= std::log(1 - rng.uniform());
    return s;
  };
  const double ga = gamma(a), gb = gamma(b);
  return ga / (ga + gb);
}

double triangular(SplitMix64& rng, double left, double mode, double right) {
  const double u = rng.uniform();
  const double span = right - left;
  if (span <= 0) return left;
  if (u < (mode - left) / span) return left + std::sqrt(u * span * (mode - left));
  return right - std::sqrt((1 - u) * span * (right - mode));
}

double sign(double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); }

// Separable Gaussian blur of an [n, n] image with zero boundary, truncated at 3σ.
torch::Tensor gaussian_smooth(const torch::Tensor& image, double sigma) {
  const int64_t radius = static_cast<int64_t>(std::ceil(3 * sigma));
  auto taps = torch::arange(-radius, radius + 1, torch::kDouble);
  taps = torch::exp(-0.5 * taps * taps / (sigma * sigma));
  taps = taps / taps.sum();
  auto x = image.view({1, 1, image.size(0), image.size(1)});
  x = torch::conv2d(x, taps.view({1, 1, -1, 1}), torch::Tensor(), torch::IntArrayRef{1, 1},
                    torch::IntArrayRef{radius, 0});
  x = torch::conv2d(x, taps.view({1, 1, 1, -1}), torch::Tensor(), torch::IntArrayRef{1, 1},
                    torch::IntArrayRef{0, radius});
  return x.view({image.size(0), image.size(1)});
}

}  // namespace

torch::Tensor random_motion_kernel(int64_t size, double intensity, uint64_t seed) {
  check_motion_parameters(size, intensity);
  SplitMix64 rng(derive_seed(seed, "motion_kernel"));
  const int64_t canvas = 2 * size;  // drawn at 2× and down-sampled, as the reference
  const double diagonal = std::sqrt(2.0) * static_cast<double>(canvas);

  // Path length and step sizes: longer, finer walks for higher intensity.
  const double max_length =
      0.75 * diagonal * (rng.uniform() + rng.uniform() * intensity * intensity);
  std::vector<double> steps;
  double length = 0;
  for (int64_t draws = 0; length < max_length && draws < kMaxStepDraws; ++draws) {
    const double step = beta_1(rng, 30) * (1 - intensity + 0.1) * diagonal;
    if (step < max_length) {
      steps.push_back(step);
      length += step;
    }
  }

  // Directions: the first uniform in ±max_angle, later ones keep the previous sign except with
  // probability `jitter`, which makes the path zig-zag.
  const double max_angle = rng.uniform(0, intensity * kPi);
  const double jitter = beta_int(rng, 2, 20);
  std::vector<double> angles(steps.size());
  for (size_t k = 0; k < steps.size(); ++k) {
    if (k == 0) {
      angles[k] = rng.uniform(-max_angle, max_angle);
      continue;
    }
    const double turn = triangular(rng, 0, intensity * max_angle, max_angle + 0.1);
    const double flip = rng.uniform() < jitter ? -1.0 : 1.0;
    angles[k] = flip * sign(angles[k - 1]) * turn;
  }

  // Vertices of the walk, centred on their mean, randomly rotated, placed mid-canvas.
  std::vector<std::complex<double>> path;
  std::complex<double> position = 0, mean = 0;
  for (size_t k = 0; k < steps.size(); ++k) {
    position += std::polar(steps[k], angles[k]);
    path.push_back(position);
    mean += position;
  }
  if (!path.empty()) mean /= static_cast<double>(path.size());
  const auto rotation = std::polar(1.0, rng.uniform(0, kPi));
  const std::complex<double> centre(static_cast<double>(size), static_cast<double>(size));
  for (auto& p : path) p = (p - mean) * rotation + centre;

  // Raster: sample each segment densely and ink the pixels within half the line width.
  auto image = torch::zeros({canvas, canvas}, torch::kDouble);
  auto ink = image.accessor<double, 2>();
  const double line_width = std::max(1.0, std::floor(diagonal / 150));
  const double half = line_width / 2;
  auto stamp = [&](std::complex<double> p) {
    const auto r0 = static_cast<int64_t>(std::floor(p.imag() - half + 0.5));
    const auto c0 = static_cast<int64_t>(std::floor(p.real() - half + 0.5));
    const auto reach = static_cast<int64_t>(line_width);
    for (int64_t r = r0; r < r0 + reach; ++r)
      for (int64_t c = c0; c < c0 + reach; ++c)
        if (r >= 0 && r < canvas && c >= 0 && c < canvas) ink[r][c] = 1;
  };
  if (path.size() == 1) stamp(path[0]);
  for (size_t k = 0; k + 1 < path.size(); ++k) {
    const auto samples = static_cast<int64_t>(std::ceil(std::abs(path[k + 1] - path[k]) * 4)) + 1;
    for (int64_t s = 0; s <= samples; ++s)
      stamp(path[k] + (path[k + 1] - path[k]) * (static_cast<double>(s) / samples));
  }

  const double blur_sigma = std::floor(0.01 * diagonal);
  if (blur_sigma >= 1) image = gaussian_smooth(image, blur_sigma);
  auto m = resizer_matrix(canvas, 0.5, size);
  auto kernel = torch::matmul(torch::matmul(m, image), m.t()).clamp_min(0);
  const double total = kernel.sum().item<double>();
  if (!(total > 0)) {  // an empty walk: no blur
    kernel.zero_();
    kernel[size / 2][size / 2] = 1.0;
    return kernel;
  }
  return kernel / total;
}

MotionBlur::MotionBlur(torch::Tensor kernel, bool random, double intensity, uint64_t seed,
                       std::string source)
    : Convolution(std::move(kernel), "motion blur"),
      random_(random),
      intensity_(intensity),
      seed_(seed),
      source_(std::move(source)) {}

std::unique_ptr<MotionBlur> MotionBlur::random(int64_t size, double intensity, uint64_t seed) {
  return std::unique_ptr<MotionBlur>(
      new MotionBlur(random_motion_kernel(size, intensity, seed), true, intensity, seed, ""));
}

std::unique_ptr<MotionBlur> MotionBlur::from_kernel(const torch::Tensor& kernel,
                                                    const std::string& source) {
  return std::unique_ptr<MotionBlur>(
      new MotionBlur(normalized_blur_kernel(kernel, "motion blur kernel"), false, 0.0, 0, source));
}

std::unique_ptr<MotionBlur> MotionBlur::from_file(const std::string& path) {
  return std::unique_ptr<MotionBlur>(new MotionBlur(load_blur_kernel(path), false, 0.0, 0, path));
}

nlohmann::json MotionBlur::to_json() const {
  nlohmann::json j = {{"kind", kind()},
                      {"kernel_size", {kernel().size(0), kernel().size(1)}},
                      {"kernel_tensor", "kernel"}};
  if (random_) {
    j["source"] = "random";
    j["intensity"] = intensity_;
    j["seed"] = seed_;
  } else {
    j["source"] = source_;
  }
  return j;
}

std::unique_ptr<MotionBlur> MotionBlur::from_json(const nlohmann::json& j,
                                                  const NamedTensors& tensors) {
  const auto size = io::json_int_list(j.at("kernel_size"), "motion blur", "kernel_size");
  if (size.size() != 2) throw Error("motion blur: kernel_size must be [height, width]");
  const auto source = j.value("source", std::string("random"));
  const bool random = source == "random";
  const double intensity = random ? j.at("intensity").get<double>() : 0.0;
  const uint64_t seed = random ? io::json_to_uint(j.at("seed"), "motion blur", "seed") : 0;
  torch::Tensor kernel;
  if (j.contains("kernel_tensor")) {
    const auto name = j["kernel_tensor"].get<std::string>();
    const auto found = tensors.find(name);
    if (found == tensors.end()) throw Error("motion blur: kernel tensor '" + name + "' is missing");
    kernel = found->second;
  } else if (random) {
    if (size[0] != size[1]) throw Error("motion blur: random kernels are square");
    kernel = random_motion_kernel(size[0], intensity, seed);
  } else {
    kernel = load_blur_kernel(source);
  }
  if (kernel.dim() != 2 || kernel.size(0) != size[0] || kernel.size(1) != size[1])
    throw Error("motion blur: kernel has shape " + c10::str(kernel.sizes()) +
                " but kernel_size is [" + std::to_string(size[0]) + ", " + std::to_string(size[1]) +
                "]");
  return std::unique_ptr<MotionBlur>(new MotionBlur(kernel, random, intensity, seed, source));
}

}  // namespace p2l::operators
