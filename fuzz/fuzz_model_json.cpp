// config.json of each component, scheduler_config.json and a folder's model_index.json: the same
// bytes go to the JSON reader, to the four config parsers, and as model_index.json to layout
// detection.
#include <filesystem>

#include "fuzz_input.h"
#include "p2l/diffusion/schedule.h"
#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/model/checkpoint.h"
#include "p2l/model/clip_text.h"
#include "p2l/model/unet.h"
#include "p2l/model/vae.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto text = p2l::fuzz::as_text(data, size);
  static const std::string model = [] {
    const auto dir = p2l::fuzz::scratch_dir() + "/model";
    std::filesystem::create_directories(dir);
    return dir;
  }();
  p2l::fuzz::write_scratch("model/model_index.json", text);
  try {
    p2l::model::detect_layout(model);
  } catch (const p2l::Error&) {
  }
  nlohmann::json config;
  try {
    config = p2l::io::parse_json(text, "config.json");
  } catch (const p2l::Error&) {
    return 0;
  }
  try {
    p2l::model::UNetConfig::from_json(config);
  } catch (const p2l::Error&) {
  }
  try {
    p2l::model::VaeConfig::from_json(config);
  } catch (const p2l::Error&) {
  }
  try {
    p2l::model::ClipTextConfig::from_json(config);
  } catch (const p2l::Error&) {
  }
  try {
    p2l::diffusion::ScheduleConfig::from_json(config);
  } catch (const p2l::Error&) {
  }
  return 0;
}
