// The method table and the way in: defaults by scale (and task), solvers by name. The SD-512
// defaults follow the public code where SPEC §4 gives them; the small model's come from the
// sweeps in docs/solvers.md. Each method's values are in its parameter struct.
#include <map>

#include "p2l/solvers/methods.h"

namespace p2l::solvers {
namespace {

// Per-task values of the small model's defaults: method → task → name → value. The sweep found
// the same best step size for every task, so there are none yet; a task that needs its own goes
// here.
const std::map<std::string, std::map<std::string, std::map<std::string, double>>>&
small_task_overrides() {
  static const std::map<std::string, std::map<std::string, std::map<std::string, double>>> o = {};
  return o;
}

const Method& find_method(const std::string& name) {
  for (const auto& m : methods())
    if (m.name == name) return m;
  std::string names;
  for (const auto& m : methods()) names += (names.empty() ? "" : ", ") + m.name;
  throw Error("unknown method '" + name + "' (methods: " + names + ")");
}

}  // namespace

const std::vector<Method>& methods() {
  static const std::vector<Method> table = {p2l_method(), ldps_method(), gml_dps_method(),
                                            psld_method(), resample_method()};
  return table;
}

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> list;
    for (const auto& m : methods()) list.push_back(m.name);
    return list;
  }();
  return names;
}

Scale scale_for(const model::ModelConfig& config) {
  const int64_t size = config.unet.sample_size * config.vae.downsampling_factor();
  return size >= 256 ? Scale::kSd512 : Scale::kSmall;
}

Scale scale_for(const model::StableDiffusion& model) { return scale_for(model.config); }

Hyperparameters default_hyperparameters(const std::string& method, Scale scale,
                                        const std::string& task) {
  auto h = find_method(method).defaults(scale);
  if (scale == Scale::kSmall) {
    const auto& overrides = small_task_overrides();
    auto by_method = overrides.find(method);
    if (by_method != overrides.end()) {
      auto by_task = by_method->second.find(task);
      if (by_task != by_method->second.end())
        for (const auto& [name, value] : by_task->second) h.set(name, value, method);
    }
  }
  return h;
}

std::unique_ptr<Solver> make_solver(const std::string& method, Scale scale,
                                    const std::string& task) {
  return find_method(method).make(default_hyperparameters(method, scale, task));
}

}  // namespace p2l::solvers
