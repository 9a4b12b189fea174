#include "p2l/operators/measurement.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/io/image.h"
#include "p2l/io/safetensors.h"
#include "p2l/operators/factory.h"

namespace p2l::operators {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFormat = "p2l-measurement";
constexpr int kVersion = 1;
constexpr const char* kMeasurementTensor = "y";

}  // namespace

Measurement measure(const torch::Tensor& x, std::shared_ptr<const Operator> op,
                    const NoiseModel& noise, uint64_t seed) {
  check_image_tensor(x, "measure");
  Measurement m;
  m.y = add_noise(op->forward(x), noise, seed);
  m.op = std::move(op);
  m.noise = noise;
  m.seed = seed;
  m.height = x.size(2);
  m.width = x.size(3);
  return m;
}

MeasurementFiles measurement_files(const std::string& out) {
  fs::path base(out);
  const auto ext = base.extension().string();
  if (ext == ".json" || ext == ".png" || ext == ".safetensors") base.replace_extension();
  if (base.filename().empty()) throw Error("-o '" + out + "': needs a file name, not a folder");
  const auto with = [&](const char* e) { return base.string() + e; };
  return {with(".json"), with(".safetensors"), with(".png")};
}

MeasurementFiles save_measurement(const Measurement& m, const std::string& out,
                                  const nlohmann::json& extra) {
  const auto files = measurement_files(out);
  const auto folder = fs::path(files.json).parent_path();
  if (!folder.empty()) {
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw Error(folder.string() + ": cannot create folder (" + ec.message() + ")");
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {kMeasurementTensor, m.y.detach().to(torch::kCPU).contiguous()}};
  for (const auto& [name, t] : m.op->tensors()) tensors.emplace_back(name, t);
  io::save_safetensors(files.tensors, tensors, {{"content", kFormat}});
  io::save_png(files.preview, m.y);

  nlohmann::json j = extra.is_object() ? extra : nlohmann::json::object();
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["operator"] = m.op->to_json();
  j["noise"] = m.noise.to_json();
  j["seed"] = m.seed;
  j["source_image"] = m.source_image;
  j["image_size"] = {{"height", m.height}, {"width", m.width}};
  j["measurement_shape"] = m.y.sizes().vec();
  j["measurement_tensor"] = kMeasurementTensor;
  j["files"] = {{"tensors", fs::path(files.tensors).filename().string()},
                {"preview", fs::path(files.preview).filename().string()}};
  io::write_json(files.json, j);
  return files;
}

Measurement load_measurement(const std::string& json_path) {
  if (!fs::is_regular_file(json_path)) throw Error(json_path + ": cannot read measurement file");
  const nlohmann::json j = io::read_json(json_path);
  if (!j.is_object() || !j.contains("format") || j["format"] != kFormat)
    throw Error(json_path + ": not a p2l measurement (format is not \"" + kFormat + "\")");
  Measurement m;
  NamedTensors tensors;
  try {
    if (io::json_to_int(j.at("version"), json_path, "version") > kVersion)
      throw Error(json_path + ": written by a newer p2l (version " + j["version"].dump() + ")");
    auto tensor_path = fs::path(j.at("files").at("tensors").get<std::string>());
    if (tensor_path.is_relative()) tensor_path = fs::path(json_path).parent_path() / tensor_path;
    io::SafeTensorsFile file(tensor_path.string());
    const auto y_name = j.at("measurement_tensor").get<std::string>();
    if (!file.contains(y_name))
      throw Error(tensor_path.string() + ": has no measurement tensor '" + y_name + "'");
    for (const auto& info : file.tensors())
      if (info.name != y_name) tensors[info.name] = file.load(info.name);
    m.y = file.load(y_name);
    m.op = operator_from_json(j.at("operator"), tensors);
    m.noise = NoiseModel::from_json(j.at("noise"));
    m.seed = io::json_to_uint(j.at("seed"), json_path, "seed");
    m.source_image = j.value("source_image", "");
    m.height = io::json_to_int(j.at("image_size").at("height"), json_path, "image_size.height");
    m.width = io::json_to_int(j.at("image_size").at("width"), json_path, "image_size.width");
  } catch (const nlohmann::json::exception& e) {
    throw Error(json_path + ": " + e.what());
  }
  if (m.y.dim() != 4)
    throw Error(json_path + ": the measurement must be [B, C, h, w], got " + c10::str(m.y.sizes()));
  if (!torch::isFloatingType(m.y.scalar_type()))
    throw Error(json_path + ": the measurement tensor is " + std::string(c10::toString(m.y.scalar_type())) +
                ", not floating point");
  // A NaN or Inf in y or in the operator would surface only after the whole solve, as a
  // divergence; it is a defect of the file.
  if (!torch::isfinite(m.y).all().item<bool>())
    throw Error(json_path + ": the measurement holds NaN or Inf values");
  for (const auto& [name, tensor] : tensors)
    if (torch::isFloatingType(tensor.scalar_type()) && !torch::isfinite(tensor).all().item<bool>())
      throw Error(json_path + ": the operator's tensor '" + name + "' holds NaN or Inf values");
  if (m.height <= 0 || m.width <= 0 || m.height > 16384 || m.width > 16384)  // kMaxImageSide
    throw Error(json_path + ": image_size " + std::to_string(m.width) + "x" +
                std::to_string(m.height) + " is not between 1 and 16384 a side");
  const auto expected = m.op->output_shape({m.y.size(0), m.y.size(1), m.height, m.width});
  if (m.y.sizes().vec() != expected)
    throw Error(json_path + ": the measurement has shape " + c10::str(m.y.sizes()) +
                " but the operator maps the " + std::to_string(m.height) + "×" +
                std::to_string(m.width) + " image to " + c10::str(expected));
  m.info = std::move(j);
  return m;
}

}  // namespace p2l::operators
