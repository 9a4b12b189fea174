#include "p2l/operators/factory.h"

#include "p2l/error.h"
#include "p2l/operators/box_inpainting.h"
#include "p2l/operators/denoising.h"
#include "p2l/operators/gaussian_blur.h"
#include "p2l/operators/inpainting.h"
#include "p2l/operators/motion_blur.h"
#include "p2l/operators/random_inpainting.h"
#include "p2l/operators/super_resolution.h"

namespace p2l::operators {

std::unique_ptr<Operator> operator_from_json(const nlohmann::json& j, const NamedTensors& tensors) {
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string())
    throw Error("operator JSON: expected an object with a string \"kind\"");
  const auto kind = j["kind"].get<std::string>();
  try {
    if (kind == "super_resolution") return SuperResolution::from_json(j);
    if (kind == "gaussian_blur") return GaussianBlur::from_json(j, tensors);
    if (kind == "motion_blur") return MotionBlur::from_json(j, tensors);
    if (kind == "box_inpainting") return BoxInpainting::from_json(j, tensors);
    if (kind == "random_inpainting") return RandomInpainting::from_json(j, tensors);
    if (kind == "inpainting") return Inpainting::from_json(j, tensors);
    if (kind == "denoising") return std::make_unique<Denoising>();
  } catch (const nlohmann::json::exception& e) {
    // Missing or mistyped fields; nlohmann's text names the field.
    throw Error("operator JSON (" + kind + "): " + e.what());
  }
  throw Error("operator JSON: unknown kind '" + kind +
              "' (known: super_resolution, gaussian_blur, motion_blur, box_inpainting, "
              "random_inpainting, inpainting, denoising)");
}

}  // namespace p2l::operators
