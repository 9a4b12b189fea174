#include "p2l/train/emoji_dataset.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>

#include "p2l/error.h"
#include "p2l/io/json_file.h"
#include "p2l/io/image.h"

namespace p2l::train {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// "hand-fingers-open" → "hand fingers open"; "family: man, woman" → "family man woman".
std::string words(std::string s) {
  for (auto& c : s)
    if (c == '-' || c == '_' || c == ':' || c == ',') c = ' ';
  std::string out;
  for (char c : s) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return lower(out);
}

std::string skin_tone(const std::string& code) {
  static const std::map<std::string, std::string> kTones = {
      {"1F3FB", "light skin tone"},       {"1F3FC", "medium light skin tone"},
      {"1F3FD", "medium skin tone"},      {"1F3FE", "medium dark skin tone"},
      {"1F3FF", "dark skin tone"}};
  std::string out;
  size_t start = 0;
  while (start <= code.size()) {
    const auto dash = code.find('-', start);
    const auto part = code.substr(start, dash == std::string::npos ? std::string::npos : dash - start);
    auto it = kTones.find(part);
    const std::string tone = it == kTones.end() ? words(part) : it->second;
    if (out.find(tone) == std::string::npos) out += (out.empty() ? "" : ", ") + tone;
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  return out;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

bool is_mirrorable(const std::string& category, const std::string& subcategory,
                   const std::string& name) {
  // Symbols and flags hold letters, digits, arrows and emblems; clocks and banknotes read
  // one way round.
  if (category == "Symbols" || category == "Flags") return false;
  if (subcategory == "time" || subcategory == "money" || subcategory == "book paper") return false;
  std::string padded = " " + name + " ";
  for (const char* word : {" left ", " right ", " leftwards ", " rightwards ", " clockwise ",
                           " anticlockwise ", " counterclockwise "})
    if (padded.find(word) != std::string::npos) return false;
  return true;
}

const std::vector<std::string>& emoji_styles() {
  static const std::vector<std::string> styles = {"google",  "twitter",  "noto-v1",
                                                  "fxemoji", "emojione", "streamline"};
  return styles;
}

namespace {

bool is_datasource_style(const std::string& style) {
  return style == "google" || style == "twitter";
}

// An emoji or one of its skin tones as emoji.json lists it, with its caption up to the style.
struct EmojiEntry {
  std::string base, unified, image, caption;
  bool mirrorable = false;
  nlohmann::json flags;  // has_img_<style>
};

std::vector<EmojiEntry> emoji_entries(const fs::path& emoji_json) {
  if (!fs::exists(emoji_json))
    throw Error(emoji_json.string() +
                ": missing; run scripts/fetch_emoji.sh to fetch the emoji packages");
  std::vector<EmojiEntry> out;
  for (const auto& e : io::read_json(emoji_json.string())) {
    const std::string base = e.at("unified").get<std::string>();
    std::string name = e.value("name", "");
    if (name.empty() || name == "null") name = e.value("short_name", base);
    const std::string subject = words(name);
    const std::string group = words(e.value("subcategory", ""));
    const bool mirrorable = is_mirrorable(e.value("category", ""), group, subject);
    auto add = [&](const nlohmann::json& entry, const std::string& tone) {
      std::string caption = subject;
      if (!tone.empty()) caption += ", " + tone;
      if (!group.empty()) caption += ", " + group;
      out.push_back(
          {base, entry.value("unified", base), entry.value("image", ""), caption, mirrorable, entry});
    };
    add(e, "");
    if (e.contains("skin_variations"))
      for (const auto& [code, variation] : e["skin_variations"].items())
        add(variation, skin_tone(code));
  }
  return out;
}

}  // namespace

std::vector<EmojiItem> list_emoji(const std::string& cache_dir,
                                  const std::vector<std::string>& styles) {
  const fs::path cache(cache_dir);
  std::vector<EmojiItem> items;
  std::map<std::string, const EmojiEntry*> by_code;
  // Captions and base emoji of every style come from one table: Google's emoji.json.
  const auto table = emoji_entries(cache / "emoji-datasource-google" / "package" / "emoji.json");
  for (const auto& entry : table) by_code.emplace(entry.unified, &entry);
  for (const auto& style : styles) {
    if (std::find(emoji_styles().begin(), emoji_styles().end(), style) == emoji_styles().end())
      throw Error("emoji style '" + style + "': not one of google, twitter, noto-v1, fxemoji, "
                  "emojione, streamline");
    auto add = [&](const EmojiEntry& entry, const fs::path& path) {
      if (!fs::exists(path)) return;
      items.push_back({entry.base, style, path.string(), entry.caption + ", " + style + " style",
                       entry.mirrorable});
    };
    if (is_datasource_style(style)) {
      const fs::path root = cache / ("emoji-datasource-" + style) / "package";
      const auto entries =
          style == "google" ? table : emoji_entries(root / "emoji.json");
      for (const auto& entry : entries)
        if (entry.flags.value("has_img_" + style, false))
          add(entry, root / "img" / style / "64" / entry.image);
      continue;
    }
    // Rendered from the Iconify sets by scripts/render_iconify.py.
    const fs::path folder = cache / "iconify" / style;
    const fs::path index = folder / "index.json";
    if (!fs::exists(index))
      throw Error(index.string() + ": missing; run scripts/fetch_emoji.sh to render the " + style +
                  " emoji");
    for (const auto& rendered : io::read_json(index.string())) {
      const auto it = by_code.find(rendered.at("unified").get<std::string>());
      if (it == by_code.end())
        throw Error(index.string() + ": " + rendered.at("unified").get<std::string>() +
                    " is not an emoji of emoji.json (rendered from another version?)");
      add(*it->second, folder / "64" / rendered.at("image").get<std::string>());
    }
  }
  return items;
}

std::set<std::string> read_test_bases(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot read the test split");
  std::set<std::string> bases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    bases.insert(line);
  }
  return bases;
}

std::set<std::string> choose_test_bases(const std::vector<EmojiItem>& items, double fraction) {
  std::set<std::string> bases;
  const uint64_t cut = static_cast<uint64_t>(fraction * 1000);
  for (const auto& item : items)
    if (fnv1a(item.base) % 1000 < cut) bases.insert(item.base);
  return bases;
}

void write_test_bases(const std::set<std::string>& bases, const std::string& path) {
  std::ofstream out(path);
  out << "# Test split of the emoji data set: base emoji (unified code) whose every skin tone and\n"
         "# style is held out of training. Made by `p2l train split` (FNV-1a hash of the code).\n";
  for (const auto& b : bases) out << b << "\n";
  if (!out) throw Error(path + ": cannot write the test split");
}

torch::Tensor base_weights(const std::vector<EmojiItem>& items) {
  std::map<std::string, int64_t> count;
  for (const auto& item : items) ++count[item.base];
  std::vector<float> weights;
  weights.reserve(items.size());
  for (const auto& item : items) weights.push_back(1.0f / static_cast<float>(count[item.base]));
  return torch::tensor(weights, torch::kFloat);
}

std::string caption_without_name(const std::string& caption) {
  const auto first = caption.find(", ");
  if (first == std::string::npos || first == 0)
    throw Error("emoji caption '" + caption +
                "': expected '<name>, [<skin tone>,] [<sub-category>,] <style> style'");
  return caption.substr(first + 2);
}

std::vector<std::string> EmojiSet::captions() const {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const auto& item : items) out.push_back(item.caption);
  return out;
}

torch::Tensor EmojiSet::batch(const torch::Tensor& index) const {
  return images.index_select(0, index).to(torch::kFloat) / 127.5 - 1.0;
}

EmojiSet load_emoji_split(const std::vector<EmojiItem>& items, const std::set<std::string>& test,
                          bool test_split) {
  EmojiSet set;
  std::vector<torch::Tensor> images;
  for (const auto& item : items) {
    if ((test.count(item.base) > 0) != test_split) continue;
    auto img = io::load_image(item.image);
    if (img.size(2) != 64 || img.size(3) != 64)
      img = torch::nn::functional::interpolate(
          img, torch::nn::functional::InterpolateFuncOptions()
                   .size(std::vector<int64_t>{64, 64})
                   .mode(torch::kArea));
    images.push_back(((img + 1) * 127.5).round().clamp(0, 255).to(torch::kUInt8));
    set.items.push_back(item);
  }
  if (images.empty()) throw Error("no emoji images in the requested split");
  set.images = torch::cat(images, 0);
  return set;
}

namespace {
// The set's items and image rows at `rows`, in that order.
EmojiSet subset(const EmojiSet& set, const std::vector<int64_t>& rows) {
  EmojiSet out;
  for (int64_t r : rows) out.items.push_back(set.items[static_cast<size_t>(r)]);
  out.images = set.images.index_select(0, torch::tensor(rows, torch::kLong));
  return out;
}
}  // namespace

EmojiSet EmojiSet::spread_subset(int64_t count) const {
  const int64_t n = images.size(0);
  if (count >= n) return *this;
  std::vector<int64_t> rows;
  for (int64_t k = 0; k < count; ++k) rows.push_back(k * n / count);
  return subset(*this, rows);
}

std::vector<std::string> spread_distinct_captions(const std::vector<EmojiItem>& items,
                                                  size_t count) {
  std::vector<std::string> captions;
  std::set<std::string> taken;
  const size_t n = items.size();
  for (size_t k = 0; k < count; ++k)
    for (size_t i = k * n / count; i < n; ++i)
      if (taken.insert(items[i].base).second) {
        captions.push_back(items[i].caption);
        break;
      }
  return captions;
}

}  // namespace p2l::train
