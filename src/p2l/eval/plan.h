// An evaluation's plan: images × tasks × methods, the settings every job shares, and the one
// deterministic job list that resuming, sharding and merging all index into.
//
// Jobs are ordered task (as given), method (as given), image (as listed), so that the jobs of a
// shard (index ≡ i mod n) spread over the images of every task × method rather than falling on
// one method. A job's seeds depend only on (base seed, image file name, task): every method sees
// the same measurement, and a job gives the same result in any shard and any order.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace p2l::eval {

// A column of the evaluation: a method with hyperparameter overrides under a label. Plain
// methods have their own name as the label; variants (ablations) are named by the user.
struct MethodSpec {
  std::string label;
  std::string method;
  std::map<std::string, double> overrides;  // hyperparameter name → value
  // The initial text condition: "" the null prompt, kCaptionPrompt the image's caption
  // (image_caption), anything else the text itself.
  std::string prompt;
  nlohmann::json to_json() const;
  static MethodSpec from_json(const nlohmann::json& j);
  bool operator==(const MethodSpec& other) const;
};

// A prompt that stands for each image's own caption.
inline constexpr char kCaptionPrompt[] = "@caption";

// "NAME=METHOD:key=value,key=value" (the overrides optional), e.g.
// "p2l-neither=p2l:projection=0,prompt-tuning=0"; the key "prompt" sets the initial text
// condition ("prompt=emoji", "prompt=@caption"; a prompt given here holds no comma). Throws
// p2l::Error quoting the spec for a missing part, an unknown method or a hyperparameter the
// method does not have.
MethodSpec parse_variant(const std::string& spec);

// Throws p2l::Error unless `label` can name a folder and a column (letters, digits, . _ -) and
// is not one of the montage's fixed columns (clean, measurement, naive).
void check_label(const std::string& label);

struct EvalImage {
  std::string name;  // file name (the job key; unique within a plan)
  std::string path;  // as found (absolute)
};

// An image's caption: its entry in captions.json beside it (file name → caption, as
// `p2l train test-images` and the model's test_images write it). Throws p2l::Error naming the
// file when there is none or it has no entry for the image.
std::string image_caption(const EvalImage& image);

// The prompt a method starts from on an image (MethodSpec::prompt resolved).
std::string prompt_for(const MethodSpec& method, const EvalImage& image);

// A job points into its plan, which must outlive it.
struct Job {
  int64_t index = 0;
  const EvalImage* image = nullptr;
  const std::string* task = nullptr;
  const MethodSpec* method = nullptr;
  int64_t method_index = 0;  // position of the method in the plan (0 writes the measurement)
  std::string key() const;   // "IMAGE|TASK|LABEL"
};

struct Plan {
  std::string model;  // folder as given (absolute)
  std::vector<EvalImage> images;
  std::vector<std::string> tasks;
  std::vector<MethodSpec> methods;
  int64_t steps = 0;  // DDIM steps for every method; 0 = each method's default
  double noise = 0.05;
  uint64_t seed = 0;
  std::string precision = "fp32";      // of the text encoder and UNet (model/precision.h)
  std::string vae_precision = "fp32";  // of the autoencoder
  std::vector<std::string> metrics;  // image metric names (image_metrics.h)

  // Throws p2l::Error for an unknown task or method, a hyperparameter a method does not have,
  // duplicate labels or image names, an image without the caption a method's prompt needs, or
  // nothing to do.
  void validate() const;
  std::vector<Job> jobs() const;
  // The overrides of a method in this plan: --steps unless the method sets its own.
  std::map<std::string, double> overrides_for(const MethodSpec& method) const;

  nlohmann::json to_json() const;
  static Plan from_json(const nlohmann::json& j, const std::string& what);
  // Why results of `other` may not be mixed with this plan's ("" when they may): a different
  // model folder name, noise, seed, steps, precision, metrics or job list. Image paths may differ (shards
  // on machines that mount the data elsewhere).
  std::string difference(const Plan& other) const;
};

// A stable 64-bit hash (FNV-1a, then the SplitMix64 finaliser to spread FNV's weak low bits):
// the same on every platform and build, unlike std::hash.
uint64_t stable_hash(std::string_view text);

struct JobSeeds {
  uint64_t measurement = 0;  // operator's random parts and the measurement noise
  uint64_t solver = 0;       // the solver's initial noise and stochastic steps
};
JobSeeds job_seeds(uint64_t base_seed, const std::string& image_name, const std::string& task);

// Shard i of n: the jobs whose index ≡ i (mod n).
struct Shard {
  int64_t index = 0, count = 1;
  bool whole() const { return count == 1; }
  bool takes(int64_t job_index) const { return job_index % count == index; }
  std::string name() const;  // "shard-0-of-2"
};

// "i/n" with 0 ≤ i < n; throws p2l::Error quoting the spec.
Shard parse_shard(const std::string& spec);

// The shard a cluster launcher gives this process: SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT
// (less SLURM_ARRAY_TASK_MIN, as arrays may start at 1), OMPI_COMM_WORLD_RANK / _SIZE (mpirun),
// or PMI_RANK / PMI_SIZE (MPICH, Intel MPI, srun), the first pair set; none when none is.
// Throws p2l::Error naming the variable that is malformed or set without its partner.
std::optional<Shard> shard_from_environment();

}  // namespace p2l::eval
