// Image files (issue 30): PNG and JPEG only, recognised by their first bytes; a header claiming
// more than the pixel limit is refused before anything of its size is allocated; damaged,
// truncated and hostile files are one line naming the file, in the library and through the CLI;
// PNGs written by save_png read back bit for bit; the pixels stb_image decoded (before p2l read
// images with libpng / libjpeg-turbo) are the pixels p2l decodes now.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "error_of.h"
#include "p2l/io/image.h"
#include "scratch_dir.h"

namespace p2l::test {
namespace {

namespace fs = std::filesystem;

constexpr char kName[] = "image";
const fs::path& dir() { return scratch_dir<kName>(); }
std::string path(const std::string& name) { return (dir() / name).string(); }

const fs::path kData = fs::path(P2L_MODELS_DIR).parent_path() / "tests" / "data";

using Bytes = std::vector<unsigned char>;

std::string write_bytes(const std::string& name, const Bytes& bytes) {
  std::ofstream(path(name), std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path(name);
}

Bytes read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void put32be(Bytes& b, uint32_t v) {
  for (int shift : {24, 16, 8, 0}) b.push_back(static_cast<unsigned char>(v >> shift));
}
void put16le(Bytes& b, uint32_t v) {
  b.push_back(static_cast<unsigned char>(v));
  b.push_back(static_cast<unsigned char>(v >> 8));
}
void put32le(Bytes& b, uint32_t v) {
  put16le(b, v & 0xFFFF);
  put16le(b, v >> 16);
}

// PNG's CRC-32 of a chunk's type and data.
uint32_t crc32(const unsigned char* data, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= data[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return c ^ 0xFFFFFFFFu;
}

void put_chunk(Bytes& png, const char* type, const Bytes& data) {
  put32be(png, static_cast<uint32_t>(data.size()));
  Bytes body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  put32be(png, crc32(body.data(), body.size()));
}

// A well-formed PNG header for an RGB image of any size, with a token IDAT and IEND.
Bytes png_claiming(uint32_t width, uint32_t height) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  Bytes ihdr;
  put32be(ihdr, width);
  put32be(ihdr, height);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8 bits, RGB, deflate, no filter set, no interlace
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", {0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01});
  put_chunk(png, "IEND", {});
  return png;
}

// The markers libjpeg reads as a header (SOI, baseline SOF, SOS) for a 3-component image; a
// JPEG's size fields are 16 bits and libjpeg takes at most 65500.
Bytes jpeg_claiming(uint16_t width, uint16_t height) {
  Bytes jpg = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 17, 8};
  jpg.insert(jpg.end(),
             {static_cast<unsigned char>(height >> 8), static_cast<unsigned char>(height),
              static_cast<unsigned char>(width >> 8), static_cast<unsigned char>(width)});
  jpg.insert(jpg.end(), {3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1});
  jpg.insert(jpg.end(), {0xFF, 0xDA, 0x00, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0});
  jpg.insert(jpg.end(), {0x12, 0x34, 0x56, 0xFF, 0xD9});
  return jpg;
}

// What stb_image decoded as images of 16000² from a few header bytes.
Bytes bmp_16000() {  // 54 bytes: file header + BITMAPINFOHEADER, 24 bits, no pixels
  Bytes b = {'B', 'M'};
  put32le(b, 54 + 16000u * 16000u * 3);
  put32le(b, 0);
  put32le(b, 54);
  put32le(b, 40);
  put32le(b, 16000);
  put32le(b, 16000);
  put16le(b, 1);
  put16le(b, 24);
  for (int i = 0; i < 6; ++i) put32le(b, 0);
  return b;
}
Bytes ppm_16000() {  // 19 bytes
  const std::string text = "P6\n16000 16000\n255\n";
  return Bytes(text.begin(), text.end());
}
Bytes tga_16000() {  // 18 bytes: uncompressed true-colour, 24 bits
  Bytes b = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  put16le(b, 16000);
  put16le(b, 16000);
  b.insert(b.end(), {24, 0});
  return b;
}
Bytes garbage_39() {  // stb_image took these 39 bytes for a 4112×4112 TGA (0x10 0x10 as sizes)
  Bytes b(39, 0x10);
  b[1] = 0, b[2] = 2, b[16] = 24;
  return b;
}

// Peak resident memory of this process in MiB (getrusage's high-water mark).
long peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

// `p2l ARGS` with its address space capped (ulimit -v): a decoder that allocated what a hostile
// header claims fails or dies there instead of growing the machine's memory. AddressSanitizer
// reserves terabytes of address space for its shadow memory, so under it the cap is its own
// limit on a single allocation instead.
constexpr long kCliAddressSpaceMiB = 4096;
RunResult run_p2l_capped(const std::string& args) {
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const auto out = dir() / ("p2l_" + test + ".out"), err = dir() / ("p2l_" + test + ".err");
  const std::string cap =
      kAddressSanitizer
          ? "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}max_allocation_size_mb=" +
                std::to_string(kCliAddressSpaceMiB) + "\" "
          : "ulimit -v " + std::to_string(kCliAddressSpaceMiB * 1024) + " && ";
  const std::string cmd = cap +
                          P2L_CLI_PATH + " --threads 1 " + args + " >" + out.string() + " 2>" +
                          err.string() + " </dev/null";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

// The message of a failed load: one line that names the file.
std::string image_load_error(const std::string& file) {
  const std::string message = error_of([&] { io::load_image(file); });
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find(file), std::string::npos) << message;
  EXPECT_EQ(message, error_of([&] { io::load_image_gray8(file); }));
  return message;
}

// A smooth colour image in [-1, 1] with 8-bit levels (what load_image returns).
torch::Tensor test_image(int64_t h, int64_t w) {
  auto y = torch::linspace(0, 1, h).view({1, 1, h, 1});
  auto x = torch::linspace(0, 1, w).view({1, 1, 1, w});
  auto rgb = torch::cat({(0.2 + 0.6 * x).expand({1, 1, h, w}), (0.9 - 0.7 * y).expand({1, 1, h, w}),
                         0.5 + 0.4 * torch::sin(6 * x + 4 * y)},
                        1);
  return io::to_signed((rgb * 255).round() / 255);
}

// Sets P2L_MAX_IMAGE_PIXELS for one scope.
struct PixelLimit {
  explicit PixelLimit(const std::string& value) {
    setenv("P2L_MAX_IMAGE_PIXELS", value.c_str(), 1);
  }
  ~PixelLimit() { unsetenv("P2L_MAX_IMAGE_PIXELS"); }
};

TEST(Image, OtherFormatsAreOneLineNamingWhatIsRead) {
  const long before = peak_rss_mib();
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, Bytes>>{
           {"big.bmp", bmp_16000()},
           {"big.ppm", ppm_16000()},
           {"big.tga", tga_16000()},
           {"garbage.png", garbage_39()},  // the extension does not make it a PNG
           {"empty.jpg", {}},
           {"short.png", {0x89, 'P', 'N'}}}) {
    SCOPED_TRACE(name);
    const auto message = image_load_error(write_bytes(name, bytes));
    EXPECT_NE(message.find("not a PNG or JPEG file (p2l reads PNG and JPEG images"),
              std::string::npos)
        << message;
  }
  EXPECT_EQ(bmp_16000().size(), 54u);
  EXPECT_EQ(ppm_16000().size(), 19u);
  EXPECT_EQ(tga_16000().size(), 18u);
  EXPECT_EQ(garbage_39().size(), 39u);
  EXPECT_LT(peak_rss_mib() - before, 100);
  EXPECT_NE(image_load_error(path("missing.png")).find("no such image file"), std::string::npos);
  EXPECT_NE(image_load_error(dir().string()).find("is a folder"), std::string::npos);
}

TEST(Image, FormatIsRecognisedByItsBytesNotItsName) {
  const auto image = test_image(6, 9);
  io::save_png(path("png_named.jpg"), image);
  EXPECT_TRUE(torch::equal(io::load_image(path("png_named.jpg")), image));
  fs::copy_file(kData / "images" / "gradient_420.jpg", path("jpeg_named.png"),
                fs::copy_options::overwrite_existing);
  EXPECT_TRUE(torch::equal(io::load_image(path("jpeg_named.png")),
                           io::load_image((kData / "images" / "gradient_420.jpg").string())));
}

TEST(Image, HeadersOverThePixelLimitAreRefusedBeforeDecoding) {
  const long before = peak_rss_mib();
  const auto png = image_load_error(write_bytes("huge.png", png_claiming(100000, 100000)));
  EXPECT_NE(png.find("its header claims 100000×100000 = 10000000000 pixels, over the limit of "
                     "67108864 (set P2L_MAX_IMAGE_PIXELS to change it)"),
            std::string::npos)
      << png;
  // PNG's largest size: still the limit that speaks, not libpng's own (1,000,000 a side).
  EXPECT_NE(
      image_load_error(write_bytes("widest.png", png_claiming(0x7FFFFFFF, 1))).find("over the limit"),
      std::string::npos);
  const auto jpg = image_load_error(write_bytes("huge.jpg", jpeg_claiming(65500, 65500)));
  EXPECT_NE(jpg.find("its header claims 65500×65500 = 4290250000 pixels, over the limit of "
                     "67108864"),
            std::string::npos)
      << jpg;
  EXPECT_LT(peak_rss_mib() - before, 100);
  EXPECT_EQ(io::kDefaultMaxImagePixels, 8192 * 8192);
}

TEST(Image, PixelLimitComesFromTheEnvironment) {
  const auto image = test_image(10, 12);  // 120 pixels
  io::save_png(path("small.png"), image);
  {
    PixelLimit limit("119");
    EXPECT_EQ(io::max_image_pixels(), 119);
    EXPECT_NE(image_load_error(path("small.png")).find("12×10 = 120 pixels, over the limit of 119"),
              std::string::npos);
  }
  {
    PixelLimit limit("120");
    EXPECT_TRUE(torch::equal(io::load_image(path("small.png")), image));
  }
  for (const char* bad : {"", "abc", "64M", "0", "-5"}) {
    PixelLimit limit(bad);
    EXPECT_EQ(error_of([] { io::max_image_pixels(); }),
              "P2L_MAX_IMAGE_PIXELS=" + std::string(bad) +
                  ": expected a positive whole number of pixels");
  }
  EXPECT_EQ(io::max_image_pixels(), io::kDefaultMaxImagePixels);
}

TEST(Image, TruncatedOrDamagedFilesAreOneLine) {
  io::save_png(path("whole.png"), test_image(40, 50));
  auto png = read_bytes(path("whole.png"));
  png.resize(png.size() / 2);
  EXPECT_NE(image_load_error(write_bytes("half.png", png))
                .find("cannot decode PNG (libpng: the file ends early (truncated))"),
            std::string::npos);
  png = read_bytes(path("whole.png"));
  png[40] ^= 0xFF;  // inside IDAT: its CRC no longer matches
  EXPECT_NE(image_load_error(write_bytes("flipped.png", png)).find("cannot decode PNG (libpng: "),
            std::string::npos);

  auto jpg = read_bytes(kData / "images" / "gradient_420.jpg");
  for (size_t keep : {jpg.size() * 3 / 4, jpg.size() / 2, size_t{200}, size_t{3}}) {
    SCOPED_TRACE(keep);
    const Bytes cut(jpg.begin(), jpg.begin() + static_cast<std::ptrdiff_t>(keep));
    EXPECT_NE(image_load_error(write_bytes("cut.jpg", cut)).find("cannot decode JPEG (libjpeg: "),
              std::string::npos);
  }
  EXPECT_NE(image_load_error((kData / "regressions" / "stb_jpeg_huffman_oob.jpg").string())
                .find("cannot decode JPEG (libjpeg: "),
            std::string::npos);
}

TEST(Image, HostileFilesThroughTheCliAreOneLineWithoutGrowing) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {(kData / "regressions" / "stb_jpeg_huffman_oob.jpg").string(), "cannot decode JPEG"},
      {(kData / "regressions" / "stb_tga_bomb.tga").string(), "not a PNG or JPEG file"},
      {write_bytes("cli.bmp", bmp_16000()), "not a PNG or JPEG file"},
      {write_bytes("cli.ppm", ppm_16000()), "not a PNG or JPEG file"},
      {write_bytes("cli.tga", tga_16000()), "not a PNG or JPEG file"},
      {write_bytes("cli_garbage", garbage_39()), "not a PNG or JPEG file"},
      {write_bytes("cli_huge.png", png_claiming(100000, 100000)), "over the limit of 67108864"},
      {write_bytes("cli_huge.jpg", jpeg_claiming(65500, 65500)), "over the limit of 67108864"}};
  for (const auto& [file, expected] : cases) {
    SCOPED_TRACE(file);
    const auto r = run_p2l_capped("degrade --task sr " + file + " -o " + path("cli_out"));
    expect_one_line_error(r, file + ": ");
    EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  }
  // The cap leaves room for a normal run.
  io::save_png(path("fine.png"), test_image(64, 64));
  const auto ok = run_p2l_capped("degrade --task sr " + path("fine.png") + " -o " + path("fine_y"));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST(Image, SavePngRoundTripsBitForBit) {
  torch::manual_seed(3);
  const auto image = io::to_signed((torch::rand({1, 3, 17, 31}) * 255).round() / 255);
  io::save_png(path("rt.png"), image);
  EXPECT_TRUE(torch::equal(io::load_image(path("rt.png")), image));
  // Any tensor: clamped, and rounded to the nearest of the 256 levels (halves away from zero).
  const auto any = torch::rand({3, 9, 7}) * 2.4 - 1.2;
  io::save_png(path("any.png"), any);
  const auto levels = (io::to_unit(any).clamp(0, 1) * 255).round();
  EXPECT_TRUE(
      torch::equal(io::load_image(path("any.png")), io::to_signed(levels / 255).unsqueeze(0)));
  // One channel: a grey PNG whose 8-bit levels are exactly the rounded values.
  const auto ramp = torch::arange(256, torch::kFloat).view({1, 16, 16});
  io::save_png(path("grey.png"), ramp / 255 * 2 - 1);
  EXPECT_TRUE(torch::equal(io::load_image_gray8(path("grey.png")), ramp[0].to(torch::kUInt8)));
  EXPECT_TRUE(torch::equal(io::load_image(path("grey.png")),
                           (ramp / 255 * 2 - 1).expand({3, 16, 16}).unsqueeze(0)));
  EXPECT_FALSE(fs::exists(path("rt.png.tmp.png")));
  EXPECT_NE(error_of([] {
              io::save_png(path("nowhere/x.png"), torch::zeros({3, 2, 2}));
            }).find("nowhere/x.png: cannot write PNG ("),
            std::string::npos);
}

// Small PNGs of each kind (palette and tRNS, grey of 1–16 bits, 16-bit colour and alpha,
// interlaced, a gAMA chunk that is ignored) with the RGBA and grey bytes stb_image decoded from
// them, recorded when p2l still used it (tests/data/images/README.md).
TEST(Image, PngKindsDecodeAsStbDid) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(kData / "images")) {
    if (entry.path().extension() != ".png") continue;
    SCOPED_TRACE(entry.path().filename().string());
    auto expected_path = entry.path();
    const auto expected = read_bytes(expected_path.replace_extension(".stb"));
    const auto rgb = io::load_image(entry.path().string());
    const auto grey = io::load_image_gray8(entry.path().string());
    const int64_t h = grey.size(0), w = grey.size(1);
    ASSERT_EQ(expected.size(), static_cast<size_t>(w * h * 5));
    auto bytes = torch::from_blob(const_cast<unsigned char*>(expected.data()),
                                  {static_cast<int64_t>(expected.size())}, torch::kUInt8);
    const auto rgba = bytes.slice(0, 0, w * h * 4).view({h, w, 4}).to(torch::kFloat) / 255.0;
    const auto alpha = rgba.slice(2, 3, 4);
    const auto unit = rgba.slice(2, 0, 3) * alpha + (1 - alpha);
    EXPECT_TRUE(torch::equal(rgb, io::to_signed(unit.permute({2, 0, 1}).unsqueeze(0))));
    EXPECT_TRUE(torch::equal(grey, bytes.slice(0, w * h * 4).view({h, w})));
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

// gradient_*.jpg: test_image(48, 64) encoded by libjpeg at quality 95 in each colour layout p2l
// reads (tests/data/images/README.md).
TEST(Image, JpegKindsDecodeCloseToWhatWasEncoded) {
  const auto source = io::to_unit(test_image(48, 64));
  const auto luma = 255 * (0.299 * source[0][0] + 0.587 * source[0][1] + 0.114 * source[0][2]);
  for (const std::string kind : {"420", "444_progressive", "rgb", "cmyk", "ycck", "grey"}) {
    SCOPED_TRACE(kind);
    const auto file = (kData / "images" / ("gradient_" + kind + ".jpg")).string();
    const auto rgb = io::load_image(file);
    ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{1, 3, 48, 64}));
    const auto grey = io::load_image_gray8(file);
    ASSERT_EQ(grey.sizes(), (std::vector<int64_t>{48, 64}));
    if (kind == "grey") {
      EXPECT_TRUE(torch::equal(rgb[0][0], rgb[0][1]) && torch::equal(rgb[0][0], rgb[0][2]));
      EXPECT_TRUE(torch::equal(rgb[0][0], io::to_signed(grey.to(torch::kFloat) / 255.0)));
    } else {
      const double mse = (io::to_unit(rgb) - source).pow(2).mean().item<double>();
      EXPECT_GT(-10 * std::log10(mse), 35.0);
    }
    const auto bytes = (io::to_unit(rgb)[0] * 255).round().to(torch::kInt);
    if (kind == "rgb" || kind == "cmyk") {  // grey of colour: the integer luma of its pixels
      const auto expected = (77 * bytes[0] + 150 * bytes[1] + 29 * bytes[2]) / 256;
      EXPECT_TRUE(torch::equal(grey, expected.to(torch::kUInt8)));
    } else {  // grey of YCbCr (and YCCK): the stored Y, close to the luma of the source
      EXPECT_LT((grey.to(torch::kFloat) - luma).abs().max().item<float>(), 6.0f);
    }
  }
}

}  // namespace
}  // namespace p2l::test
