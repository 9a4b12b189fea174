// What an evaluation (and `p2l demo` / `p2l sweep`) restores: the clean images, found from files
// and folders, and a task's measurement of one of them.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "p2l/operators/measurement.h"

namespace p2l::eval {

// The five tasks of the evaluation protocol (SPEC §5): what `p2l eval` and `p2l demo` run by
// default and the solver tests check.
const std::vector<std::string>& evaluation_tasks();

// The PNG files among `given` and every *.png of the folders among it (each folder sorted by
// name, so the list is the same on every machine); `default_folder` when `given` is empty.
// Throws p2l::Error naming a path that does not exist, or when no image is found.
std::vector<std::string> collect_images(const std::vector<std::string>& given,
                                        const std::string& default_folder);

// y = A(x) + n for a task by its CLI name (sr, gauss-blur, …) with the preset for the image's
// size and Gaussian noise σ_y; `seed` drives both the operator's random parts (motion kernel,
// box position, random mask) and the noise. Throws p2l::Error for an unknown task.
operators::Measurement measure_task(const torch::Tensor& clean, const std::string& task,
                                    double noise_sigma, uint64_t seed);

}  // namespace p2l::eval
