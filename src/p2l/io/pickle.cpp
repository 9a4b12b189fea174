#include "p2l/io/pickle.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "p2l/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the pickle reader assumes little-endian");

namespace p2l::io::pickle {
namespace {

// --- the allow-list ---------------------------------------------------------------------------
//
// What each allowed global becomes. Nothing here is ever imported or called: the reader builds
// the value the global would have produced from its arguments, or an inert placeholder.
enum class Role {
  RebuildTensor,     // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
  RebuildParameter,  // torch._utils._rebuild_parameter(tensor, requires_grad, hooks)
  OrderedDict,       // collections.OrderedDict(): a dict
  StorageType,       // torch.FloatStorage etc.: only the type tag of a persistent id
  // Objects that real Stable Diffusion release files carry beside the weights (sd-v1-4.ckpt's
  // 'callbacks' entry is keyed by Lightning's ModelCheckpoint class, and some files store
  // 'global_step' or scores as numpy scalars, pickled through numpy.dtype and _codecs.encode).
  // They become opaque values: their arguments are dropped, they are never interpreted, and no
  // tensor is looked for inside them. Refusing them would refuse the SD release files; allowing
  // them costs nothing, since nothing is called. Any other global is refused.
  Opaque,
};

struct AllowedGlobal {
  Role role;
  DType dtype;  // StorageType only
};

const std::unordered_map<std::string, AllowedGlobal>& allow_list() {
  static const std::unordered_map<std::string, AllowedGlobal> kList = {
      {"torch._utils._rebuild_tensor_v2", {Role::RebuildTensor, DType::F32}},
      {"torch._utils._rebuild_parameter", {Role::RebuildParameter, DType::F32}},
      {"collections.OrderedDict", {Role::OrderedDict, DType::F32}},
      {"torch.FloatStorage", {Role::StorageType, DType::F32}},
      {"torch.HalfStorage", {Role::StorageType, DType::F16}},
      {"torch.BFloat16Storage", {Role::StorageType, DType::BF16}},
      {"torch.DoubleStorage", {Role::StorageType, DType::F64}},
      {"torch.LongStorage", {Role::StorageType, DType::I64}},
      {"torch.IntStorage", {Role::StorageType, DType::I32}},
      {"torch.ShortStorage", {Role::StorageType, DType::I16}},
      {"torch.CharStorage", {Role::StorageType, DType::I8}},
      {"torch.ByteStorage", {Role::StorageType, DType::U8}},
      {"torch.BoolStorage", {Role::StorageType, DType::BOOL}},
      {"pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint", {Role::Opaque, DType::F32}},
      {"numpy.core.multiarray.scalar", {Role::Opaque, DType::F32}},
      {"numpy.dtype", {Role::Opaque, DType::F32}},
      {"_codecs.encode", {Role::Opaque, DType::F32}},
  };
  return kList;
}

// --- opcodes (pickletools' names) -------------------------------------------------------------
enum Opcode : uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinString = 'T',
  kShortBinString = 'U',
  kBinUnicode = 'X',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kEmptyDict = '}',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kList = 'l',
  kEmptyList = ']',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kEmptyTuple = ')',
  kSetItems = 'u',
  kBinFloat = 'G',
  // protocol 2
  kProto = 0x80,
  kNewObj = 0x81,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kLong4 = 0x8b,
  // protocols 3 and 4: data only (torch.save(pickle_protocol=4) writes these)
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinBytes8 = 0x8e,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
};

struct Op {
  uint8_t code = 0;
  size_t pos = 0;               // offset of the opcode
  int64_t arg = 0;              // integer argument
  uint64_t real_bits = 0;       // BINFLOAT, host order
  const char* bytes = nullptr;  // string/bytes/long argument
  size_t length = 0;
};

// Names and keys from the file, fit for a one-line message.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += c >= 0x20 && c < 0x7f ? c : '?';
  return s.size() > 200 ? out + "..." : out;
}

std::string hex(uint8_t code) {
  static const char* kDigits = "0123456789abcdef";
  return std::string("0x") + kDigits[code >> 4] + kDigits[code & 15];
}

class Reader {
 public:
  Reader(const char* data, size_t size, const std::string& source)
      : data_(data), size_(std::min(size, kMaxPickleBytes)), source_(source) {}

  Pickle run() {
    scan();
    interpret();
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(size_t pos, const std::string& what) const {
    throw Error(source_ + ": malformed pickle at byte " + std::to_string(pos) + ": " + what);
  }
  [[noreturn]] void refuse(const std::string& global) const {
    throw Error(source_ + ": refuses to load: the pickle calls " + printable(global) +
                " (only tensors, dicts, lists and numbers are read)");
  }
  [[noreturn]] void too_deep() const {
    throw Error(source_ + ": refuses to load: the pickle nests containers deeper than " +
                std::to_string(kMaxDepth) + " levels");
  }

  // --- decoding ---

  const char* take(size_t& pos, size_t n, const Op& op) const {
    if (n > size_ - pos)
      fail(op.pos, "opcode " + hex(op.code) + " runs past the end of the pickle (truncated?)");
    const char* p = data_ + pos;
    pos += n;
    return p;
  }
  template <typename T>
  T little(size_t& pos, const Op& op) const {
    T v;
    std::memcpy(&v, take(pos, sizeof(T), op), sizeof(T));
    return v;
  }
  void counted(size_t& pos, Op& op, uint64_t n) const {
    if (n > kMaxStringBytes)
      fail(op.pos, "a string of " + std::to_string(n) + " bytes (limit " +
                       std::to_string(kMaxStringBytes) + ")");
    op.length = static_cast<size_t>(n);
    op.bytes = take(pos, op.length, op);
  }

  // Decodes the opcode at `pos` and its argument; advances `pos`.
  Op decode(size_t& pos) const {
    Op op;
    op.pos = pos;
    if (pos >= size_)
      fail(pos, size_ == kMaxPickleBytes ? "the pickle exceeds the size limit"
                                         : "the pickle ends without STOP (truncated?)");
    op.code = static_cast<uint8_t>(data_[pos++]);
    switch (op.code) {
      case kMark:
      case kStop:
      case kPop:
      case kPopMark:
      case kDup:
      case kNone:
      case kBinPersId:
      case kReduce:
      case kAppend:
      case kBuild:
      case kDict:
      case kEmptyDict:
      case kAppends:
      case kList:
      case kEmptyList:
      case kSetItem:
      case kTuple:
      case kEmptyTuple:
      case kSetItems:
      case kNewObj:
      case kTuple1:
      case kTuple2:
      case kTuple3:
      case kNewTrue:
      case kNewFalse:
      case kStackGlobal:
      case kMemoize:
        break;
      case kProto:
        op.arg = little<uint8_t>(pos, op);
        break;
      case kFrame:
        op.arg = static_cast<int64_t>(little<uint64_t>(pos, op) >> 1);
        break;
      case kBinInt:
        op.arg = little<int32_t>(pos, op);
        break;
      case kBinInt1:
      case kBinGet:
      case kBinPut:
        op.arg = little<uint8_t>(pos, op);
        break;
      case kBinInt2:
        op.arg = little<uint16_t>(pos, op);
        break;
      case kLongBinGet:
      case kLongBinPut:
        op.arg = little<uint32_t>(pos, op);
        break;
      case kBinFloat: {
        uint64_t bits = __builtin_bswap64(little<uint64_t>(pos, op));  // big-endian
        std::memcpy(&op.real_bits, &bits, 8);
        break;
      }
      case kLong1:
      case kShortBinString:
      case kShortBinUnicode:
      case kShortBinBytes:
        counted(pos, op, little<uint8_t>(pos, op));
        break;
      case kLong4:
      case kBinString: {
        const int32_t n = little<int32_t>(pos, op);
        if (n < 0) fail(op.pos, "negative length " + std::to_string(n));
        counted(pos, op, static_cast<uint64_t>(n));
        break;
      }
      case kBinUnicode:
      case kBinBytes:
        counted(pos, op, little<uint32_t>(pos, op));
        break;
      case kBinUnicode8:
      case kBinBytes8:
        counted(pos, op, little<uint64_t>(pos, op));
        break;
      case kGlobal: {
        // "module\nname\n"
        const size_t start = pos;
        int newlines = 0;
        while (newlines < 2) {
          if (pos >= size_ || pos - start > 512) fail(op.pos, "malformed GLOBAL");
          if (data_[pos++] == '\n') ++newlines;
        }
        op.bytes = data_ + start;
        op.length = pos - start;
        break;
      }
      default:
        fail(op.pos,
             "unsupported opcode " + hex(op.code) + " (only what torch.save writes is read)");
    }
    return op;
  }

  static std::string global_name(const Op& op) {
    std::string s(op.bytes, op.length - 1);  // drops the final newline
    s[s.find('\n')] = '.';
    return s;
  }

  // Every global is checked before anything is interpreted; the end of the pickle is found.
  void scan() {
    size_t pos = 0;
    for (;;) {
      const Op op = decode(pos);
      if (op.code == kProto && op.arg > 5)
        fail(op.pos, "pickle protocol " + std::to_string(op.arg));
      if (op.code == kGlobal) {
        const std::string name = global_name(op);
        if (!allow_list().count(name)) refuse(name);
      }
      if (op.code == kStop) break;
    }
    out_.end = pos;
  }

  // --- values ---

  uint32_t make(Value v) {
    if (out_.values.size() >= kMaxValues)
      throw Error(source_ + ": refuses to load: the pickle builds more than " +
                  std::to_string(kMaxValues) + " values");
    out_.values.push_back(std::move(v));
    return static_cast<uint32_t>(out_.values.size() - 1);
  }
  uint32_t make(Kind kind) {
    Value v;
    v.kind = kind;
    return make(std::move(v));
  }
  Value& at(uint32_t id) { return out_.values[id]; }

  void push(uint32_t id) {
    if (stack_.size() >= kMaxStack)
      throw Error(source_ + ": refuses to load: the pickle's stack exceeds " +
                  std::to_string(kMaxStack) + " entries");
    stack_.push_back(id);
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  uint32_t pop(const Op& op) {
    if (stack_.size() <= floor()) fail(op.pos, "stack underflow");
    const uint32_t id = stack_.back();
    stack_.pop_back();
    return id;
  }
  uint32_t top(const Op& op) {
    if (stack_.size() <= floor()) fail(op.pos, "stack underflow");
    return stack_.back();
  }
  std::vector<uint32_t> pop_mark(const Op& op) {
    if (marks_.empty()) fail(op.pos, "no MARK to pop to");
    std::vector<uint32_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()),
                                stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }

  // A container's depth after `child` went into it.
  void nest(uint32_t container, uint32_t child) {
    const uint32_t d = std::max(at(container).depth, at(child).depth + 1);
    if (d > kMaxDepth) too_deep();
    at(container).depth = d;
  }
  uint32_t container(Kind kind, std::vector<uint32_t> items) {
    const uint32_t id = make(kind);
    for (uint32_t item : items) nest(id, item);
    at(id).items = std::move(items);
    return id;
  }
  Value& expect(uint32_t id, Kind kind, const Op& op, const char* what) {
    if (at(id).kind != kind) fail(op.pos, std::string(what));
    return at(id);
  }
  void add_items(uint32_t target, const std::vector<uint32_t>& items, const Op& op) {
    const Kind kind = at(target).kind;
    if (kind == Kind::Dict && items.size() % 2 != 0) fail(op.pos, "odd number of dict items");
    if (kind != (op.code == kAppend || op.code == kAppends ? Kind::List : Kind::Dict))
      fail(op.pos, op.code == kAppend || op.code == kAppends ? "APPEND to a non-list"
                                                             : "SETITEM on a non-dict");
    for (uint32_t item : items) nest(target, item);
    auto& dst = at(target).items;
    dst.insert(dst.end(), items.begin(), items.end());
  }
  const AllowedGlobal& allowed(const std::string& name) const {
    auto it = allow_list().find(name);
    if (it == allow_list().end()) refuse(name);
    return it->second;
  }

  int64_t integer(uint32_t id, const Op& op, const char* what) {
    const Value& v = at(id);
    if (v.kind != Kind::Int && v.kind != Kind::Bool)
      fail(op.pos, std::string(what) + " is not an integer");
    return v.number;
  }
  std::vector<int64_t> integers(uint32_t id, const Op& op, const char* what) {
    const Value& v = at(id);
    if (v.kind != Kind::Tuple && v.kind != Kind::List)
      fail(op.pos, std::string(what) + " is not a tuple");
    std::vector<int64_t> out;
    for (uint32_t item : v.items) {
      const int64_t n = integer(item, op, what);
      if (n < 0) fail(op.pos, std::string(what) + " has a negative entry " + std::to_string(n));
      out.push_back(n);
    }
    return out;
  }

  // ('storage', torch.XStorage, key, location, numel[, view_metadata])
  uint32_t persistent_load(uint32_t pid, const Op& op) {
    const Value& t = at(pid);
    if (t.kind != Kind::Tuple || (t.items.size() != 5 && t.items.size() != 6) ||
        at(t.items[0]).kind != Kind::String || at(t.items[0]).text != "storage")
      fail(op.pos, "a persistent id that is not ('storage', type, key, location, size)");
    const std::vector<uint32_t> f = t.items;
    const Value& type = at(f[1]);
    if (type.kind != Kind::Global || allowed(type.text).role != Role::StorageType)
      fail(op.pos, "a persistent id whose storage type is not a torch storage");
    const DType dtype = allowed(type.text).dtype;
    const Value& key = at(f[2]);
    if (key.kind != Kind::String || key.text.empty() || key.text.size() > 64)
      fail(op.pos, "a storage key that is not a short string");
    for (char c : key.text)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
        fail(op.pos,
             "storage key '" + printable(key.text) + "' has characters other than [A-Za-z0-9_]");
    if (at(f[3]).kind != Kind::String) fail(op.pos, "a storage location that is not a string");
    const int64_t numel = integer(f[4], op, "a storage size");
    int64_t nbytes = 0;
    if (numel < 0 ||
        __builtin_mul_overflow(numel, static_cast<int64_t>(dtype_size(dtype)), &nbytes))
      fail(op.pos, "storage '" + key.text + "' claims " + std::to_string(numel) + " elements");

    auto [it, fresh] =
        storage_index_.emplace(key.text, static_cast<uint32_t>(out_.storages.size()));
    if (fresh) {
      out_.storages.push_back({key.text, dtype, numel});
    } else if (out_.storages[it->second].dtype != dtype ||
               out_.storages[it->second].numel != numel) {
      fail(op.pos, "storage '" + key.text + "' is named twice with different types or sizes");
    }
    StorageView view{it->second, 0, numel};
    if (f.size() == 6 && at(f[5]).kind != Kind::None) {  // legacy: a part of the storage
      const Value& meta = at(f[5]);
      if (meta.kind != Kind::Tuple || meta.items.size() != 3)
        fail(op.pos, "storage '" + key.text + "': view metadata is not (key, offset, size)");
      view.offset = integer(meta.items[1], op, "a storage view offset");
      view.numel = integer(meta.items[2], op, "a storage view size");
      if (view.offset < 0 || view.numel < 0 || view.offset > numel ||
          view.numel > numel - view.offset)
        fail(op.pos, "storage '" + key.text + "': view [" + std::to_string(view.offset) + ", +" +
                         std::to_string(view.numel) + ") outside its " + std::to_string(numel) +
                         " elements");
    }
    out_.views.push_back(view);
    Value v;
    v.kind = Kind::Storage;
    v.number = static_cast<int64_t>(out_.views.size() - 1);
    return make(std::move(v));
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])
  uint32_t rebuild_tensor(const std::vector<uint32_t>& args, const Op& op) {
    if (args.size() < 4 || args.size() > 7) fail(op.pos, "_rebuild_tensor_v2 with wrong arguments");
    const Value& storage = at(args[0]);
    if (storage.kind != Kind::Storage) fail(op.pos, "_rebuild_tensor_v2 without a storage");
    const StorageView view = out_.views[static_cast<size_t>(storage.number)];
    const std::string& key = out_.storages[view.storage].key;
    const int64_t offset = integer(args[1], op, "a tensor's storage offset");
    TensorRecord t;
    t.storage = view.storage;
    t.shape = integers(args[2], op, "a tensor's shape");
    t.stride = integers(args[3], op, "a tensor's stride");
    if (t.shape.size() != t.stride.size() || t.shape.size() > 64)
      fail(op.pos, "a tensor on storage '" + key + "' with " + std::to_string(t.shape.size()) +
                       " sizes and " + std::to_string(t.stride.size()) + " strides");
    const auto beyond = [&] {
      fail(op.pos, "a tensor of shape " + c10::str(t.shape) + ", stride " + c10::str(t.stride) +
                       " and offset " + std::to_string(offset) + " reaches beyond storage '" + key +
                       "' (" + std::to_string(view.numel) + " elements)");
    };
    if (offset < 0) beyond();
    int64_t numel = 1, last = offset;  // last: the highest element the view addresses
    for (size_t i = 0; i < t.shape.size(); ++i) {
      int64_t step = 0;
      if (__builtin_mul_overflow(numel, t.shape[i], &numel)) beyond();
      if (t.shape[i] > 0 && (__builtin_mul_overflow(t.shape[i] - 1, t.stride[i], &step) ||
                             __builtin_add_overflow(last, step, &last)))
        beyond();
    }
    if (numel > 0 ? last >= view.numel : offset > view.numel) beyond();
    t.offset = view.offset + offset;
    out_.tensors.push_back(std::move(t));
    Value v;
    v.kind = Kind::Tensor;
    v.number = static_cast<int64_t>(out_.tensors.size() - 1);
    return make(std::move(v));
  }

  uint32_t call(uint32_t callable, uint32_t args_id, const Op& op, bool newobj) {
    const Value& c = at(callable);
    if (c.kind != Kind::Global)
      fail(op.pos, newobj ? "NEWOBJ on a non-class" : "REDUCE on a non-callable");
    const std::string name = c.text;
    const Role role = allowed(name).role;
    const Value& a = at(args_id);
    if (a.kind != Kind::Tuple) fail(op.pos, "arguments of " + name + " are not a tuple");
    const std::vector<uint32_t> args = a.items;
    if (role == Role::Opaque) {
      Value v;
      v.kind = Kind::Opaque;
      v.text = name;
      return make(std::move(v));
    }
    if (newobj) refuse(name);
    switch (role) {
      case Role::RebuildTensor:
        return rebuild_tensor(args, op);
      case Role::RebuildParameter:
        if (args.empty() || at(args[0]).kind != Kind::Tensor)
          fail(op.pos, "_rebuild_parameter without a tensor");
        return args[0];
      case Role::OrderedDict:
        if (!args.empty()) fail(op.pos, "OrderedDict with arguments");
        return make(Kind::Dict);
      default:
        refuse(name);  // a storage type called as a function
    }
  }

  void interpret() {
    size_t pos = 0;
    for (;;) {
      const Op op = decode(pos);
      switch (op.code) {
        case kProto:
        case kFrame:
          break;
        case kStop:
          out_.root = pop(op);
          return;
        case kMark:
          if (marks_.size() >= kMaxDepth) too_deep();
          marks_.push_back(stack_.size());
          break;
        case kPop:
          if (stack_.size() > floor())
            stack_.pop_back();
          else
            pop_mark(op);
          break;
        case kPopMark:
          pop_mark(op);
          break;
        case kDup:
          push(top(op));
          break;
        case kNone:
          push(make(Kind::None));
          break;
        case kNewTrue:
        case kNewFalse: {
          Value v;
          v.kind = Kind::Bool;
          v.number = op.code == kNewTrue;
          push(make(std::move(v)));
          break;
        }
        case kBinInt:
        case kBinInt1:
        case kBinInt2: {
          Value v;
          v.kind = Kind::Int;
          v.number = op.arg;
          push(make(std::move(v)));
          break;
        }
        case kLong1:
        case kLong4: {
          Value v;
          if (op.length <= 8) {  // two's complement, little-endian
            uint64_t bits = 0;
            std::memcpy(&bits, op.bytes, op.length);
            if (op.length > 0 && op.length < 8 && (op.bytes[op.length - 1] & 0x80))
              bits |= ~uint64_t{0} << (8 * op.length);
            v.kind = Kind::Int;
            v.number = static_cast<int64_t>(bits);
          } else {
            v.kind = Kind::BigInt;
            v.text.assign(op.bytes, op.length);
          }
          push(make(std::move(v)));
          break;
        }
        case kBinFloat: {
          Value v;
          v.kind = Kind::Float;
          std::memcpy(&v.real, &op.real_bits, 8);
          push(make(std::move(v)));
          break;
        }
        case kBinUnicode:
        case kShortBinUnicode:
        case kBinUnicode8:
        case kBinString:
        case kShortBinString:
        case kBinBytes:
        case kShortBinBytes:
        case kBinBytes8: {
          Value v;
          const bool bytes =
              op.code == kBinBytes || op.code == kShortBinBytes || op.code == kBinBytes8;
          v.kind = bytes ? Kind::Bytes : Kind::String;
          v.text.assign(op.bytes, op.length);
          push(make(std::move(v)));
          break;
        }
        case kEmptyTuple:
          push(make(Kind::Tuple));
          break;
        case kEmptyList:
          push(make(Kind::List));
          break;
        case kEmptyDict:
          push(make(Kind::Dict));
          break;
        case kTuple:
          push(container(Kind::Tuple, pop_mark(op)));
          break;
        case kList:
          push(container(Kind::List, pop_mark(op)));
          break;
        case kDict: {
          auto items = pop_mark(op);
          if (items.size() % 2 != 0) fail(op.pos, "odd number of dict items");
          push(container(Kind::Dict, std::move(items)));
          break;
        }
        case kTuple1:
        case kTuple2:
        case kTuple3: {
          std::vector<uint32_t> items(op.code - kTuple1 + 1);
          for (size_t i = items.size(); i-- > 0;) items[i] = pop(op);
          push(container(Kind::Tuple, std::move(items)));
          break;
        }
        case kAppend: {
          const uint32_t item = pop(op);
          add_items(top(op), {item}, op);
          break;
        }
        case kSetItem: {
          const uint32_t value = pop(op), key = pop(op);
          add_items(top(op), {key, value}, op);
          break;
        }
        case kAppends:
        case kSetItems: {
          auto items = pop_mark(op);
          add_items(top(op), items, op);
          break;
        }
        case kBinPut:
        case kLongBinPut:
        case kMemoize: {
          const uint32_t key = op.code == kMemoize ? static_cast<uint32_t>(memo_.size())
                                                   : static_cast<uint32_t>(op.arg);
          if (memo_.size() >= kMaxValues) fail(op.pos, "memo too large");
          memo_[key] = top(op);
          break;
        }
        case kBinGet:
        case kLongBinGet: {
          auto it = memo_.find(static_cast<uint32_t>(op.arg));
          if (it == memo_.end()) fail(op.pos, "memo entry " + std::to_string(op.arg) + " is unset");
          push(it->second);
          break;
        }
        case kGlobal: {
          Value v;
          v.kind = Kind::Global;
          v.text = global_name(op);
          allowed(v.text);  // checked by scan() already
          push(make(std::move(v)));
          break;
        }
        case kStackGlobal: {
          // Names from the stack: checked here, before the global is used.
          const uint32_t name = pop(op), module = pop(op);
          if (at(name).kind != Kind::String || at(module).kind != Kind::String)
            fail(op.pos, "STACK_GLOBAL without strings");
          Value v;
          v.kind = Kind::Global;
          v.text = at(module).text + "." + at(name).text;
          allowed(v.text);
          push(make(std::move(v)));
          break;
        }
        case kReduce:
        case kNewObj: {
          const uint32_t args = pop(op), callable = pop(op);
          push(call(callable, args, op, op.code == kNewObj));
          break;
        }
        case kBuild: {
          pop(op);  // the state: an OrderedDict's _metadata, a numpy dtype's fields
          const Kind kind = at(top(op)).kind;
          if (kind != Kind::Dict && kind != Kind::Opaque && kind != Kind::Tensor)
            fail(op.pos, "BUILD on a value that has no state");
          break;
        }
        case kBinPersId:
          push(persistent_load(pop(op), op));
          break;
        default:
          fail(op.pos, "unsupported opcode " + hex(op.code));
      }
    }
  }

  const char* data_;
  size_t size_;
  const std::string& source_;
  Pickle out_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, uint32_t> memo_;
  std::unordered_map<std::string, uint32_t> storage_index_;
};

}  // namespace

Pickle read(const char* data, size_t size, const std::string& source) {
  return Reader(data, size, source).run();
}

std::vector<std::pair<std::string, uint32_t>> named_tensors(const Pickle& pickle,
                                                            const std::string& source) {
  struct Frame {
    uint32_t id;
    std::string path;
    uint32_t depth;
  };
  std::vector<std::pair<std::string, uint32_t>> out;
  std::set<std::string> names;
  std::unordered_set<uint32_t> visited;
  std::vector<Frame> todo{{pickle.root, "", 0}};
  auto join = [](const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  };
  while (!todo.empty()) {
    Frame f = std::move(todo.back());
    todo.pop_back();
    const Value& v = pickle.values[f.id];
    if (v.kind == Kind::Tensor) {
      if (!names.insert(f.path).second)
        throw Error(source + ": two tensors are named '" + printable(f.path) + "'");
      out.emplace_back(f.path, static_cast<uint32_t>(v.number));
      continue;
    }
    if (v.kind != Kind::Dict && v.kind != Kind::List && v.kind != Kind::Tuple) continue;
    if (!visited.insert(f.id).second) continue;
    if (f.depth >= kMaxDepth)
      throw Error(source + ": refuses to load: the pickle nests containers deeper than " +
                  std::to_string(kMaxDepth) + " levels");
    std::vector<Frame> children;
    if (v.kind == Kind::Dict) {
      for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
        const Value& key = pickle.values[v.items[i]];
        std::string name;
        if (key.kind == Kind::String)
          name = key.text;
        else if (key.kind == Kind::Int)
          name = std::to_string(key.number);
        else if (key.kind == Kind::Global)
          name = key.text;
        else
          continue;  // tuples, floats as keys: no state dict has them
        children.push_back({v.items[i + 1], join(f.path, name), f.depth + 1});
      }
    } else {
      for (size_t i = 0; i < v.items.size(); ++i)
        children.push_back({v.items[i], join(f.path, std::to_string(i)), f.depth + 1});
    }
    for (auto it = children.rbegin(); it != children.rend(); ++it) todo.push_back(std::move(*it));
  }
  return out;
}

}  // namespace p2l::io::pickle
