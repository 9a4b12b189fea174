#include "p2l/io/torch_checkpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "p2l/error.h"
#include "p2l/io/pickle.h"

namespace p2l::io {
namespace {

// torch.save's legacy format starts with this number, pickled (torch/serialization.py).
constexpr char kLegacyMagic[] = "\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
constexpr int64_t kLegacyProtocolVersion = 1001;
// Deflate cannot expand data by more than ~1032:1, so a larger claimed size is a lie that would
// make us allocate for data that does not exist.
constexpr uint64_t kMaxDeflateRatio = 1100;

[[noreturn]] void bad_checkpoint(const std::string& path, const std::string& defect) {
  throw Error(path + ": " + defect);
}

}  // namespace

struct TorchCheckpoint::Impl {
  // Where a storage's bytes are.
  struct StorageLocation {
    zip_uint64_t entry = 0;  // zip format
    bool stored = true;      // zip entry not compressed: seekable
    uint64_t offset = 0;     // legacy format: file offset of the first byte
  };

  std::string path;
  bool legacy = false;
  pickle::Pickle pickle;
  std::vector<TensorInfo> infos;
  std::vector<uint32_t> tensor_of;  // infos[i] is pickle.tensors[tensor_of[i]]
  std::unordered_map<std::string, size_t> index;
  std::vector<StorageLocation> locations;  // per pickle.storages entry

  zip_t* archive = nullptr;  // zip format; libzip handles are not thread-safe
  mutable std::mutex archive_mutex;
  const char* map = nullptr;  // legacy format: the whole file
  uint64_t file_size = 0;

  ~Impl() {
    if (archive != nullptr) zip_discard(archive);
    if (map != nullptr) ::munmap(const_cast<char*>(map), file_size);
  }

  void open_zip();
  void open_legacy(int fd);
  void read_storage(uint32_t storage, uint64_t first_byte, uint64_t nbytes, void* dst) const;
  std::string entry_error(zip_file_t* file) const { return zip_file_strerror(file); }
};

void TorchCheckpoint::Impl::open_zip() {
  int code = 0;
  archive = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (archive == nullptr) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    const std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    bad_checkpoint(path, "not a readable zip archive (" + text + "; truncated?)");
  }
  // torch.save names every entry <archive>/...; the pickle is <archive>/data.pkl.
  const zip_int64_t entries = zip_get_num_entries(archive, 0);
  std::string prefix;
  zip_int64_t pickle_entry = -1;
  for (zip_int64_t i = 0; i < entries && pickle_entry < 0; ++i) {
    const char* name = zip_get_name(archive, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
    if (name == nullptr) continue;
    const std::string n = name;
    const auto slash = n.find('/');
    if (slash != std::string::npos && n.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = n.substr(0, slash + 1);
      pickle_entry = i;
    }
  }
  if (pickle_entry < 0)
    bad_checkpoint(path, "a zip archive without <name>/data.pkl: not a torch.save file");

  auto stat_entry = [&](zip_uint64_t entry, const std::string& what) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive, entry, ZIP_FL_ENC_RAW, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) ||
        !(st.valid & ZIP_STAT_COMP_SIZE) || !(st.valid & ZIP_STAT_COMP_METHOD))
      bad_checkpoint(path, what + ": unreadable zip entry");
    if (st.comp_method == ZIP_CM_STORE ? st.comp_size != st.size
                                       : st.size / kMaxDeflateRatio > st.comp_size)
      bad_checkpoint(path, what + ": zip entry claims " + std::to_string(st.size) + " bytes from " +
                               std::to_string(st.comp_size) + " stored");
    if (st.comp_size > file_size) bad_checkpoint(path, what + ": zip entry larger than the file");
    return st;
  };

  // byteorder (torch >= 1.13) says how the storages were written; absent means little.
  const zip_int64_t order =
      zip_name_locate(archive, (prefix + "byteorder").c_str(), ZIP_FL_ENC_RAW);
  if (order >= 0) {
    const auto st = stat_entry(static_cast<zip_uint64_t>(order), "byteorder");
    char text[16] = {};
    zip_file_t* f = zip_fopen_index(archive, static_cast<zip_uint64_t>(order), 0);
    const zip_int64_t n = f && st.size < sizeof text ? zip_fread(f, text, st.size) : -1;
    if (f) zip_fclose(f);
    if (n < 0 || std::string(text) != "little")
      bad_checkpoint(path,
                     "storages are not little-endian (byteorder '" + std::string(text) + "')");
  }

  const auto st = stat_entry(static_cast<zip_uint64_t>(pickle_entry), "data.pkl");
  if (st.size > pickle::kMaxPickleBytes)
    bad_checkpoint(path, "data.pkl has " + std::to_string(st.size) + " bytes (limit " +
                             std::to_string(pickle::kMaxPickleBytes) + ")");
  std::string bytes(static_cast<size_t>(st.size), '\0');
  zip_file_t* f = zip_fopen_index(archive, static_cast<zip_uint64_t>(pickle_entry), 0);
  if (f == nullptr)
    bad_checkpoint(path, std::string("cannot open data.pkl: ") + zip_strerror(archive));
  const zip_int64_t n = zip_fread(f, bytes.data(), bytes.size());
  const std::string reason = n < 0 ? entry_error(f) : "";
  zip_fclose(f);
  if (n < 0 || static_cast<uint64_t>(n) != st.size)
    bad_checkpoint(path, "cannot read data.pkl (" + (reason.empty() ? "short read" : reason) + ")");
  pickle = pickle::read(bytes.data(), bytes.size(), path);

  for (const auto& s : pickle.storages) {
    const std::string entry = prefix + "data/" + s.key;
    const zip_int64_t i = zip_name_locate(archive, entry.c_str(), ZIP_FL_ENC_RAW);
    if (i < 0) bad_checkpoint(path, "storage '" + s.key + "' is missing (no entry " + entry + ")");
    const auto est = stat_entry(static_cast<zip_uint64_t>(i), "storage '" + s.key + "'");
    const uint64_t need = static_cast<uint64_t>(s.numel) * dtype_size(s.dtype);
    if (est.size < need)
      bad_checkpoint(path, "storage '" + s.key + "' claims " + std::to_string(s.numel) + " " +
                               dtype_name(s.dtype) + " elements (" + std::to_string(need) +
                               " bytes) but its entry holds " + std::to_string(est.size) +
                               " bytes");
    locations.push_back({static_cast<zip_uint64_t>(i), est.comp_method == ZIP_CM_STORE, 0});
  }
}

void TorchCheckpoint::Impl::open_legacy(int fd) {
  void* m = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED)
    bad_checkpoint(path, std::string("cannot map the file: ") + std::strerror(errno));
  map = static_cast<const char*>(m);

  uint64_t pos = 0;
  auto next = [&] {
    auto p = pickle::read(map + pos, file_size - pos, path);
    pos += p.end;
    return p;
  };
  auto magic = next();
  const auto& mv = magic.values[magic.root];
  if (mv.kind != pickle::Kind::BigInt || mv.text != std::string(kLegacyMagic, 10))
    bad_checkpoint(
        path, "not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save pickle)");
  auto version = next();
  const auto& vv = version.values[version.root];
  if (vv.kind != pickle::Kind::Int || vv.number != kLegacyProtocolVersion)
    bad_checkpoint(path, "legacy torch.save format with an unknown protocol version");
  auto info = next();
  const auto& iv = info.values[info.root];
  for (size_t i = 0; iv.kind == pickle::Kind::Dict && i + 1 < iv.items.size(); i += 2) {
    const auto& key = info.values[iv.items[i]];
    const auto& value = info.values[iv.items[i + 1]];
    if (key.kind == pickle::Kind::String && key.text == "little_endian" &&
        !(value.kind == pickle::Kind::Bool && value.number == 1))
      bad_checkpoint(path, "storages are not little-endian");
  }
  pickle = next();
  auto keys = next();
  const auto& kv = keys.values[keys.root];
  if (kv.kind != pickle::Kind::List)
    bad_checkpoint(path, "legacy format without its list of storage keys");

  std::unordered_map<std::string, uint32_t> by_key;
  for (uint32_t i = 0; i < pickle.storages.size(); ++i) by_key.emplace(pickle.storages[i].key, i);
  locations.assign(pickle.storages.size(), {});
  std::vector<bool> found(pickle.storages.size(), false);
  // Each storage: int64 element count, then its bytes, in the order of the key list.
  for (uint32_t id : kv.items) {
    const auto& key = keys.values[id];
    const auto it = key.kind == pickle::Kind::String ? by_key.find(key.text) : by_key.end();
    if (it == by_key.end())
      bad_checkpoint(path, "the legacy key list names a storage no tensor uses");
    const auto& s = pickle.storages[it->second];
    int64_t count = 0;
    if (file_size - pos < 8)
      bad_checkpoint(path, "storage '" + s.key + "' is cut off (truncated?)");
    std::memcpy(&count, map + pos, 8);
    if (count != s.numel)
      bad_checkpoint(path, "storage '" + s.key + "' holds " + std::to_string(count) +
                               " elements, " + std::to_string(s.numel) + " claimed");
    const uint64_t nbytes = static_cast<uint64_t>(s.numel) * dtype_size(s.dtype);
    if (file_size - pos - 8 < nbytes)
      bad_checkpoint(path, "storage '" + s.key + "' is cut off (truncated?)");
    locations[it->second].offset = pos + 8;
    found[it->second] = true;
    pos += 8 + nbytes;
  }
  for (size_t i = 0; i < found.size(); ++i)
    if (!found[i]) bad_checkpoint(path, "storage '" + pickle.storages[i].key + "' is missing");
}

void TorchCheckpoint::Impl::read_storage(uint32_t storage, uint64_t first_byte, uint64_t nbytes,
                                         void* dst) const {
  const auto& loc = locations[storage];
  const std::string& key = pickle.storages[storage].key;
  if (legacy) {
    std::memcpy(dst, map + loc.offset + first_byte, nbytes);
    return;
  }
  std::lock_guard<std::mutex> lock(archive_mutex);
  zip_file_t* f = zip_fopen_index(archive, loc.entry, 0);
  if (f == nullptr) bad_checkpoint(path, "storage '" + key + "': " + zip_strerror(archive));
  std::string reason;
  auto read_all = [&](char* out, uint64_t size) {
    while (size > 0) {
      const zip_int64_t n = zip_fread(f, out, size);
      if (n <= 0) return false;
      out += n;
      size -= static_cast<uint64_t>(n);
    }
    return true;
  };
  bool ok = true;
  if (first_byte > 0 && loc.stored) {
    ok = zip_fseek(f, static_cast<zip_int64_t>(first_byte), SEEK_SET) == 0;
  } else if (first_byte > 0) {  // compressed: inflate and drop what comes before
    std::vector<char> skip(std::min<uint64_t>(first_byte, 1 << 20));
    for (uint64_t left = first_byte; ok && left > 0;) {
      const uint64_t n = std::min<uint64_t>(left, skip.size());
      ok = read_all(skip.data(), n);
      left -= n;
    }
  }
  ok = ok && read_all(static_cast<char*>(dst), nbytes);
  if (!ok) reason = entry_error(f);
  zip_fclose(f);
  if (!ok) bad_checkpoint(path, "storage '" + key + "': read failed (" + reason + ")");
}

TorchCheckpoint::TorchCheckpoint(const std::string& path) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.path = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad_checkpoint(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  char head[4] = {};
  const bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  m.file_size = static_cast<uint64_t>(st.st_size);
  const ssize_t n = ok ? ::pread(fd, head, sizeof head, 0) : -1;
  try {
    if (!ok) bad_checkpoint(path, "not a regular file");
    if (n == 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) {
      m.open_zip();
    } else if (n >= 2 && static_cast<unsigned char>(head[0]) == 0x80) {
      m.legacy = true;
      m.open_legacy(fd);
    } else {
      bad_checkpoint(
          path, "not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save pickle)");
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // a mapping outlives its descriptor

  for (const auto& [name, tensor] : pickle::named_tensors(m.pickle, path)) {
    const auto& t = m.pickle.tensors[tensor];
    TensorInfo info;
    info.name = name;
    info.dtype = m.pickle.storages[t.storage].dtype;
    info.shape = t.shape;
    m.index.emplace(name, m.infos.size());
    m.infos.push_back(std::move(info));
    m.tensor_of.push_back(tensor);
  }
}

TorchCheckpoint::~TorchCheckpoint() = default;
TorchCheckpoint::TorchCheckpoint(TorchCheckpoint&&) noexcept = default;
TorchCheckpoint& TorchCheckpoint::operator=(TorchCheckpoint&&) noexcept = default;

const std::string& TorchCheckpoint::path() const { return impl_->path; }
bool TorchCheckpoint::legacy() const { return impl_->legacy; }
const std::vector<TensorInfo>& TorchCheckpoint::tensors() const { return impl_->infos; }
bool TorchCheckpoint::contains(const std::string& name) const {
  return impl_->index.count(name) != 0;
}

const TensorInfo& TorchCheckpoint::info(const std::string& name) const {
  const auto it = impl_->index.find(name);
  if (it == impl_->index.end()) bad_checkpoint(impl_->path, "no tensor named '" + name + "'");
  return impl_->infos[it->second];
}

torch::Tensor TorchCheckpoint::load(const std::string& name) const {
  const auto& info = this->info(name);
  const auto& t = impl_->pickle.tensors[impl_->tensor_of[impl_->index.at(name)]];
  const auto options = torch::TensorOptions().dtype(to_torch(info.dtype));
  int64_t numel = 1, span = 1;  // span: elements from the first to the last one addressed
  for (size_t i = 0; i < t.shape.size(); ++i) {
    numel *= t.shape[i];
    if (t.shape[i] > 0) span += (t.shape[i] - 1) * t.stride[i];
  }  // no overflow: pickle::read checked the view against its storage
  if (numel == 0) return torch::empty_strided(t.shape, t.stride, options);
  torch::Tensor buffer = torch::empty({span}, options);
  const uint64_t element = dtype_size(info.dtype);
  impl_->read_storage(t.storage, static_cast<uint64_t>(t.offset) * element,
                      static_cast<uint64_t>(span) * element, buffer.data_ptr());
  return buffer.as_strided(t.shape, t.stride, 0);
}

}  // namespace p2l::io
