// PNG and JPEG decoding (libpng, libjpeg-turbo) through p2l's loaders, colour and grey.
#include <cstdlib>

#include "fuzz_input.h"
#include "p2l/error.h"
#include "p2l/io/image.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // 4 MP instead of 64: the limit is still checked, and an input that claims a large image
  // costs milliseconds to decode instead of seconds (the campaign's speed, not a relaxed check).
  setenv("P2L_MAX_IMAGE_PIXELS", "4194304", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = p2l::fuzz::write_scratch("input.img", p2l::fuzz::as_text(data, size));
  try {
    p2l::io::load_image(path);
  } catch (const p2l::Error&) {
  }
  try {
    p2l::io::load_image_gray8(path);
  } catch (const p2l::Error&) {
  }
  return 0;
}
