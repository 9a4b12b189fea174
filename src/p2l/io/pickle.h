// A restricted reader for the pickles inside PyTorch checkpoints (torch.save): it understands
// exactly what a state dict needs - dicts, lists, tuples, strings, numbers, and tensors rebuilt
// from storages - and builds inert values. It never imports or calls anything: every global the
// pickle names is checked against a short allow-list (GLOBAL opcodes before the first opcode is
// interpreted; a protocol-4 STACK_GLOBAL as soon as its name is formed, before it is used), and
// anything else is refused with one line naming it. Every size is bounded (pickle bytes, values,
// stack, memo, nesting, strings), and input structure is walked with explicit stacks, never by
// recursion.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "p2l/io/safetensors.h"

namespace p2l::io::pickle {

// Limits a checkpoint's pickle must stay within. SD v1's data.pkl is ~1 MB with ~30k values.
constexpr size_t kMaxPickleBytes = size_t{64} << 20;
constexpr size_t kMaxValues = size_t{1} << 22;  // ~90 bytes each
constexpr size_t kMaxStack = size_t{1} << 20;
constexpr size_t kMaxStringBytes = size_t{16} << 20;
constexpr uint32_t kMaxDepth = 64;  // containers inside containers; state dicts need ~4

enum class Kind : uint8_t {
  None,
  Bool,
  Int,
  BigInt,
  Float,
  String,
  Bytes,
  Tuple,
  List,
  Dict,
  Global,   // a name from the allow-list, never resolved to anything
  Storage,  // what a persistent id names: (part of) one tensor storage
  Tensor,   // a view of a storage: offset, shape, strides
  Opaque,   // an allow-listed object of no interest (numpy scalars, Lightning callbacks)
};

struct Value {
  Kind kind = Kind::None;
  int64_t number = 0;           // Bool/Int; the index of a Storage or Tensor record
  double real = 0;              // Float
  std::string text;             // String, Bytes, Global ("module.name"), BigInt (LE bytes)
  std::vector<uint32_t> items;  // Tuple/List: elements; Dict: key, value, key, value, ...
  uint32_t depth = 0;           // nesting of containers below this value
};

// A storage as the persistent id names it. Sizes are in elements of `dtype`.
struct StorageRecord {
  std::string key;  // the zip entry data/<key>, or the legacy file's storage key
  DType dtype = DType::F32;
  int64_t numel = 0;
};

// A view of a storage: a legacy persistent id may name a part of it.
struct StorageView {
  uint32_t storage = 0;
  int64_t offset = 0, numel = 0;
};

// A tensor as _rebuild_tensor_v2 describes it; `offset` counts from the storage's start and
// every element it addresses has been checked to lie inside the storage.
struct TensorRecord {
  uint32_t storage = 0;
  int64_t offset = 0;
  std::vector<int64_t> shape, stride;
};

struct Pickle {
  std::vector<Value> values;
  std::vector<StorageRecord> storages;
  std::vector<StorageView> views;
  std::vector<TensorRecord> tensors;
  uint32_t root = 0;
  size_t end = 0;  // bytes read, up to and including STOP
};

// Reads one pickle from the start of `data`. `source` names the file in messages. Throws
// p2l::Error (one line) on anything malformed, out of bounds or not on the allow-list.
Pickle read(const char* data, size_t size, const std::string& source);

// Every tensor reachable from the root, by dotted path ("state_dict.model.w", "history.0"):
// dict keys that are strings or integers, list and tuple indices. Opaque values are not entered;
// a container reached twice is listed once. Throws p2l::Error if two tensors get one name.
std::vector<std::pair<std::string, uint32_t>> named_tensors(const Pickle& pickle,
                                                            const std::string& source);

}  // namespace p2l::io::pickle
