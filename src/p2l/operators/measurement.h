// A measurement y = A(x) + n on disk, as `p2l degrade` writes it and `p2l restore` reads it.
// For an output base OUT (a trailing .json, .png or .safetensors is dropped):
//   OUT.json         format "p2l-measurement" v1: operator (Operator::to_json), noise, seed,
//                    source_image (absolute), image_size, measurement_shape, the other two
//                    file names (relative to the JSON's folder) and the tensor names;
//   OUT.safetensors  "y" (the exact measurement, noise included, float32) and the operator's
//                    kernel / mask ("kernel" / "mask", float64);
//   OUT.png          y for viewing (clamped to [-1, 1], 8 bits; for SR the small image).
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "p2l/operators/noise.h"
#include "p2l/operators/operator.h"

namespace p2l::operators {

struct Measurement {
  std::shared_ptr<const Operator> op;
  torch::Tensor y;  // [1, C, h, w], noise included
  NoiseModel noise;
  uint64_t seed = 0;
  std::string source_image;       // absolute path of the clean image ("" if none)
  int64_t height = 0, width = 0;  // of the clean image
  nlohmann::json info;            // the JSON as read by load_measurement (task, preset, …)
};

// y = add_noise(op.forward(x), noise, seed); x is [1, C, H, W].
Measurement measure(const torch::Tensor& x, std::shared_ptr<const Operator> op,
                    const NoiseModel& noise, uint64_t seed);

struct MeasurementFiles {
  std::string json, tensors, preview;
};
MeasurementFiles measurement_files(const std::string& out);

// Writes the three files, creating the folder if needed; `extra` fields (e.g. task, preset)
// are added to the JSON.
MeasurementFiles save_measurement(const Measurement& m, const std::string& out,
                                  const nlohmann::json& extra = nlohmann::json::object());

// Reads OUT.json and its tensors, rebuilds the operator and checks that it maps the recorded
// image size onto y's shape. Throws p2l::Error naming the file and the defect.
Measurement load_measurement(const std::string& json_path);

}  // namespace p2l::operators
