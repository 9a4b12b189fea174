// The emoji data set's helpers that need no images: the report's choice of sample captions.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "p2l/error.h"
#include "p2l/train/emoji_dataset.h"

namespace p2l::test {
namespace {

using train::EmojiItem;

EmojiItem item(const std::string& base, const std::string& caption) {
  return {base, "google", base + ".png", caption};
}

TEST(EmojiDataset, SpreadCaptionsTakeDistinctBasesEvenlySpaced) {
  // Bases A (3 images), B (1), C (2), D (2): 8 items.
  const std::vector<EmojiItem> items = {item("A", "a1"), item("A", "a2"), item("A", "a3"),
                                        item("B", "b"),  item("C", "c1"), item("C", "c2"),
                                        item("D", "d1"), item("D", "d2")};
  // Positions 0, 2, 4, 6: A, then A again (taken) → B at 3, C at 4, D at 6.
  EXPECT_EQ(train::spread_distinct_captions(items, 4),
            (std::vector<std::string>{"a1", "b", "c1", "d1"}));
  // Positions 0 and 4.
  EXPECT_EQ(train::spread_distinct_captions(items, 2), (std::vector<std::string>{"a1", "c1"}));
  // More than there are bases: every base once.
  EXPECT_EQ(train::spread_distinct_captions(items, 6),
            (std::vector<std::string>{"a1", "b", "c1", "d1"}));
  EXPECT_TRUE(train::spread_distinct_captions(items, 0).empty());
  EXPECT_TRUE(train::spread_distinct_captions({}, 3).empty());
}

TEST(EmojiDataset, BaseWeightsGiveEveryBaseTheSameTotal) {
  // Bases A (3 items, interleaved with the others), B (1), C (2).
  const std::vector<EmojiItem> items = {item("A", "a1"), item("B", "b"),  item("A", "a2"),
                                        item("C", "c1"), item("A", "a3"), item("C", "c2")};
  const auto w = train::base_weights(items);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{6}));
  const std::vector<float> expected = {1.0f / 3, 1.0f, 1.0f / 3, 0.5f, 1.0f / 3, 0.5f};
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_FLOAT_EQ(w[static_cast<int64_t>(i)].item<float>(), expected[i]) << "item " << i;
  EXPECT_EQ(train::base_weights({}).numel(), 0);
}

TEST(EmojiDataset, CaptionWithoutNameDropsTheFirstField) {
  EXPECT_EQ(train::caption_without_name("waving hand, medium skin tone, hand fingers open, google style"),
            "medium skin tone, hand fingers open, google style");
  EXPECT_EQ(train::caption_without_name("andorra flag, country flag, twitter style"),
            "country flag, twitter style");
  EXPECT_EQ(train::caption_without_name("hash key, google style"), "google style");
  EXPECT_THROW(train::caption_without_name("grinning face"), Error);
  EXPECT_THROW(train::caption_without_name(", face smiling, google style"), Error);
}

}  // namespace
}  // namespace p2l::test
