#include "p2l/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <unordered_map>

#include "p2l/error.h"
#include "p2l/io/json_file.h"

// The format stores little-endian data and we memcpy it straight into tensors.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little-endian");

namespace p2l::io {
namespace {

constexpr uint64_t kMaxHeaderSize = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

[[noreturn]] void fail(const std::string& path, const std::string& defect) {
  throw Error("safetensors '" + path + "': " + defect);
}

std::string errno_text() { return std::strerror(errno); }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Reads exactly `size` bytes at `offset`; false on error or end of file.
bool pread_all(int fd, void* dst, size_t size, uint64_t offset) {
  auto* out = static_cast<char*>(dst);
  while (size > 0) {
    ssize_t n = ::pread(fd, out, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

bool write_all(int fd, const void* src, size_t size) {
  const auto* in = static_cast<const char*>(src);
  while (size > 0) {
    ssize_t n = ::write(fd, in, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    in += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// A JSON integer >= 0 that fits the range [0, max]; nlohmann parses such literals as unsigned.
bool as_uint(const nlohmann::json& j, uint64_t max, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  uint64_t v = j.get<uint64_t>();
  if (v > max) return false;
  *out = v;
  return true;
}

// Parses the header, rejecting duplicate keys, which nlohmann would silently collapse.
nlohmann::json parse_header(const std::string& path, const char* data, size_t size) {
  std::vector<std::set<std::string>> keys;  // one key set per open object
  std::string duplicate;
  bool duplicate_is_tensor = false;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      keys.emplace_back();
    } else if (event == Event::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == Event::key && !keys.empty() && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(key).second) {
        duplicate = key;
        duplicate_is_tensor = keys.size() == 1;
      }
    }
    return true;
  };
  nlohmann::json header;
  check_json_depth(std::string_view(data, size), "safetensors '" + path + "': header");
  try {
    header = nlohmann::json::parse(data, data + size, callback);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("malformed JSON header: ") + e.what());
  }
  if (!duplicate.empty()) {
    fail(path, duplicate_is_tensor ? "duplicate tensor name '" + duplicate + "' in header"
                                   : "duplicate key '" + duplicate + "' in header");
  }
  if (!header.is_object()) fail(path, "malformed header: JSON is not an object");
  return header;
}

TensorInfo parse_entry(const std::string& path, const std::string& name,
                       const nlohmann::json& entry) {
  const std::string where = "tensor '" + name + "': ";
  if (!entry.is_object()) fail(path, where + "entry is not a JSON object");
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(field)) fail(path, where + "missing \"" + field + "\"");
  }
  for (const auto& item : entry.items()) {
    if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets") {
      fail(path, where + "unexpected key \"" + item.key() + "\"");
    }
  }

  TensorInfo info;
  info.name = name;
  const auto& dtype = entry["dtype"];
  if (!dtype.is_string()) fail(path, where + "\"dtype\" is not a string");
  try {
    info.dtype = dtype_from_name(dtype.get<std::string>());
  } catch (const Error&) {
    fail(path, where + "unknown dtype '" + dtype.get<std::string>() + "'");
  }

  const auto& shape = entry["shape"];
  if (!shape.is_array()) fail(path, where + "\"shape\" is not an array");
  uint64_t numel = 1;  // a scalar (shape []) has one element
  for (const auto& dim : shape) {
    uint64_t d = 0;
    if (!as_uint(dim, static_cast<uint64_t>(INT64_MAX), &d)) {
      fail(path, where + "\"shape\" " + dim.dump() + " is not a non-negative integer");
    }
    info.shape.push_back(static_cast<int64_t>(d));
    if (__builtin_mul_overflow(numel, d, &numel)) fail(path, where + "shape is too large");
  }

  const auto& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !as_uint(offsets[0], UINT64_MAX, &info.begin) ||
      !as_uint(offsets[1], UINT64_MAX, &info.end)) {
    fail(path, where + "\"data_offsets\" " + offsets.dump() +
                   " is not an array of 2 non-negative integers");
  }
  if (info.begin > info.end) {
    fail(path, where + "\"data_offsets\" " + offsets.dump() + " has begin > end");
  }

  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(info.dtype)), &nbytes)) {
    fail(path, where + "shape is too large");
  }
  if (info.end - info.begin != nbytes) {
    fail(path, where + "shape-size mismatch: shape " + shape_text(info.shape) + " of " +
                   dtype_name(info.dtype) + " needs " + std::to_string(nbytes) +
                   " bytes but data_offsets span " + std::to_string(info.end - info.begin));
  }
  return info;
}

}  // namespace

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F64:
      return "F64";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::BOOL:
      return "BOOL";
  }
  throw Error("safetensors: invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

DType dtype_from_name(const std::string& name) {
  static const std::map<std::string, DType> kByName = {
      {"F32", DType::F32}, {"F16", DType::F16},  {"BF16", DType::BF16}, {"F64", DType::F64},
      {"I64", DType::I64}, {"I32", DType::I32},  {"I16", DType::I16},   {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  auto it = kByName.find(name);
  if (it == kByName.end()) throw Error("safetensors: unknown dtype '" + name + "'");
  return it->second;
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
      return 1;
  }
  throw Error("safetensors: invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

torch::ScalarType to_torch(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return torch::kFloat32;
    case DType::F16:
      return torch::kHalf;
    case DType::BF16:
      return torch::kBFloat16;
    case DType::F64:
      return torch::kFloat64;
    case DType::I64:
      return torch::kInt64;
    case DType::I32:
      return torch::kInt32;
    case DType::I16:
      return torch::kInt16;
    case DType::I8:
      return torch::kInt8;
    case DType::U8:
      return torch::kByte;
    case DType::BOOL:
      return torch::kBool;
  }
  throw Error("safetensors: invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

DType from_torch(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32:
      return DType::F32;
    case torch::kHalf:
      return DType::F16;
    case torch::kBFloat16:
      return DType::BF16;
    case torch::kFloat64:
      return DType::F64;
    case torch::kInt64:
      return DType::I64;
    case torch::kInt32:
      return DType::I32;
    case torch::kInt16:
      return DType::I16;
    case torch::kInt8:
      return DType::I8;
    case torch::kByte:
      return DType::U8;
    case torch::kBool:
      return DType::BOOL;
    default:
      break;
  }
  throw Error(std::string("safetensors: unsupported torch dtype ") + c10::toString(type));
}

struct SafeTensorsFile::Impl {
  std::string path;
  int fd = -1;                // kept open only when reading with pread
  const char* map = nullptr;  // whole file, when mmap succeeded
  uint64_t file_size = 0;
  uint64_t data_start = 0;  // 8 + header length
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string, size_t> index;
  std::map<std::string, std::string> metadata;

  ~Impl() {
    if (map != nullptr) ::munmap(const_cast<char*>(map), file_size);
    if (fd >= 0) ::close(fd);
  }

  void read(void* dst, size_t size, uint64_t offset) const {
    if (size == 0) return;
    if (map != nullptr) {
      std::memcpy(dst, map + offset, size);
    } else if (!pread_all(fd, dst, size, offset)) {
      fail(path, "read of " + std::to_string(size) + " bytes at offset " + std::to_string(offset) +
                     " failed: " + errno_text());
    }
  }

  void open();
  void validate_layout();
};

void SafeTensorsFile::Impl::open() {
  fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(path, "cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    fail(path, "file is truncated: " + std::to_string(file_size) +
                   " bytes, shorter than the 8-byte header length");
  }

  void* m = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m != MAP_FAILED) {
    map = static_cast<const char*>(m);
    ::close(fd);  // the mapping stays valid without the descriptor
    fd = -1;
  }  // else: fall back to pread on fd

  uint64_t header_size = 0;
  read(&header_size, 8, 0);
  if (header_size > kMaxHeaderSize) {
    fail(path, "header length " + std::to_string(header_size) + " exceeds the " +
                   std::to_string(kMaxHeaderSize) + "-byte limit");
  }
  if (header_size > file_size - 8) {
    fail(path, "header length " + std::to_string(header_size) +
                   " runs beyond the end of the file (" + std::to_string(file_size) +
                   " bytes; truncated?)");
  }
  data_start = 8 + header_size;

  std::string text(header_size, '\0');
  read(text.data(), text.size(), 8);
  // nlohmann accepts surrounding whitespace, which covers the format's space padding.
  nlohmann::json header = parse_header(path, text.data(), text.size());

  for (const auto& item : header.items()) {
    if (item.key() == kMetadataKey) {
      if (!item.value().is_object()) fail(path, "__metadata__ is not a JSON object");
      for (const auto& kv : item.value().items()) {
        if (!kv.value().is_string()) {
          fail(path, "__metadata__ value for key '" + kv.key() + "' is not a string");
        }
        metadata.emplace(kv.key(), kv.value().get<std::string>());
      }
      continue;
    }
    tensors.push_back(parse_entry(path, item.key(), item.value()));
  }
  validate_layout();
  for (size_t i = 0; i < tensors.size(); ++i) index.emplace(tensors[i].name, i);
}

// The data buffer must be tiled exactly by the tensors, in offset order.
void SafeTensorsFile::Impl::validate_layout() {
  const uint64_t data_size = file_size - data_start;
  for (const auto& t : tensors) {
    if (t.end > data_size) {
      fail(path, "tensor '" + t.name + "': data_offsets [" + std::to_string(t.begin) + ", " +
                     std::to_string(t.end) + "] out of range: data buffer has " +
                     std::to_string(data_size) + " bytes (file truncated?)");
    }
  }
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const auto& t : tensors) {
    if (t.begin < expected) {
      fail(path, "tensor '" + t.name + "' [" + std::to_string(t.begin) + ", " +
                     std::to_string(t.end) + ") is overlapping tensor '" + prev->name + "' [" +
                     std::to_string(prev->begin) + ", " + std::to_string(prev->end) + ")");
    }
    if (t.begin > expected) {
      fail(path, "non-contiguous data: gap of " + std::to_string(t.begin - expected) +
                     " bytes before tensor '" + t.name + "' (begins at " + std::to_string(t.begin) +
                     ", expected " + std::to_string(expected) + ")");
    }
    expected = t.end;
    prev = &t;
  }
  if (expected != data_size) {
    fail(path, "non-contiguous data: gap of " + std::to_string(data_size - expected) +
                   " bytes after the last tensor (data buffer has " + std::to_string(data_size) +
                   " bytes, tensors cover " + std::to_string(expected) + ")");
  }
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->open();
}

SafeTensorsFile::~SafeTensorsFile() = default;
SafeTensorsFile::SafeTensorsFile(SafeTensorsFile&&) noexcept = default;
SafeTensorsFile& SafeTensorsFile::operator=(SafeTensorsFile&&) noexcept = default;

const std::string& SafeTensorsFile::path() const { return impl_->path; }

const std::vector<TensorInfo>& SafeTensorsFile::tensors() const { return impl_->tensors; }

bool SafeTensorsFile::contains(const std::string& name) const {
  return impl_->index.count(name) != 0;
}

const TensorInfo& SafeTensorsFile::info(const std::string& name) const {
  auto it = impl_->index.find(name);
  if (it == impl_->index.end()) fail(impl_->path, "no tensor named '" + name + "'");
  return impl_->tensors[it->second];
}

const std::map<std::string, std::string>& SafeTensorsFile::metadata() const {
  return impl_->metadata;
}

torch::Tensor SafeTensorsFile::load(const std::string& name) const {
  const TensorInfo& t = info(name);
  torch::Tensor out = torch::empty(t.shape, torch::TensorOptions().dtype(to_torch(t.dtype)));
  const size_t nbytes = static_cast<size_t>(t.end - t.begin);
  if (static_cast<size_t>(out.nbytes()) != nbytes) {
    fail(impl_->path, "tensor '" + name + "': internal size mismatch");
  }
  impl_->read(out.data_ptr(), nbytes, impl_->data_start + t.begin);
  return out;
}

std::map<std::string, torch::Tensor> SafeTensorsFile::load_all() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& t : impl_->tensors) out.emplace(t.name, load(t.name));
  return out;
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Validate and stage everything before creating any file.
  std::vector<torch::Tensor> cpu;
  cpu.reserve(tensors.size());
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  // "format": "pt" unless the caller says otherwise: the Hugging Face writers always put it
  // there, and transformers' from_pretrained refuses a file without it.
  auto all_metadata = metadata;
  all_metadata.emplace("format", "pt");
  auto& meta = header[kMetadataKey] = nlohmann::ordered_json::object();
  for (const auto& [key, value] : all_metadata) meta[key] = value;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == kMetadataKey) fail(path, "tensor name '" + name + "' is reserved");
    if (!names.insert(name).second) fail(path, "duplicate tensor name '" + name + "'");
    if (!tensor.defined()) fail(path, "tensor '" + name + "' is undefined");
    DType dtype;
    try {
      dtype = from_torch(tensor.scalar_type());
    } catch (const Error&) {
      fail(path, "tensor '" + name + "': unsupported dtype " + c10::toString(tensor.scalar_type()));
    }
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(t.nbytes());
    header[name] = {{"dtype", dtype_name(dtype)},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(std::move(t));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned in the file
  const uint64_t header_size = text.size();

  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(tmp, "cannot create: " + errno_text());
  auto abort_write = [&](const std::string& what) {
    const std::string reason = what + ": " + errno_text();
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(tmp, reason);
  };
  if (!write_all(fd, &header_size, 8) || !write_all(fd, text.data(), text.size())) {
    abort_write("write failed");
  }
  for (const auto& t : cpu) {
    if (!write_all(fd, t.data_ptr(), static_cast<size_t>(t.nbytes()))) abort_write("write failed");
  }
  if (::fsync(fd) != 0) abort_write("fsync failed");
  if (::close(fd) != 0) {
    const std::string reason = errno_text();
    ::unlink(tmp.c_str());
    fail(tmp, "close failed: " + reason);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = errno_text();
    ::unlink(tmp.c_str());
    fail(path, "cannot rename from '" + tmp + "': " + reason);
  }
}

}  // namespace p2l::io
