#include "p2l/eval/plan.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/operators/presets.h"
#include "p2l/solvers/solver.h"

namespace p2l::eval {

namespace fs = std::filesystem;

namespace {

// Parameter names do not depend on the model's scale; the small table stands for both.
solvers::Hyperparameters hyperparameters_of(const std::string& method) {
  return solvers::default_hyperparameters(method, solvers::Scale::kSmall);
}

// Throws unless every override names a hyperparameter of the method with a valid value.
void check_overrides(const std::string& method, const std::map<std::string, double>& overrides,
                     const std::string& what) {
  auto parameters = hyperparameters_of(method);
  for (const auto& [name, value] : overrides) {
    parameters.require(name, what + ": " + name);
    parameters.set(name, value, what);
  }
}

nlohmann::json overrides_json(const std::map<std::string, double>& overrides) {
  auto j = nlohmann::json::object();
  for (const auto& [name, value] : overrides) {
    if (std::isinf(value))
      j[name] = value > 0 ? "inf" : "-inf";  // JSON has no ∞
    else
      j[name] = value;
  }
  return j;
}

bool parse_count(const std::string& text, int64_t& value) {
  if (text.empty() || text.size() > 18) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  value = std::stoll(text);
  return true;
}

}  // namespace

nlohmann::json MethodSpec::to_json() const {
  nlohmann::json j = {
      {"label", label}, {"method", method}, {"overrides", overrides_json(overrides)}};
  if (!prompt.empty()) j["prompt"] = prompt;  // plans without prompts read as before
  return j;
}

MethodSpec MethodSpec::from_json(const nlohmann::json& j) {
  MethodSpec spec{j.at("label").get<std::string>(), j.at("method").get<std::string>(), {},
                  j.value("prompt", "")};
  for (const auto& [name, value] : j.at("overrides").items())
    spec.overrides[name] = value.is_string()
                               ? solvers::parse_hyperparameter_value(value.get<std::string>(), name)
                               : value.get<double>();
  return spec;
}

bool MethodSpec::operator==(const MethodSpec& other) const {
  return label == other.label && method == other.method && overrides == other.overrides &&
         prompt == other.prompt;
}

void check_label(const std::string& label) {
  if (label.empty()) throw Error("a method label may not be empty");
  for (char c : label)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      throw Error("method label '" + label + "': use letters, digits, '-', '_' and '.' only");
  if (label == "clean" || label == "measurement" || label == "naive" || label[0] == '.')
    throw Error("method label '" + label + "' is reserved (clean, measurement, naive)");
}

MethodSpec parse_variant(const std::string& spec) {
  const std::string what = "--variant '" + spec + "'";
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error(what + ": expected NAME=METHOD:key=value,key=value");
  MethodSpec variant;
  variant.label = spec.substr(0, eq);
  check_label(variant.label);
  const std::string rest = spec.substr(eq + 1);
  const auto colon = rest.find(':');
  variant.method = rest.substr(0, colon);
  if (variant.method.empty()) throw Error(what + ": no method after '='");
  hyperparameters_of(variant.method);  // names an unknown method
  if (colon != std::string::npos) {
    std::stringstream pairs(rest.substr(colon + 1));
    std::string pair;
    while (std::getline(pairs, pair, ',')) {
      const auto equals = pair.find('=');
      if (equals == std::string::npos || equals == 0 || equals + 1 == pair.size())
        throw Error(what + ": '" + pair + "' is not key=value");
      const auto name = pair.substr(0, equals);
      if (name == "prompt") {
        if (!variant.prompt.empty()) throw Error(what + ": prompt is given twice");
        variant.prompt = pair.substr(equals + 1);
        continue;
      }
      if (variant.overrides.count(name)) throw Error(what + ": " + name + " is given twice");
      variant.overrides[name] =
          solvers::parse_hyperparameter_value(pair.substr(equals + 1), what + " " + name);
    }
    if (variant.overrides.empty() && variant.prompt.empty())
      throw Error(what + ": nothing after ':'");
  }
  check_overrides(variant.method, variant.overrides, what);
  return variant;
}

std::string image_caption(const EvalImage& image) {
  const auto file = fs::path(image.path).parent_path() / "captions.json";
  if (!fs::exists(file))
    throw Error(image.path + ": no captions.json beside it for a prompt=" + kCaptionPrompt +
                " variant");
  const auto captions = io::read_json(file.string());
  if (!captions.is_object() || !captions.contains(image.name) ||
      !captions[image.name].is_string())
    throw Error(file.string() + ": no caption for " + image.name);
  return captions[image.name].get<std::string>();
}

std::string prompt_for(const MethodSpec& method, const EvalImage& image) {
  return method.prompt == kCaptionPrompt ? image_caption(image) : method.prompt;
}

std::string Job::key() const { return image->name + "|" + *task + "|" + method->label; }

void Plan::validate() const {
  if (images.empty()) throw Error("eval: no images");
  if (tasks.empty()) throw Error("eval: no tasks (--tasks)");
  if (methods.empty()) throw Error("eval: no methods (--methods)");
  if (metrics.empty()) throw Error("eval: no image metrics");
  std::set<std::string> seen;
  for (const auto& task : tasks) {
    if (operators::parse_task(task) == operators::Task::kInpainting)
      throw Error("eval: task 'inpaint' needs a user mask; evaluate box-inpaint or random-inpaint");
    if (!seen.insert(task).second) throw Error("eval: task '" + task + "' is listed twice");
  }
  seen.clear();
  for (const auto& method : methods) {
    check_label(method.label);
    if (!seen.insert(method.label).second)
      throw Error("eval: method label '" + method.label + "' is given twice");
    check_overrides(method.method, overrides_for(method), "eval: " + method.label);
  }
  for (const auto& method : methods)
    for (const auto& image : images) prompt_for(method, image);  // a caption it needs is there
  std::map<std::string, std::string> names;
  for (const auto& image : images) {
    auto [it, inserted] = names.emplace(image.name, image.path);
    if (!inserted)
      throw Error("eval: two images are named " + image.name + " (" + it->second + ", " +
                  image.path + "): results are keyed by file name");
  }
}

std::vector<Job> Plan::jobs() const {
  std::vector<Job> list;
  for (const auto& task : tasks)
    for (size_t m = 0; m < methods.size(); ++m)
      for (const auto& image : images)
        list.push_back({static_cast<int64_t>(list.size()), &image, &task, &methods[m],
                        static_cast<int64_t>(m)});
  return list;
}

std::map<std::string, double> Plan::overrides_for(const MethodSpec& method) const {
  auto overrides = method.overrides;
  if (steps > 0 && !overrides.count("steps")) overrides["steps"] = static_cast<double>(steps);
  return overrides;
}

nlohmann::json Plan::to_json() const {
  auto image_list = nlohmann::json::array();
  for (const auto& image : images)
    image_list.push_back({{"name", image.name}, {"path", image.path}});
  auto method_list = nlohmann::json::array();
  for (const auto& method : methods) method_list.push_back(method.to_json());
  nlohmann::json j = {{"format", "p2l-eval-plan"},
          {"version", 1},
          {"model", model},
          {"noise", noise},
          {"seed", seed},
          {"steps", steps},
          {"metrics", metrics},
          {"tasks", tasks},
          {"methods", method_list},
          {"images", image_list},
          {"jobs", images.size() * tasks.size() * methods.size()}};
  // Only when not float32, so that plans of float32 runs read as before.
  if (precision != "fp32" || vae_precision != "fp32") {
    j["precision"] = precision;
    j["vae_precision"] = vae_precision;
  }
  return j;
}

Plan Plan::from_json(const nlohmann::json& j, const std::string& what) {
  try {
    if (j.at("format") != "p2l-eval-plan") throw Error(what + ": not a p2l evaluation plan");
    Plan plan;
    plan.model = j.at("model").get<std::string>();
    plan.noise = j.at("noise").get<double>();
    plan.seed = j.at("seed").get<uint64_t>();
    plan.steps = j.at("steps").get<int64_t>();
    plan.precision = j.value("precision", "fp32");  // plans from before --precision
    // Plans from before --vae-precision ran the autoencoder in the networks' precision.
    plan.vae_precision = j.value("vae_precision", plan.precision);
    plan.metrics = j.at("metrics").get<std::vector<std::string>>();
    plan.tasks = j.at("tasks").get<std::vector<std::string>>();
    for (const auto& m : j.at("methods")) plan.methods.push_back(MethodSpec::from_json(m));
    for (const auto& image : j.at("images"))
      plan.images.push_back(
          {image.at("name").get<std::string>(), image.at("path").get<std::string>()});
    return plan;
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": not a valid evaluation plan (" + e.what() + ")");
  }
}

std::string Plan::difference(const Plan& other) const {
  if (fs::path(model).filename() != fs::path(other.model).filename())
    return "model " + model + " vs " + other.model;
  if (noise != other.noise) return "--noise";
  if (seed != other.seed) return "--seed";
  if (steps != other.steps) return "--steps";
  if (precision != other.precision) return "--precision";
  if (vae_precision != other.vae_precision) return "--vae-precision";
  if (metrics != other.metrics) return "metrics";
  if (tasks != other.tasks) return "--tasks";
  if (!(methods == other.methods)) return "methods or variants";
  if (images.size() != other.images.size()) return "images";
  for (size_t i = 0; i < images.size(); ++i)
    if (images[i].name != other.images[i].name) return "images";
  return "";
}

uint64_t stable_hash(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;  // FNV-1a 64 prime
  }
  h ^= h >> 30;  // SplitMix64 finaliser
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

JobSeeds job_seeds(uint64_t base_seed, const std::string& image_name, const std::string& task) {
  const std::string job = std::to_string(base_seed) + "|" + image_name + "|" + task;
  // Seeds stay below 2^53 so that they survive a round trip through any JSON reader.
  constexpr uint64_t kMask = (uint64_t{1} << 53) - 1;
  return {stable_hash("measurement|" + job) & kMask, stable_hash("solver|" + job) & kMask};
}

std::string Shard::name() const {
  return "shard-" + std::to_string(index) + "-of-" + std::to_string(count);
}

Shard parse_shard(const std::string& spec) {
  const auto slash = spec.find('/');
  Shard shard;
  if (slash == std::string::npos || !parse_count(spec.substr(0, slash), shard.index) ||
      !parse_count(spec.substr(slash + 1), shard.count))
    throw Error("--shard '" + spec + "': expected I/N, e.g. 0/4");
  if (shard.count == 0) throw Error("--shard '" + spec + "': N must be at least 1");
  if (shard.index >= shard.count)
    throw Error("--shard '" + spec + "': I must be below N (shards are 0 … N-1)");
  return shard;
}

std::optional<Shard> shard_from_environment() {
  struct Pair {
    const char *index, *count;
  };
  for (const auto& pair :
       {Pair{"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"},
        Pair{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, Pair{"PMI_RANK", "PMI_SIZE"}}) {
    const char* index_text = std::getenv(pair.index);
    const char* count_text = std::getenv(pair.count);
    if (!index_text && !count_text) continue;
    if (!index_text || !count_text)
      throw Error(std::string(index_text ? pair.index : pair.count) + " is set but " +
                  (index_text ? pair.count : pair.index) + " is not; pass --shard I/N");
    Shard shard;
    if (!parse_count(index_text, shard.index))
      throw Error(std::string(pair.index) + "='" + index_text + "' is not a shard index");
    if (!parse_count(count_text, shard.count) || shard.count == 0)
      throw Error(std::string(pair.count) + "='" + count_text + "' is not a shard count");
    if (std::string(pair.index) == "SLURM_ARRAY_TASK_ID") {
      int64_t first = 0;
      const char* min_text = std::getenv("SLURM_ARRAY_TASK_MIN");
      if (min_text && parse_count(min_text, first) && first <= shard.index) shard.index -= first;
    }
    if (shard.index >= shard.count)
      throw Error(std::string(pair.index) + "=" + index_text + " is not below " + pair.count + "=" +
                  count_text);
    return shard;
  }
  return std::nullopt;
}

}  // namespace p2l::eval
