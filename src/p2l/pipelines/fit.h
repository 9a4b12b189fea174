// Whether a restoration explains its measurement (`p2l eval` for every job, `p2l restore` when the
// clean image is known; eval/results.h reads it from the harness's records). A sample can end far from y without any
// numerical divergence (guidance that lost its way mid-run), and its PSNR then drags a method's
// mean down with nothing in the summary saying why. The yardstick is what the prior itself can
// reach, ‖y − A(D(E(x)))‖ for the clean image x, not the noise's norm: images the autoencoder
// cannot reconstruct (thin flag stripes) leave a large residual for every method alike.
#pragma once

#include <torch/torch.h>

#include <optional>

#include "p2l/model/stable_diffusion.h"
#include "p2l/operators/measurement.h"

namespace p2l::pipelines {

// A restoration "did not fit its measurement" when its residual exceeds the autoencoded clean
// image's by more than this factor (docs/eval.md has the distribution it was chosen from).
constexpr double kMisfitRatio = 2.0;

// ‖y − A(clamp(D(E(clean))))‖, with the encoder's mean: the data residual of the clean image as
// the model's autoencoder gives it back. `clean` is [1, 3, H, W] in [-1, 1] on the CPU.
double autoencoded_residual(model::StableDiffusion& model,
                            const operators::Measurement& measurement, const torch::Tensor& clean);

// residual / reference; none when the reference is 0 (a noiseless measurement of an image the
// autoencoder reproduces exactly: nothing to compare with).
std::optional<double> fit_ratio(double residual, double reference);

}  // namespace p2l::pipelines
