#include "p2l/io/image.h"

// libpng and libjpeg-turbo (Debian's libpng-dev, libjpeg62-turbo-dev). Both report errors by
// longjmp; every call into them goes through png_guarded / jpeg_guarded, whose frames (and the
// steps they run) hold no object with a destructor, so the jump skips nothing that needs one.
// The structs, the file and the pixel buffers are owned by RAII holders in the calling frames.
#include <jpeglib.h>
// jerror.h needs jpeglib.h first.
#include <jerror.h>
#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "p2l/error.h"

namespace p2l::io {
namespace {

namespace fs = std::filesystem;

// Until this change p2l decoded with stb_image; every rule below that says "as stb did" keeps
// the pixels it produced, so results and goldens made with it stay bit for bit the same.

// stb_image's integer luma (and the rule p2l's grey kernels and masks were made with).
inline uint32_t luma(uint32_t r, uint32_t g, uint32_t b) {
  return (77 * r + 150 * g + 29 * b) >> 8;
}

// x · y / 255 rounded, for inverted (Adobe) CMYK, exactly as stb_image computed it.
inline uint8_t blinn(uint32_t x, uint32_t y) {
  const uint32_t t = x * y + 128;
  return static_cast<uint8_t>((t + (t >> 8)) >> 8);
}

// A progressive JPEG can have any number of scans and each one passes over the whole image: a
// file of a few KB with thousands of tiny scans keeps a decoder busy for minutes. Encoders write
// about ten (libjpeg's default progression has 10).
constexpr int kMaxJpegScans = 500;

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

enum class Format { kPng, kJpeg };
enum class Want { kRgba, kGray8 };

// The file, open at its start, and its format by its first bytes.
std::pair<File, Format> open_image(const std::string& path) {
  if (!fs::exists(path)) throw Error(path + ": no such image file");
  if (fs::is_directory(path)) throw Error(path + ": is a folder, not an image file");
  File file(std::fopen(path.c_str(), "rb"));
  if (!file) throw Error(path + ": cannot open image file (" + std::strerror(errno) + ")");
  unsigned char magic[8] = {};
  const size_t n = std::fread(magic, 1, sizeof magic, file.get());
  std::rewind(file.get());
  if (n == sizeof magic && png_sig_cmp(magic, 0, sizeof magic) == 0)
    return {std::move(file), Format::kPng};
  if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF)
    return {std::move(file), Format::kJpeg};
  throw Error(path + ": not a PNG or JPEG file (p2l reads PNG and JPEG images, recognised by " +
              "their first bytes)");
}

torch::Tensor allocate(Want want, int64_t height, int64_t width) {
  return want == Want::kRgba ? torch::empty({height, width, 4}, torch::kUInt8)
                             : torch::empty({height, width}, torch::kUInt8);
}

void check_pixel_count(const std::string& path, int64_t width, int64_t height) {
  const int64_t limit = max_image_pixels();
  // width and height are below 2^32 (PNG) or 2^16 (JPEG): the product does not overflow.
  if (width * height > limit)
    throw Error(path + ": its header claims " + std::to_string(width) + "×" +
                std::to_string(height) + " = " + std::to_string(width * height) +
                " pixels, over the limit of " + std::to_string(limit) +
                " (set P2L_MAX_IMAGE_PIXELS to change it)");
}

// ---- PNG ----------------------------------------------------------------------------------

struct PngFailure {
  char message[256] = "";
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* failure = static_cast<PngFailure*>(png_get_error_ptr(png));
  std::snprintf(failure->message, sizeof failure->message, "%s", message);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}

// libpng's own reader says "Read Error" for a truncated file too.
void read_png_bytes(png_structp png, png_bytep data, size_t length) {
  auto* file = static_cast<std::FILE*>(png_get_io_ptr(png));
  if (std::fread(data, 1, length, file) != length)
    png_error(png, std::ferror(file) ? "read error" : "the file ends early (truncated)");
}

// Runs step(png, info, arg) with libpng's error jump aimed here: false when libpng failed.
bool png_guarded(png_structp png, png_infop info, void (*step)(png_structp, png_infop, void*),
                 void* arg) {
  if (setjmp(png_jmpbuf(png))) return false;
  step(png, info, arg);
  return true;
}

struct PngReader {
  PngFailure failure;
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngReader() {
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, on_png_error, on_png_warning);
    if (png) info = png_create_info_struct(png);
  }
  ~PngReader() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;
};

// What the decoding steps read and write; plain data (no destructors in the guarded frames).
struct PngDecode {
  std::FILE* file = nullptr;
  png_uint_32 width = 0, height = 0;
  int channels = 0, bit_depth = 0;
  size_t row_bytes = 0;
  png_bytepp rows = nullptr;
};

// Want::kRgba: uint8 [H, W, 4]; Want::kGray8: uint8 [H, W].
torch::Tensor decode_png(const std::string& path, std::FILE* file, Want want) {
  PngReader reader;
  if (!reader.png || !reader.info) throw Error(path + ": cannot decode PNG (libpng set-up failed)");
  auto fail = [&] {
    return Error(path + ": cannot decode PNG (libpng: " + reader.failure.message + ")");
  };
  PngDecode d;
  d.file = file;
  const auto read_header = [](png_structp png, png_infop info, void* arg) {
    auto* d = static_cast<PngDecode*>(arg);
    png_set_read_fn(png, d->file, read_png_bytes);
    // Any size PNG allows reaches check_pixel_count, whose message names p2l's limit.
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    // Only IHDR, PLTE, tRNS, IDAT and IEND matter (as for stb): the others (text, ICC profiles,
    // possibly compressed) are skipped unread.
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, nullptr, -1);
    png_read_info(png, info);
    d->width = png_get_image_width(png, info);
    d->height = png_get_image_height(png, info);
  };
  if (!png_guarded(reader.png, reader.info, read_header, &d)) throw fail();
  check_pixel_count(path, d.width, d.height);

  const auto start = [](png_structp png, png_infop info, void* arg) {
    auto* d = static_cast<PngDecode*>(arg);
    // Palette → RGB, grey below 8 bits → 8 bits (scaled to 0–255), tRNS → alpha; 16-bit samples
    // are kept and reduced below as stb did. No gamma or colour-profile correction (neither did
    // stb).
    png_set_expand(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    d->channels = png_get_channels(png, info);
    d->bit_depth = png_get_bit_depth(png, info);
    d->row_bytes = png_get_rowbytes(png, info);
  };
  if (!png_guarded(reader.png, reader.info, start, &d)) throw fail();
  const int n = d.channels;
  if ((d.bit_depth != 8 && d.bit_depth != 16) || n < 1 || n > 4 ||
      d.row_bytes != size_t{d.width} * n * (d.bit_depth / 8))
    throw Error(path + ": cannot decode PNG (unexpected layout after expansion)");

  std::vector<uint8_t> raw(d.row_bytes * d.height);
  std::vector<png_bytep> rows(d.height);
  for (size_t y = 0; y < d.height; ++y) rows[y] = raw.data() + y * d.row_bytes;
  d.rows = rows.data();
  const auto read_rows = [](png_structp png, png_infop, void* arg) {
    png_read_image(png, static_cast<PngDecode*>(arg)->rows);
  };
  if (!png_guarded(reader.png, reader.info, read_rows, &d)) throw fail();

  // 16-bit samples become their high byte, after any luma is computed on all 16 bits (stb).
  const int shift = d.bit_depth == 16 ? 8 : 0;
  const size_t bytes = d.bit_depth / 8;
  const size_t count = size_t{d.width} * d.height;
  const uint8_t* p = raw.data();
  auto sample = [&](size_t i) -> uint32_t {
    return bytes == 1 ? p[i] : (uint32_t{p[2 * i]} << 8) | p[2 * i + 1];
  };
  auto decoded = allocate(want, d.height, d.width);
  uint8_t* out = decoded.data_ptr<uint8_t>();
  for (size_t i = 0; i < count; ++i) {
    const size_t at = i * n;
    if (want == Want::kGray8) {
      out[i] = static_cast<uint8_t>(
          (n >= 3 ? luma(sample(at), sample(at + 1), sample(at + 2)) : sample(at)) >> shift);
    } else {
      const uint32_t r = sample(at) >> shift;
      const uint32_t g = n >= 3 ? sample(at + 1) >> shift : r;
      const uint32_t b = n >= 3 ? sample(at + 2) >> shift : r;
      const uint32_t a = n == 2 || n == 4 ? sample(at + n - 1) >> shift : 255;
      out[4 * i] = static_cast<uint8_t>(r);
      out[4 * i + 1] = static_cast<uint8_t>(g);
      out[4 * i + 2] = static_cast<uint8_t>(b);
      out[4 * i + 3] = static_cast<uint8_t>(a);
    }
  }
  return decoded;
}

// ---- JPEG ---------------------------------------------------------------------------------

struct JpegErrors {
  jpeg_error_mgr manager;  // first: libjpeg sees a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void on_jpeg_error(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

// libjpeg reports corrupt or missing data as a warning and fills the rest of the image with
// grey; p2l refuses such a file rather than restore half an image. Warnings about harmless
// irregularities (padding bytes between markers, unknown versions) are ignored; trace messages too.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  switch (cinfo->err->msg_code) {
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_JFIF_MAJOR:
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_ICC:
      return;
    default:
      on_jpeg_error(cinfo);
  }
}

void on_jpeg_progress(j_common_ptr cinfo) {
  const auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
    std::snprintf(errors->message, sizeof errors->message,
                  "more than %d progressive scans; refused as a decoding bomb", kMaxJpegScans);
    std::longjmp(errors->jump, 1);
  }
}

// Runs step(cinfo, arg) with libjpeg's error jump aimed here: false when libjpeg failed.
bool jpeg_guarded(j_decompress_ptr cinfo, void (*step)(j_decompress_ptr, void*), void* arg) {
  if (setjmp(reinterpret_cast<JpegErrors*>(cinfo->err)->jump)) return false;
  step(cinfo, arg);
  return true;
}

struct JpegReader {
  JpegErrors errors{};
  jpeg_progress_mgr progress{};
  jpeg_decompress_struct cinfo{};  // zeroed: destroying it is safe even if creating it failed
  JpegReader() {
    cinfo.err = jpeg_std_error(&errors.manager);
    errors.manager.error_exit = on_jpeg_error;
    errors.manager.emit_message = on_jpeg_message;
    progress.progress_monitor = on_jpeg_progress;
  }
  ~JpegReader() { jpeg_destroy_decompress(&cinfo); }
  JpegReader(const JpegReader&) = delete;
  JpegReader& operator=(const JpegReader&) = delete;
};

struct JpegDecode {
  std::FILE* file = nullptr;
  jpeg_progress_mgr* progress = nullptr;
  J_COLOR_SPACE out_space = JCS_UNKNOWN;
  uint8_t* pixels = nullptr;  // output_height rows of output_width × output_components
};

torch::Tensor decode_jpeg(const std::string& path, std::FILE* file, Want want) {
  JpegReader reader;
  j_decompress_ptr cinfo = &reader.cinfo;
  auto fail = [&] {
    return Error(path + ": cannot decode JPEG (libjpeg: " + reader.errors.message + ")");
  };
  JpegDecode d;
  d.file = file;
  d.progress = &reader.progress;
  const auto read_header = [](j_decompress_ptr cinfo, void* arg) {
    auto* d = static_cast<JpegDecode*>(arg);
    jpeg_create_decompress(cinfo);
    cinfo->progress = d->progress;
    jpeg_stdio_src(cinfo, d->file);
    jpeg_read_header(cinfo, TRUE);
  };
  if (!jpeg_guarded(cinfo, read_header, &d)) throw fail();
  check_pixel_count(path, cinfo->image_width, cinfo->image_height);

  // Colour as stb_image read it. 3 components are RGB when their ids are 'R', 'G', 'B' or an
  // Adobe marker says so (without JFIF), else YCbCr, whose grey is Y as stored. 4 components are
  // inverted CMYK with Adobe transform 0; otherwise the first three are YCbCr (Adobe transform 2:
  // YCCK, whose K darkens them), which libjpeg hands out inverted as "CMYK".
  const int components = cinfo->num_components;
  const bool adobe = cinfo->saw_Adobe_marker;
  bool rgb_ids = components == 3;
  for (int k = 0; k < 3 && rgb_ids; ++k) rgb_ids = cinfo->comp_info[k].component_id == "RGB"[k];
  const bool is_rgb = rgb_ids || (components == 3 && adobe && cinfo->Adobe_transform == 0 &&
                                  !cinfo->saw_JFIF_marker);
  const bool cmyk = components == 4 && adobe && cinfo->Adobe_transform == 0;
  const bool ycck = components == 4 && adobe && cinfo->Adobe_transform == 2;
  int out_components = 0;
  if (components == 1) {
    cinfo->jpeg_color_space = JCS_GRAYSCALE;
    d.out_space = JCS_GRAYSCALE;
    out_components = 1;
  } else if (components == 3) {
    cinfo->jpeg_color_space = is_rgb ? JCS_RGB : JCS_YCbCr;
    d.out_space = want == Want::kGray8 && !is_rgb ? JCS_GRAYSCALE : JCS_RGB;
    out_components = d.out_space == JCS_GRAYSCALE ? 1 : 3;
  } else if (components == 4) {
    cinfo->jpeg_color_space = cmyk ? JCS_CMYK : JCS_YCCK;
    d.out_space = cmyk || want == Want::kRgba ? JCS_CMYK : JCS_YCCK;
    out_components = 4;
  } else {
    throw Error(path + ": cannot decode JPEG (" + std::to_string(components) +
                " colour components; p2l reads 1, 3 or 4)");
  }
  const int64_t w = cinfo->image_width, h = cinfo->image_height;
  std::vector<uint8_t> pixels(static_cast<size_t>(w * h * out_components));
  d.pixels = pixels.data();
  const auto decode = [](j_decompress_ptr cinfo, void* arg) {
    auto* d = static_cast<JpegDecode*>(arg);
    cinfo->out_color_space = d->out_space;
    cinfo->dct_method = JDCT_ISLOW;  // the exact integer IDCT (also stb's)
    jpeg_start_decompress(cinfo);
    const size_t stride = size_t{cinfo->output_width} * cinfo->output_components;
    while (cinfo->output_scanline < cinfo->output_height) {
      JSAMPROW row = d->pixels + cinfo->output_scanline * stride;
      if (jpeg_read_scanlines(cinfo, &row, 1) != 1) ERREXIT(cinfo, JERR_INPUT_EOF);
    }
  };
  if (!jpeg_guarded(cinfo, decode, &d)) throw fail();
  if (cinfo->output_width != w || cinfo->output_height != h ||
      cinfo->output_components != out_components)
    throw Error(path + ": cannot decode JPEG (unexpected output layout)");

  auto decoded = allocate(want, h, w);
  uint8_t* out = decoded.data_ptr<uint8_t>();
  const uint8_t* p = pixels.data();
  for (int64_t i = 0; i < w * h; ++i, p += out_components) {
    uint8_t r, g, b;
    if (out_components == 1) {
      r = g = b = p[0];
    } else if (out_components == 3) {
      r = p[0], g = p[1], b = p[2];
    } else if (d.out_space == JCS_YCCK) {  // grey of YCCK (Y darkened by K) or of YCbCr + X (Y)
      r = g = b = ycck ? blinn(255 - p[0], p[3]) : p[0];
    } else if (cmyk || ycck) {  // inverted CMYK (libjpeg's YCCK → CMYK gives 255 − R, …)
      r = blinn(p[0], p[3]), g = blinn(p[1], p[3]), b = blinn(p[2], p[3]);
    } else {  // YCbCr + an unknown fourth component, which stb ignored
      r = 255 - p[0], g = 255 - p[1], b = 255 - p[2];
    }
    if (want == Want::kGray8) {
      out[i] = out_components == 3 || cmyk ? static_cast<uint8_t>(luma(r, g, b)) : r;
    } else {
      out[4 * i] = r, out[4 * i + 1] = g, out[4 * i + 2] = b, out[4 * i + 3] = 255;
    }
  }
  return decoded;
}

torch::Tensor decode(const std::string& path, Want want) {
  auto [file, format] = open_image(path);
  return format == Format::kPng ? decode_png(path, file.get(), want)
                                : decode_jpeg(path, file.get(), want);
}

// ---- writing ------------------------------------------------------------------------------

struct PngWrite {
  std::FILE* file = nullptr;
  png_uint_32 width = 0, height = 0;
  int channels = 0;
  const uint8_t* pixels = nullptr;
};

struct PngWriter {
  PngFailure failure;
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngWriter() {
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &failure, on_png_error, on_png_warning);
    if (png) info = png_create_info_struct(png);
  }
  ~PngWriter() {
    if (png) png_destroy_write_struct(&png, info ? &info : nullptr);
  }
  PngWriter(const PngWriter&) = delete;
  PngWriter& operator=(const PngWriter&) = delete;
};

}  // namespace

int64_t max_image_pixels() {
  const char* text = std::getenv("P2L_MAX_IMAGE_PIXELS");
  if (!text) return kDefaultMaxImagePixels;
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value <= 0)
    throw Error(std::string("P2L_MAX_IMAGE_PIXELS=") + text +
                ": expected a positive whole number of pixels");
  return value;
}

torch::Tensor load_image(const std::string& path) {
  auto rgba = decode(path, Want::kRgba).to(torch::kFloat) / 255.0;
  auto rgb = rgba.slice(2, 0, 3);
  auto alpha = rgba.slice(2, 3, 4);
  // Transparent pixels become white (emoji and icons are drawn on transparency).
  auto unit = rgb * alpha + (1 - alpha);
  return to_signed(unit.permute({2, 0, 1}).unsqueeze(0).contiguous());
}

torch::Tensor load_image_gray8(const std::string& path) { return decode(path, Want::kGray8); }

void save_png(const std::string& path, const torch::Tensor& image) {
  auto img = image.detach().to(torch::kCPU, torch::kFloat);
  if (img.dim() == 4) {
    if (img.size(0) != 1) throw Error(path + ": can only write one image per PNG");
    img = img.squeeze(0);
  }
  if (img.dim() != 3 || (img.size(0) != 3 && img.size(0) != 1))
    throw Error(path + ": expected a [3, H, W] image tensor, got " + c10::str(image.sizes()));
  auto bytes =
      (to_unit(img).clamp(0, 1) * 255).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
  const std::string tmp = path + ".tmp.png";
  PngWrite w;
  w.height = static_cast<png_uint_32>(bytes.size(0));
  w.width = static_cast<png_uint_32>(bytes.size(1));
  w.channels = static_cast<int>(bytes.size(2));
  w.pixels = bytes.data_ptr<uint8_t>();
  bool written = false;
  std::string why;
  {
    File file(std::fopen(tmp.c_str(), "wb"));
    if (!file) throw Error(path + ": cannot write PNG (" + std::strerror(errno) + ")");
    PngWriter writer;
    w.file = file.get();
    const auto write = [](png_structp png, png_infop info, void* arg) {
      const auto* w = static_cast<PngWrite*>(arg);
      png_init_io(png, w->file);
      png_set_IHDR(png, info, w->width, w->height, 8,
                   w->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                   PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
      png_write_info(png, info);
      const size_t stride = size_t{w->width} * w->channels;
      for (png_uint_32 y = 0; y < w->height; ++y) png_write_row(png, w->pixels + y * stride);
      png_write_end(png, nullptr);
    };
    if (!writer.png || !writer.info)
      why = "libpng set-up failed";
    else if (!png_guarded(writer.png, writer.info, write, &w))
      why = std::string("libpng: ") + writer.failure.message;
    else if (std::fclose(file.release()) != 0)
      why = std::strerror(errno);
    else
      written = true;
  }
  if (!written) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG (" + why + ")");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG (" + ec.message() + ")");
  }
}

}  // namespace p2l::io
