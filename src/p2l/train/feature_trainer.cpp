#include "p2l/train/feature_trainer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>

#include "p2l/error.h"
#include "p2l/log.h"
#include "p2l/train/training_state.h"

namespace p2l::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

// Images [B, 3, H, W] in [-1, 1], each moved by its own (dy, dx) in [-s, s]² with white (1)
// filling the uncovered border.
torch::Tensor random_shift(const torch::Tensor& x, int64_t s, at::Generator& gen) {
  if (s <= 0) return x;
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  auto padded = F::pad(x, F::PadFuncOptions({s, s, s, s}).value(1.0));
  auto offsets = torch::randint(2 * s + 1, {b, 2}, gen, torch::TensorOptions().dtype(torch::kLong));
  auto o = offsets.accessor<int64_t, 2>();
  std::vector<torch::Tensor> out;
  out.reserve(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i)
    out.push_back(padded[i].slice(1, o[i][0], o[i][0] + h).slice(2, o[i][1], o[i][1] + w));
  return torch::stack(out);
}

}  // namespace

std::string emoji_subcategory(const std::string& caption) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const auto comma = caption.find(", ", start);
    fields.push_back(caption.substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 2;
  }
  if (fields.size() < 3 || fields[fields.size() - 2].empty())
    throw Error("emoji caption '" + caption +
                "': expected '<name>, [<skin tone>,] <sub-category>, <style> style'");
  return fields[fields.size() - 2];
}

std::vector<std::string> subcategory_classes(const EmojiSet& data) {
  std::set<std::string> names;
  for (const auto& item : data.items) names.insert(emoji_subcategory(item.caption));
  return {names.begin(), names.end()};
}

torch::Tensor subcategory_labels(const std::vector<std::string>& captions,
                                 const std::vector<std::string>& classes) {
  std::vector<int64_t> labels;
  labels.reserve(captions.size());
  for (const auto& caption : captions) {
    const auto name = emoji_subcategory(caption);
    const auto it = std::lower_bound(classes.begin(), classes.end(), name);
    labels.push_back(it != classes.end() && *it == name ? static_cast<int64_t>(it - classes.begin())
                                                        : -1);
  }
  return torch::tensor(labels, torch::kLong);
}

torch::Tensor subcategory_labels(const EmojiSet& data, const std::vector<std::string>& classes) {
  return subcategory_labels(data.captions(), classes);
}

metrics::EmojiFeatureNet train_emoji_features(const EmojiSet& data, const torch::Tensor& labels,
                                              int64_t classes, const FeatureOptions& o,
                                              const std::string& run_dir,
                                              const StepReport& report) {
  if (labels.size(0) != data.images.size(0))
    throw Error("FD-emoji training: " + std::to_string(labels.size(0)) + " labels for " +
                std::to_string(data.images.size(0)) + " images");
  const auto known = torch::nonzero(labels >= 0).flatten();
  if (known.numel() == 0) throw Error("FD-emoji training: no labelled images");
  fs::create_directories(run_dir);
  torch::manual_seed(o.seed);
  metrics::EmojiFeatureNet net(classes), ema(classes);
  copy_parameters(*ema, *net);
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(o.lr));
  const std::string state = (fs::path(run_dir) / "features.state").string();
  const std::vector<std::pair<std::string, torch::nn::Module*>> modules = {
      {"model", net.ptr().get()}, {"ema", ema.ptr().get()}};
  int64_t step = 0;
  if (o.resume && fs::exists(state)) {
    step = load_training_state(state, modules, optimizer);
    log::info("features: resuming at step " + std::to_string(step));
  }
  net->train();
  const int64_t n = known.size(0);
  for (; step < o.steps; ++step) {
    set_learning_rate(optimizer, cosine_lr(o.lr, step, o.steps, o.warmup, 0.02));
    auto gen = step_generator(o.seed, step);
    auto index = known.index_select(
        0, torch::randint(n, {o.batch}, gen, torch::TensorOptions().dtype(torch::kLong)));
    auto x = random_shift(data.batch(index), o.max_shift, gen);
    if (o.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    auto loss = F::cross_entropy(net->forward(x), labels.index_select(0, index));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    ema_update(*ema, *net, step < o.warmup ? 0.0 : o.ema_decay);
    const double value = loss.item<double>();
    if (!std::isfinite(value))
      throw Error("features training diverged at step " + std::to_string(step) +
                  "; lower the learning rate and resume");
    if ((step + 1) % o.checkpoint_every == 0 || step + 1 == o.steps)
      save_training_state(state, step + 1, modules, optimizer);
    if (report) report(step + 1, o.steps, value);
  }
  ema->eval();
  for (auto& p : ema->parameters()) p.requires_grad_(false);
  return ema;
}

namespace {

// Accuracy over n images, fetched a batch at a time by `images_of(index)`.
Accuracy accuracy_over(metrics::EmojiFeatureNet& net, int64_t n, const torch::Tensor& labels,
                       int64_t batch, const std::function<torch::Tensor(const torch::Tensor&)>& images_of) {
  if (labels.size(0) != n)
    throw Error("classification accuracy: " + std::to_string(labels.size(0)) + " labels for " +
                std::to_string(n) + " images");
  torch::NoGradGuard no_grad;
  net->eval();
  Accuracy acc;
  int64_t top1 = 0, top5 = 0;
  const int64_t k = std::min<int64_t>(5, net->classes());
  for (int64_t start = 0; start < n; start += batch) {
    auto index = torch::arange(start, std::min(n, start + batch), torch::kLong);
    auto truth = labels.index_select(0, index);
    auto ranked = std::get<1>(net->forward(images_of(index)).topk(k, 1));
    auto known = truth >= 0;
    acc.counted += known.sum().item<int64_t>();
    top1 += (known & ranked.select(1, 0).eq(truth)).sum().item<int64_t>();
    top5 += (known & ranked.eq(truth.unsqueeze(1)).any(1)).sum().item<int64_t>();
  }
  acc.excluded = n - acc.counted;
  if (acc.counted > 0) {
    acc.top1 = static_cast<double>(top1) / static_cast<double>(acc.counted);
    acc.top5 = static_cast<double>(top5) / static_cast<double>(acc.counted);
  }
  return acc;
}

}  // namespace

Accuracy classification_accuracy(metrics::EmojiFeatureNet& net, const EmojiSet& data,
                                 const torch::Tensor& labels, int64_t batch) {
  return accuracy_over(net, data.images.size(0), labels, batch,
                       [&](const torch::Tensor& index) { return data.batch(index); });
}

Accuracy classification_accuracy(metrics::EmojiFeatureNet& net, const torch::Tensor& images,
                                 const torch::Tensor& labels, int64_t batch) {
  return accuracy_over(net, images.size(0), labels, batch,
                       [&](const torch::Tensor& index) { return images.index_select(0, index); });
}

}  // namespace p2l::train
