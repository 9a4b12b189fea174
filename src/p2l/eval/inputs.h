// What an evaluation (and `p2l demo` / `p2l sweep`) restores: the clean images, found from files
// and folders, and a task's measurement of one of them.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "p2l/eval/plan.h"
#include "p2l/operators/measurement.h"

namespace p2l::eval {

// The five tasks of the evaluation protocol (SPEC §5): what `p2l eval` and `p2l demo` run by
// default and the solver tests check.
const std::vector<std::string>& evaluation_tasks();

// The image files of a folder (.png, .jpg, .jpeg in any case: what io::load_image reads), in
// name order so that a list is the same on every machine.
std::vector<std::string> image_files_in(const std::string& folder);

// The image files among `given` and those of the folders among it (image_files_in); `default_folder` when `given` is empty.
// Throws p2l::Error naming a path that does not exist, or when no image is found.
std::vector<std::string> collect_images(const std::vector<std::string>& given,
                                        const std::string& default_folder);

// A plan's images (plan.h): collect_images(given, MODEL/test_images), each named by its file
// name, with its absolute path.
std::vector<EvalImage> evaluation_images(const std::vector<std::string>& given,
                                         const std::string& model_folder);

// y = A(x) + n for a task by its CLI name (sr, gauss-blur, …) with the preset for the image's
// size and Gaussian noise σ_y; `seed` drives both the operator's random parts (motion kernel,
// box position, random mask) and the noise. Throws p2l::Error for an unknown task.
operators::Measurement measure_task(const torch::Tensor& clean, const std::string& task,
                                    double noise_sigma, uint64_t seed);

}  // namespace p2l::eval
