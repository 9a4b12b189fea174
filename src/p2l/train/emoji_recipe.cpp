#include "p2l/train/emoji_recipe.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include "p2l/error.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/log.h"
#include "p2l/metrics/emoji_features.h"
#include "p2l/model/checkpoint.h"
#include "p2l/pipelines/text_to_image.h"
#include "p2l/progress.h"
#include "p2l/train/bpe_trainer.h"
#include "p2l/train/emoji_dataset.h"

namespace p2l::train {

namespace fs = std::filesystem;

namespace {

// One result line for the recipe's caller, built with << and sent when complete.
class ResultLine {
 public:
  explicit ResultLine(const EmojiRecipe& recipe) : recipe_(recipe) {}
  ~ResultLine() {
    if (recipe_.on_result) recipe_.on_result(text_.str());
  }
  template <class T>
  ResultLine& operator<<(const T& value) {
    text_ << value;
    return *this;
  }

 private:
  const EmojiRecipe& recipe_;
  std::ostringstream text_;
};

// Held-out images shipped beside the model (the issue allows at most 16).
constexpr size_t kShippedTestImages = 12;
// Training images that stand for the training split in the train/test comparisons: the test
// split's order of magnitude, spread over every category.
constexpr int64_t kTrainSubset = 1000;
// Images per split for the loss gap tracked during UNet training (a fifth of the report's cost).
constexpr int64_t kMonitorImages = 200;

nlohmann::json read_json_file(const fs::path& path) {
  if (!fs::exists(path))
    throw Error(path.string() + ": missing (run the earlier training stages first)");
  return io::read_json(path.string());
}

void write_json_file(const fs::path& path, const nlohmann::json& j) {
  io::write_json(path.string(), j);
}

StepReport progress_report(Progress& progress) {
  return [&progress](int64_t step, int64_t, double loss) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "loss %.5f", loss);
    progress.update(step, buf);
  };
}

std::set<std::string> test_bases(const EmojiRecipe& a) { return read_test_bases(a.split); }

void stage_split(const EmojiRecipe& a) {
  const auto items = list_emoji(a.data, a.styles);
  const auto bases = choose_test_bases(items, 0.1);
  write_test_bases(bases, a.split);
  size_t test_images = 0;
  for (const auto& item : items) test_images += bases.count(item.base);
  ResultLine(a) << "split: " << bases.size() << " test base emoji, " << test_images << " of "
                << items.size() << " images held out -> " << a.split;
}

// Reconstruction PSNR on a fixed subset of the training split and on the test split.
std::pair<double, double> psnr_train_test(model::AutoencoderKL& vae, const EmojiSet& train_set,
                                          const EmojiSet& test_set) {
  return {reconstruction_psnr(vae, train_set.spread_subset(kTrainSubset)),
          reconstruction_psnr(vae, test_set)};
}

void stage_vae(const EmojiRecipe& a) {
  const auto items = list_emoji(a.data, a.styles);
  const auto tests = test_bases(a);
  const auto train_set = load_emoji_split(items, tests, false);
  const auto test_set = load_emoji_split(items, tests, true);
  log::info("vae: " + std::to_string(train_set.images.size(0)) + " training images");
  auto config = emoji_vae_config();
  Progress progress("vae", a.vae.steps);
  auto vae = train_vae(train_set, config, a.vae, a.run, progress_report(progress));
  progress.finish();
  // SD's recipe: scale latents to unit variance (SD v1's 0.18215 was found the same way).
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> means;
  const int64_t n = train_set.images.size(0);
  for (int64_t s = 0; s < n; s += 64)
    means.push_back(vae->encode(train_set.batch(torch::arange(s, std::min(n, s + 64)))).mean);
  const double scaling = 1.0 / torch::cat(means).std().item<double>();
  // A fixed subset of the training images is enough to compare against the test split.
  const auto [psnr_train, psnr_test] = psnr_train_test(vae, train_set, test_set);
  model::save_module_weights(*vae, (fs::path(a.run) / "vae.safetensors").string());
  write_json_file(fs::path(a.run) / "vae.json",
                  {{"scaling_factor", scaling},
                   {"psnr_train", psnr_train},
                   {"psnr_test", psnr_test},
                   {"steps", a.vae.steps},
                   {"batch", a.vae.batch},
                   {"lr", a.vae.lr},
                   {"crop", a.vae.crop},
                   {"whole_image_fraction", a.vae.whole_image_fraction},
                   {"seconds", progress.elapsed_seconds()}});
  ResultLine(a) << "vae: PSNR train " << psnr_train << " dB, test " << psnr_test
                << " dB, scaling factor " << scaling;
}

void stage_decoder(const EmojiRecipe& a) {
  const auto items = list_emoji(a.data, a.styles);
  const auto tests = test_bases(a);
  const auto train_set = load_emoji_split(items, tests, false);
  const auto test_set = load_emoji_split(items, tests, true);
  model::AutoencoderKL vae(emoji_vae_config());
  model::load_module_weights(*vae, (fs::path(a.run) / "vae.safetensors").string());
  Progress progress("decoder", a.decoder.steps);
  auto tuned = finetune_decoder(vae, train_set, a.decoder, a.run, progress_report(progress));
  progress.finish();
  const auto [psnr_train, psnr_test] = psnr_train_test(tuned, train_set, test_set);
  model::save_module_weights(*tuned, (fs::path(a.run) / "decoder.safetensors").string());
  write_json_file(fs::path(a.run) / "decoder.json", {{"psnr_train", psnr_train},
                                                     {"psnr_test", psnr_test},
                                                     {"steps", a.decoder.steps},
                                                     {"batch", a.decoder.batch},
                                                     {"lr", a.decoder.lr},
                                                     {"seconds", progress.elapsed_seconds()}});
  ResultLine(a) << "decoder: PSNR train " << psnr_train << " dB, test " << psnr_test << " dB";
}

void stage_tokenizer(const EmojiRecipe& a) {
  const auto items = list_emoji(a.data, a.styles);
  const auto tests = test_bases(a);
  std::vector<std::string> captions;
  for (const auto& item : items)
    if (!tests.count(item.base)) captions.push_back(item.caption);
  BpeTrainerOptions options;
  options.num_merges = a.merges;
  const auto vocab = train_bpe(captions, options);
  const auto dir = fs::path(a.run) / "tokenizer";
  write_clip_vocabulary(vocab, dir.string());
  ResultLine(a) << "tokenizer: " << vocab.tokens.size() << " tokens, " << vocab.merges.size()
                << " merges -> " << dir.string();
}

// The networks' sizes that the UNet stage chooses (text encoder width and depth, the UNet's
// cross-attention levels and widths): it records them in the run folder, so that export (and a
// resumed UNet stage) build the networks that were trained.
struct Architecture {
  int64_t text_width, text_layers;
  std::vector<int> unet_attention;     // 0/1 per UNet level, from the 16×16 one down
  std::vector<int64_t> unet_channels;  // each UNet level's width, from the 16×16 one down

  bool operator==(const Architecture& o) const {
    return text_width == o.text_width && text_layers == o.text_layers &&
           unet_attention == o.unet_attention && unet_channels == o.unet_channels;
  }
  std::string describe() const {
    const auto list = [](const auto& values) {
      std::string text;
      for (auto v : values) text += (text.empty() ? "" : ",") + std::to_string(v);
      return text;
    };
    return "a text encoder of width " + std::to_string(text_width) + " and " +
           std::to_string(text_layers) + " layers, UNet attention " + list(unet_attention) +
           " and channels " + list(unet_channels);
  }
  std::vector<bool> attention_levels() const {
    return {unet_attention.begin(), unet_attention.end()};
  }
};

fs::path architecture_record(const EmojiRecipe& a) { return fs::path(a.run) / "architecture.json"; }

std::optional<Architecture> recorded_architecture(const EmojiRecipe& a) {
  if (!fs::exists(architecture_record(a))) return std::nullopt;
  const auto j = read_json_file(architecture_record(a));
  // Records from before --unet-channels existed name no widths: those runs had the shipped ones.
  return Architecture{j.at("text_width").get<int64_t>(), j.at("text_layers").get<int64_t>(),
                      j.at("unet_attention").get<std::vector<int>>(),
                      j.value("unet_channels", kEmojiUnetChannels)};
}

// The flags' architecture for the UNet stage; for the others the run's record, if it has one.
Architecture architecture(const EmojiRecipe& a) {
  if (a.stage != "unet")
    if (const auto recorded = recorded_architecture(a)) return *recorded;
  return {a.text_width, a.text_layers, a.unet_attention, a.unet_channels};
}

// The text encoder and UNet configurations of the architecture, read once.
void set_networks(const EmojiRecipe& a, int64_t vocab_size, model::ModelConfig& config) {
  const auto arch = architecture(a);
  config.text = emoji_text_config(vocab_size, arch.text_width, arch.text_layers);
  config.unet =
      emoji_unet_config(config.text.hidden_size, arch.attention_levels(), arch.unet_channels);
}

// Before the UNet stage trains: a resumed run must keep the networks it started with.
void record_architecture(const EmojiRecipe& a) {
  const auto wanted = architecture(a);
  // A bad size fails before it is recorded.
  emoji_text_config(1, wanted.text_width, wanted.text_layers);
  emoji_unet_config(wanted.text_width, wanted.attention_levels(), wanted.unet_channels);
  const bool resuming = a.unet.resume && fs::exists(fs::path(a.run) / "diffusion.state");
  const auto recorded = resuming ? recorded_architecture(a) : std::nullopt;
  if (recorded && !(*recorded == wanted))
    throw Error(
        a.run + ": its UNet stage trains " + recorded->describe() +
        "; pass the same --text-width, --text-layers, --unet-attention and --unet-channels, "
        "or --no-resume");
  fs::create_directories(a.run);
  write_json_file(architecture_record(a), {{"text_width", wanted.text_width},
                                           {"text_layers", wanted.text_layers},
                                           {"unet_attention", wanted.unet_attention},
                                           {"unet_channels", wanted.unet_channels}});
}

fs::path tokenizer_dir(const EmojiRecipe& a) {
  return a.autoencoder_from.empty() ? fs::path(a.run) / "tokenizer"
                                    : fs::path(a.autoencoder_from) / "tokenizer";
}

// The model as configured for the emoji data, with the trained VAE (and tokenizer) loaded: the
// run folder's, or with --autoencoder-from those of a model folder (a new text encoder and UNet
// for a shipped autoencoder, without its two training stages).
model::StableDiffusion emoji_model(const EmojiRecipe& a) {
  if (!a.autoencoder_from.empty()) {
    const auto base = model::load_stable_diffusion(a.autoencoder_from);
    if (!base.tokenizer)
      throw Error(a.autoencoder_from + ": --autoencoder-from needs a tokenizer/ folder");
    model::ModelConfig config = base.config;
    set_networks(a, static_cast<int64_t>(base.tokenizer->vocab_size()), config);
    auto sd = model::StableDiffusion::create(config);
    sd.tokenizer = base.tokenizer;
    sd.vae = base.vae;
    return sd;
  }
  const auto tokenizer = std::make_shared<const model::ClipTokenizer>(
      model::ClipTokenizer::from_directory((fs::path(a.run) / "tokenizer").string()));
  model::ModelConfig config;
  config.vae = emoji_vae_config();
  config.vae.scaling_factor = read_json_file(fs::path(a.run) / "vae.json")["scaling_factor"];
  set_networks(a, static_cast<int64_t>(tokenizer->vocab_size()), config);
  auto sd = model::StableDiffusion::create(config);
  sd.tokenizer = tokenizer;
  model::load_module_weights(*sd.vae, (fs::path(a.run) / "vae.safetensors").string());
  return sd;
}

void stage_unet(const EmojiRecipe& a) {
  record_architecture(a);
  auto sd = emoji_model(a);
  const auto items = list_emoji(a.data, a.styles);
  const auto tests = test_bases(a);
  const auto train_set = load_emoji_split(items, tests, false);
  const auto latents =
      encode_latents(sd.vae, train_set, *sd.tokenizer, sd.config.text.max_positions, a.unet.mirror);
  // The over-fitting watch: the report's train/test loss protocol on smaller subsets, with a
  // snapshot of the EMA weights at each point, logged to unet-monitor.jsonl.
  const auto monitor_train = encode_latents(sd.vae, train_set.spread_subset(kMonitorImages),
                                            *sd.tokenizer, sd.config.text.max_positions);
  const auto monitor_test =
      encode_latents(sd.vae, load_emoji_split(items, tests, true).spread_subset(kMonitorImages),
                     *sd.tokenizer, sd.config.text.max_positions);
  const auto snapshots = fs::path(a.run) / "snapshots";
  DiffusionMonitor monitor = [&](int64_t step, model::StableDiffusion& ema) {
    const double train_loss = denoising_loss(ema, monitor_train, 7);
    const double test_loss = denoising_loss(ema, monitor_test, 7);
    fs::create_directories(snapshots);
    const auto tag = std::to_string(step);
    model::save_module_weights(*ema.unet, (snapshots / ("unet-" + tag + ".safetensors")).string());
    model::save_module_weights(*ema.text_encoder,
                               (snapshots / ("text_encoder-" + tag + ".safetensors")).string());
    std::ofstream(fs::path(a.run) / "unet-monitor.jsonl", std::ios::app)
        << nlohmann::json{{"step", step},
                          {"loss_train", train_loss},
                          {"loss_test", test_loss},
                          {"ratio", test_loss / train_loss}}
               .dump()
        << "\n";
    char line[160];
    std::snprintf(line, sizeof line, "unet step %lld: ε-loss train %.4f, test %.4f (ratio %.3f)",
                  static_cast<long long>(step), train_loss, test_loss, test_loss / train_loss);
    log::info(line);
  };
  Progress progress("unet", a.unet.steps);
  train_diffusion(sd, latents, a.unet, a.run, progress_report(progress), monitor);
  progress.finish();
  model::save_module_weights(*sd.unet, (fs::path(a.run) / "unet.safetensors").string());
  model::save_module_weights(*sd.text_encoder,
                             (fs::path(a.run) / "text_encoder.safetensors").string());
  write_json_file(fs::path(a.run) / "unet.json", {{"steps", a.unet.steps},
                                                  {"batch", a.unet.batch},
                                                  {"lr", a.unet.lr},
                                                  {"schedule_steps", a.unet.schedule_steps},
                                                  {"caption_dropout", a.unet.caption_dropout},
                                                  {"dropout", a.unet.dropout},
                                                  {"mirror", a.unet.mirror},
                                                  {"snr_gamma", a.unet.snr_gamma},
                                                  {"noise_offset", a.unet.noise_offset},
                                                  {"name_dropout", a.unet.name_dropout},
                                                  {"balance_bases", a.unet.balance_bases},
                                                  {"device", a.unet.device.str()},
                                                  {"seconds", progress.elapsed_seconds()}});
}

void stage_export(const EmojiRecipe& a) {
  auto sd = emoji_model(a);
  // The decoder stage's autoencoder: same encoder (so the same latents), sharper decoder.
  const auto tuned = fs::path(a.run) / "decoder.safetensors";
  if (a.autoencoder_from.empty() && fs::exists(tuned))
    model::load_module_weights(*sd.vae, tuned.string());
  // The UNet stage's final EMA weights, or one of its monitor snapshots (early stopping).
  const auto weights = [&](const std::string& name) {
    if (a.unet_snapshot <= 0) return (fs::path(a.run) / (name + ".safetensors")).string();
    const auto path = fs::path(a.run) / "snapshots" /
                      (name + "-" + std::to_string(a.unet_snapshot) + ".safetensors");
    if (!fs::exists(path))
      throw Error(path.string() + ": no such snapshot (see " + a.run + "/unet-monitor.jsonl)");
    return path.string();
  };
  model::load_module_weights(*sd.unet, weights("unet"));
  model::load_module_weights(*sd.text_encoder, weights("text_encoder"));
  // F16 storage halves the size; p2l computes in float32.
  model::save_diffusers(sd, a.out, torch::kHalf, tokenizer_dir(a).string());
  // A few held-out images (different base emoji, alternating styles) for tests and the demo.
  const auto items = list_emoji(a.data, a.measure_styles);
  const auto tests = test_bases(a);
  std::vector<EmojiItem> picked;
  std::set<std::string> bases;
  std::vector<EmojiItem> test_items;
  for (const auto& item : items)
    if (tests.count(item.base)) test_items.push_back(item);
  const size_t stride = std::max<size_t>(1, test_items.size() / kShippedTestImages);
  for (size_t i = 0; i < test_items.size() && picked.size() < kShippedTestImages; i += stride) {
    // Alternate the styles, skipping repeats of a base emoji.
    for (size_t j = i; j < test_items.size(); ++j) {
      const auto& item = test_items[j];
      const bool want_google = picked.size() % 2 == 0;
      if (bases.count(item.base) || (item.style == "google") != want_google) continue;
      picked.push_back(item);
      bases.insert(item.base);
      break;
    }
  }
  const auto dir = fs::path(a.out) / "test_images";
  fs::create_directories(dir);
  nlohmann::json captions = nlohmann::json::object();
  for (size_t i = 0; i < picked.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "%02zu_%s.png", i, picked[i].style.c_str());
    io::save_png((dir / name).string(), io::load_image(picked[i].image));
    captions[name] = picked[i].caption;
  }
  write_json_file(dir / "captions.json", captions);
  ResultLine(a) << "exported " << a.out << " with " << picked.size() << " test images";
}

// An evaluation set from the test split: `count` base emoji spread evenly over the split (in
// emoji.json's category order), one image each (the base's first listed image, alternating the
// styles where the base has both), named NNN_<style>_<base code>.png, with captions.json.
void stage_test_images(const EmojiRecipe& a) {
  if (a.images_out.empty()) throw Error("train test-images: --images-out DIR is required");
  const auto items = list_emoji(a.data, a.measure_styles);
  const auto tests = test_bases(a);
  std::vector<std::string> order;  // test bases in listing order
  std::map<std::string, std::vector<const EmojiItem*>> by_base;
  for (const auto& item : items) {
    if (!tests.count(item.base)) continue;
    if (by_base[item.base].empty()) order.push_back(item.base);
    by_base[item.base].push_back(&item);
  }
  if (a.count > static_cast<int64_t>(order.size()))
    throw Error("train test-images: --count " + std::to_string(a.count) +
                " but the test split has " + std::to_string(order.size()) + " base emoji");
  const auto dir = fs::path(a.images_out);
  fs::create_directories(dir);
  nlohmann::json captions = nlohmann::json::object();
  for (int64_t i = 0; i < a.count; ++i) {
    const auto& base = order[static_cast<size_t>(i * static_cast<int64_t>(order.size()) / a.count)];
    const std::string want = i % 2 == 0 ? "google" : "twitter";
    const EmojiItem* picked = by_base[base].front();
    for (const auto* item : by_base[base])
      if (item->style == want) {
        picked = item;
        break;
      }
    char name[96];
    std::snprintf(name, sizeof name, "%03lld_%s_%s.png", static_cast<long long>(i),
                  picked->style.c_str(), base.c_str());
    io::save_png((dir / name).string(), io::load_image(picked->image));
    captions[name] = picked->caption;
  }
  write_json_file(dir / "captions.json", captions);
  ResultLine(a) << "test-images: " << a.count << " of " << order.size() << " test base emoji -> "
                << dir.string();
}

// One sample per caption (50 DDIM steps, the report's guidance; seed = position), decoded in
// [-1, 1]: [N, 3, H, W].
torch::Tensor sample_captions(model::StableDiffusion& sd, const std::vector<std::string>& captions,
                              const EmojiRecipe& a, const std::string& what) {
  std::vector<torch::Tensor> images;
  Progress progress(what, static_cast<int64_t>(captions.size()));
  for (size_t i = 0; i < captions.size(); ++i) {
    pipelines::TextToImageOptions o;
    o.prompt = captions[i];
    o.steps = a.sample_steps;
    o.cfg_scale = a.sample_cfg;
    o.seed = i;
    o.width = o.height = sd.config.unet.sample_size * sd.config.vae.downsampling_factor();
    images.push_back(pipelines::text_to_image(sd, o).decoded.clamp(-1, 1));
    progress.update(static_cast<int64_t>(i) + 1);
  }
  progress.finish();
  return torch::cat(images, 0);
}

nlohmann::json accuracy_json(const Accuracy& acc) {
  return {
      {"counted", acc.counted}, {"excluded", acc.excluded}, {"top1", acc.top1}, {"top5", acc.top5}};
}

void stage_report(const EmojiRecipe& a) {
  auto sd = model::load_stable_diffusion(a.out);
  const auto items = list_emoji(a.data, a.measure_styles);
  const auto tests = test_bases(a);
  const auto train_set = load_emoji_split(items, tests, false).spread_subset(kTrainSubset);
  const auto test_set = load_emoji_split(items, tests, true);
  nlohmann::json report;
  report["train_subset_images"] = train_set.images.size(0);
  report["train_subset"] = "every (n/1000)-th image of the training split";
  report["denoising_loss_protocol"] =
      "mean ε-MSE over 10 evenly spaced timesteps per latent (posterior mean), seeded noise";
  // Each test image decoded once: the overall mean and each style's.
  const auto test_psnrs = reconstruction_psnrs(sd.vae, test_set);
  std::map<std::string, std::pair<size_t, double>> by_style;  // style -> (images, PSNR sum)
  for (size_t i = 0; i < test_psnrs.size(); ++i) {
    auto& [count, sum] = by_style[test_set.items[i].style];
    ++count;
    sum += test_psnrs[i];
  }
  report["vae_psnr_test"] =
      std::accumulate(test_psnrs.begin(), test_psnrs.end(), 0.0) / test_psnrs.size();
  report["vae_psnr_train"] = reconstruction_psnr(sd.vae, train_set);
  if (a.measure_styles.size() > 1) {
    nlohmann::json styles;
    for (const auto& [style, count_sum] : by_style)
      styles[style] = {{"images", count_sum.first}, {"psnr", count_sum.second / count_sum.first}};
    report["vae_psnr_test_by_style"] = styles;
  }
  const auto lat_train =
      encode_latents(sd.vae, train_set, *sd.tokenizer, sd.config.text.max_positions);
  const auto lat_test =
      encode_latents(sd.vae, test_set, *sd.tokenizer, sd.config.text.max_positions);
  report["denoising_loss_train"] = denoising_loss(sd, lat_train, 7);
  report["denoising_loss_test"] = denoising_loss(sd, lat_test, 7);
  // A grid of samples for test-split captions (one per base emoji, spread over the split).
  const auto captions = spread_distinct_captions(test_set.items, a.samples);
  const auto grid = sample_captions(sd, captions, a, "samples");
  const auto tiles = grid.split(1);
  const int64_t cols = 4;
  std::vector<torch::Tensor> rows;
  for (size_t r = 0; r * cols < tiles.size(); ++r) {
    std::vector<torch::Tensor> row;
    for (size_t c = 0; c < size_t(cols); ++c) {
      const size_t k = r * cols + c;
      row.push_back(k < tiles.size() ? tiles[k] : torch::ones_like(tiles[0]));
    }
    rows.push_back(torch::cat(row, 3));
  }
  io::save_png((fs::path(a.out) / "samples.png").string(), torch::cat(rows, 2));
  report["sample_captions"] = captions;
  report["sample_cfg_scale"] = a.sample_cfg;
  report["sample_steps"] = a.sample_steps;
  // Recognisability, measured: does the FD-emoji classifier see the captions' sub-categories
  // in samples (one per base emoji, spread over each split), as it does in the real test images?
  const auto fd_path = a.fd_emoji.empty() ? (fs::path(a.out) / "fd_emoji").string() : a.fd_emoji;
  if (a.recognition_samples > 0) {
    auto net = metrics::load_emoji_feature_net(fd_path);
    // The class names the network was trained with, in its output order.
    const auto classes = read_json_file(fs::path(fd_path) / "config.json")
                             .at("classes")
                             .get<std::vector<std::string>>();
    if (!std::is_sorted(classes.begin(), classes.end()))
      throw Error(fd_path + "/config.json: the class names are not sorted");
    if (static_cast<int64_t>(classes.size()) != net->classes())
      throw Error(fd_path + "/config.json: " + std::to_string(classes.size()) +
                  " class names for a network with " + std::to_string(net->classes()) + " classes");
    // Captions only: the training split's items, without loading its images.
    const auto train_items = [&] {
      std::vector<EmojiItem> out;
      for (const auto& item : items)
        if (tests.count(item.base) == 0) out.push_back(item);
      return out;
    }();
    nlohmann::json recognition;
    recognition["protocol"] =
        "FD-emoji sub-category classification of one sample per base emoji (spread over the "
        "split, seed = position; the grid's steps and guidance); 'test_images' = the same "
        "classifier on the real test images";
    recognition["classifier"] = a.fd_emoji.empty() ? "fd_emoji (beside the model)" : a.fd_emoji;
    recognition["test_images"] = accuracy_json(
        classification_accuracy(net, test_set, subcategory_labels(test_set, classes)));
    for (const auto& [name, split] :
         {std::pair{"test_captions", &test_set.items}, std::pair{"train_captions", &train_items}}) {
      const auto chosen = spread_distinct_captions(*split, a.recognition_samples);
      recognition[name] = accuracy_json(classification_accuracy(
          net, sample_captions(sd, chosen, a, name), subcategory_labels(chosen, classes)));
      recognition[name]["captions"] = chosen;
    }
    report["sample_recognition"] = recognition;
  }
  write_json_file(fs::path(a.out) / "report.json", report);
  ResultLine(a) << report.dump(2);
}

// The FD-emoji network (metrics/emoji_features.h): classifies sub-categories on the training
// split; weights and a config with the classes and accuracies go to <out>/fd_emoji.
void stage_features(const EmojiRecipe& a) {
  const auto items = list_emoji(a.data, a.measure_styles);
  const auto tests = test_bases(a);
  const auto train_set = load_emoji_split(items, tests, false);
  const auto test_set = load_emoji_split(items, tests, true);
  const auto classes = subcategory_classes(train_set);
  const auto train_labels = subcategory_labels(train_set, classes);
  const auto test_labels = subcategory_labels(test_set, classes);
  log::info("features: " + std::to_string(train_set.images.size(0)) + " training images, " +
            std::to_string(classes.size()) + " sub-categories");
  const auto& o = a.features;
  Progress progress("features", o.steps);
  auto net = train_emoji_features(train_set, train_labels, static_cast<int64_t>(classes.size()), o,
                                  a.run, progress_report(progress));
  progress.finish();
  const double seconds = progress.elapsed_seconds();
  const auto train_accuracy = classification_accuracy(net, train_set, train_labels);
  const auto test_accuracy = classification_accuracy(net, test_set, test_labels);
  const auto dir = fs::path(a.out) / "fd_emoji";
  fs::create_directories(dir);
  model::save_module_weights(*net, (dir / "model.safetensors").string());
  std::ostringstream command;
  command << "p2l --threads " << torch::get_num_threads() << " train features --data " << a.data
          << " --split " << a.split << " --run " << a.run << " --out " << a.out
          << " --features-steps " << o.steps << " --features-batch " << o.batch << " --features-lr "
          << o.lr;
  const nlohmann::json config = {
      {"network", "p2l FD-emoji feature network (src/p2l/metrics/emoji_features.h)"},
      {"input_size", metrics::EmojiFeatureNetImpl::kInputSize},
      {"input_range", "[-1, 1] RGB, resized bilinearly to 64x64 when another size"},
      {"stage_channels", metrics::EmojiFeatureNetImpl::kChannels},
      {"group_norm_groups", metrics::EmojiFeatureNetImpl::kGroups},
      {"feature_dim", metrics::EmojiFeatureNetImpl::kFeatures},
      {"classes", classes},
      {"task", "emoji sub-category classification (emoji.json 'subcategory')"},
      {"train_images", train_set.images.size(0)},
      {"train_accuracy", train_accuracy.top1},
      {"test_images", test_set.images.size(0)},
      {"test_images_counted", test_accuracy.counted},
      {"test_images_unknown_class", test_accuracy.excluded},
      {"test_accuracy", test_accuracy.top1},
      {"accuracy_protocol",
       "top-1 on whole, unshifted images; EMA weights; test split = "
       "held-out base emoji, images of sub-categories without training "
       "images not counted"},
      {"steps", o.steps},
      {"batch", o.batch},
      {"lr", o.lr},
      {"lr_schedule", "linear warm-up, then cosine to 2% of lr"},
      {"warmup", o.warmup},
      {"optimizer", "Adam"},
      {"ema_decay", o.ema_decay},
      {"max_shift", o.max_shift},
      {"seed", o.seed},
      {"threads", torch::get_num_threads()},
      {"seconds", seconds},
      {"command", command.str()}};
  write_json_file(dir / "config.json", config);
  write_json_file(fs::path(a.run) / "features.json", config);
  ResultLine(a) << "features: accuracy train " << train_accuracy.top1 << ", test "
                << test_accuracy.top1 << " (" << test_accuracy.counted << " test images, "
                << test_accuracy.excluded << " of unseen sub-categories left out) -> "
                << dir.string();
}

}  // namespace

EmojiRecipe EmojiRecipe::shipped() {
  EmojiRecipe a;
  // Six styles, 11,467 training images: 1.66× the first model's two (docs/emoji-models.md).
  a.styles = emoji_styles();
  a.vae.steps = 9000;
  a.vae.batch = 16;
  a.vae.lr = 1e-3;
  a.vae.whole_image_fraction = 0.75;
  a.decoder.steps = 1500;
  a.decoder.batch = 16;
  a.decoder.lr = 2e-4;
  a.decoder.warmup = 50;
  a.decoder.ema_decay = 0.998;
  // The whole 12,000-step cosine schedule: the over-fitting watch (test/train ε-loss every 1000
  // steps) never passed 1.014, and the decayed end drew held-out captions best — step 8000 of the
  // same run recognised 25 % of them, step 12,000 42 % (docs/emoji-models.md).
  a.unet.steps = 12000;
  a.unet.schedule_steps = 12000;
  a.unet.batch = 32;
  a.unet.lr = 1e-3;
  a.unet.seed = 1;
  a.unet.dropout = 0.1;
  // At 16×16 latents the starting noise's spatial mean, not the caption, set the samples'
  // colours; offset noise made test captions better recognised (docs/emoji-models/first-model.md).
  a.unet.noise_offset = 0.1;
  // Uniform over base emoji, then over a base's skin tones and styles: without it a base with
  // many skin tones in six styles is drawn dozens of times as often as one without.
  a.unet.balance_bases = true;
  a.unet.monitor_every = 1000;
  a.unet_channels = {32, 96, 192};
  return a;
}

const std::vector<std::string>& recipe_stages() {
  static const std::vector<std::string> stages = {"split", "vae",    "decoder", "tokenizer",
                                                  "unet",  "export", "report",  "features"};
  return stages;
}

void check_recipe(const EmojiRecipe& a) {
  const auto& s = a.stage;
  const auto& stages = recipe_stages();
  if (s != "all" && s != "test-images" &&
      std::find(stages.begin(), stages.end(), s) == stages.end())
    throw Error("train: unknown stage '" + s + "'");
  if (!a.autoencoder_from.empty() && s != "unet" && s != "export")
    throw Error("train " + s + ": --autoencoder-from is for the unet and export stages");
  if (!a.unet.device.is_cpu() && s != "unet")
    throw Error("train " + s + ": --device " + a.unet.device.str() +
                " is for the unet stage (the other stages train on the CPU)");
  // The flag's own message; emoji_unet_config's validation would not name it.
  const int64_t groups = model::UNetConfig{}.norm_groups;
  for (const int64_t width : a.unet_channels)
    if (width % groups != 0)
      throw Error("--unet-channels: " + std::to_string(width) + " is not a multiple of " +
                  std::to_string(groups) + " (the UNet's group norm groups)");
}

void run_recipe(const EmojiRecipe& a) {
  check_recipe(a);
  const auto& s = a.stage;
  const bool all = s == "all";
  if (s == "split" || (all && !fs::exists(a.split))) stage_split(a);
  if (s == "vae" || all) stage_vae(a);
  if (s == "decoder" || all) stage_decoder(a);
  if (s == "tokenizer" || all) stage_tokenizer(a);
  if (s == "unet" || all) stage_unet(a);
  if (s == "export" || all) stage_export(a);
  if (s == "report" || all) stage_report(a);
  if (s == "features" || all) stage_features(a);
  if (s == "test-images") stage_test_images(a);
}

}  // namespace p2l::train
