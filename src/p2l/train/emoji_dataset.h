// The emoji data set p2l's small model is trained on: Noto Emoji (Google) and Twemoji
// (Twitter) 64×64 images from the npm packages emoji-datasource-{google,twitter}, and the
// Iconify sets Noto Emoji v1, Firefox OS Emoji, Emoji One and Streamline Emojis rendered to
// 64×64 (scripts/render_iconify.py), with captions built from emoji-datasource's emoji.json,
// split into train/test by base emoji (a held-out emoji is held out in every style).
#pragma once

#include <torch/torch.h>

#include <set>
#include <string>
#include <vector>

namespace p2l::train {

struct EmojiItem {
  std::string base;     // unified code of the base emoji (all skin tones and styles share it)
  std::string style;    // one of emoji_styles()
  std::string image;    // PNG path
  std::string caption;  // e.g. "waving hand sign, medium skin tone, hand fingers open, google style"
  // Whether the mirror image shows the same emoji (a training augmentation): false for symbols,
  // flags and clocks (letters, digits, arrows, glyphs) and for names with a direction.
  bool mirrorable = false;
};

// The mirror rule above, from emoji.json's category, sub-category (as in the captions: "time")
// and name (as in the captions: "left facing fist").
bool is_mirrorable(const std::string& category, const std::string& subcategory,
                   const std::string& name);

// The styles, by the name their captions give: google, twitter (emoji-datasource), noto-v1,
// fxemoji, emojione, streamline (Iconify).
const std::vector<std::string>& emoji_styles();

// Every image of the styles under `cache_dir` (data/emoji/README.md): for google and twitter
// those emoji-datasource-<style>/package/emoji.json lists, for the Iconify styles those of
// iconify/<style>/index.json. Throws p2l::Error naming a missing package or index, an unknown
// style, or a rendered code emoji.json does not list.
std::vector<EmojiItem> list_emoji(const std::string& cache_dir,
                                  const std::vector<std::string>& styles = {"google", "twitter"});

// The committed split: one base code per line (test split). Lines starting with '#' are
// comments.
std::set<std::string> read_test_bases(const std::string& path);
// A deterministic ~fraction split by base code (FNV-1a hash), for making the split file.
std::set<std::string> choose_test_bases(const std::vector<EmojiItem>& items, double fraction);
void write_test_bases(const std::set<std::string>& bases, const std::string& path);

struct EmojiSet {
  std::vector<EmojiItem> items;
  torch::Tensor images;  // [N, 3, 64, 64] uint8, composited on white
  std::vector<std::string> captions() const;
  // Float images in [-1, 1] for rows `index` (int64 tensor).
  torch::Tensor batch(const torch::Tensor& index) const;
  // At most `count` items spread evenly over the set (the files are in emoji.json's category
  // order, so a prefix would hold only faces and people).
  EmojiSet spread_subset(int64_t count) const;
};

// A caption without its emoji's name (the first field; names hold no commas): "medium skin
// tone, hand fingers open, google style". Throws p2l::Error for a caption without a name and a
// field after it. The UNet stage's name dropout trains on these.
std::string caption_without_name(const std::string& caption);

// `count` captions of distinct base emoji spread evenly over `items` (in their order): the k-th
// is the caption of the first item at or after position k·n/count whose base is not yet taken.
// Fewer when there are fewer bases. For the report's sample grid.
std::vector<std::string> spread_distinct_captions(const std::vector<EmojiItem>& items,
                                                  size_t count);

// 1 / (number of items sharing the item's base emoji), float [N]: weights under which every
// base emoji is drawn equally often (the UNet stage's --unet-balance-bases).
torch::Tensor base_weights(const std::vector<EmojiItem>& items);

// Loads the images of the items in (test = true) or out of the test split.
EmojiSet load_emoji_split(const std::vector<EmojiItem>& items, const std::set<std::string>& test,
                          bool test_split);

}  // namespace p2l::train
