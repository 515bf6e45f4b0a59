#include "models/torch_checkpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace pmpd::models {
namespace {

// A tensor whose strides overlap (e.g. an expanded one, stride 0) can need more bytes than its
// storage holds; beyond this many we refuse rather than allocate without bound.
constexpr uint64_t kMaxExpandedTensorBytes = 1ull << 30;
// Element counts above this are refused before any size arithmetic can overflow.
constexpr uint64_t kMaxElements = 1ull << 60;

absl::Status Corrupt(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": ", what));
}

absl::Status Unsupported(const std::string& path, absl::string_view what) {
  return absl::UnimplementedError(absl::StrCat(path, ": ", what));
}

uint64_t LoadLE(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// CRC-32 of a zip record (zlib's, the zip format's polynomial).
uint32_t Crc32(const uint8_t* p, uint64_t n) {
  return static_cast<uint32_t>(crc32_z(0, p, static_cast<z_size_t>(n)));
}

struct ByteView {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

// ---------------------------------------------------------------------------------------------
// The file, mapped read-only.

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile() {
    if (map_ != nullptr) ::munmap(map_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Maps `path`; an empty file gives an empty view.
  absl::Status Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) {
      return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
      void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (map == MAP_FAILED) {
        const std::string err = std::strerror(errno);
        ::close(fd);
        size_ = 0;
        return absl::InternalError(absl::StrCat(path, ": mmap failed: ", err));
      }
      map_ = map;
    }
    ::close(fd);
    return absl::OkStatus();
  }

  ByteView bytes() const { return {static_cast<const uint8_t*>(map_), size_}; }

 private:
  void* map_ = nullptr;
  uint64_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The zip container: central directory (zip64 aware) and stored records.
//
//   [local header 30 B + name + extra][data] ... [central directory] [zip64 end record]
//   [zip64 locator 20 B] [end record 22 B + comment]
// Sizes and offsets come from the central directory: torch writes local headers with the
// data-descriptor flag and zero sizes. A record's data starts after ITS LOCAL header, whose extra
// field (torch pads records to 64-byte boundaries there) differs from the central one.

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kEndSize = 22, kZip64LocatorSize = 20, kZip64EndSize = 56;
constexpr uint64_t kCentralHeaderSize = 46, kLocalHeaderSize = 30;
constexpr uint32_t kZip64Marker = 0xFFFFFFFFu;

struct ZipEntry {
  std::string name;
  uint16_t flags = 0;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t local_offset = 0;
};

class ZipArchive {
 public:
  // Reads and checks the central directory of `file` (which must outlive this object).
  absl::Status Open(const std::string& path, ByteView file) {
    path_ = path;
    file_ = file;
    const uint8_t* d = file.data;
    const uint64_t n = file.size;
    std::string hint;
    if (n >= 2 && d[0] == 0x80 && d[1] <= 5) {
      hint = " (it starts like a pickle: the legacy pre-1.6 torch.save format is not supported)";
    }
    if (n < kEndSize) {
      return Corrupt(path, absl::StrCat("not a zip archive: the file is ", n,
                                        " bytes, shorter than a zip end record", hint));
    }
    // The end record is the last 22 bytes plus a comment of up to 65535 bytes.
    uint64_t end = n;
    const uint64_t lowest = n - kEndSize > 0xffff ? n - kEndSize - 0xffff : 0;
    for (uint64_t pos = n - kEndSize;; --pos) {
      if (LoadLE(d + pos, 4) == kEndSig && pos + kEndSize + LoadLE(d + pos + 20, 2) <= n) {
        end = pos;
        break;
      }
      if (pos == lowest) break;
    }
    if (end == n) {
      return Corrupt(path, absl::StrCat("not a zip archive, or a truncated one: no end of central "
                                        "directory record in its last bytes",
                                        hint));
    }
    uint64_t count = LoadLE(d + end + 10, 2);
    uint64_t cd_size = LoadLE(d + end + 12, 4);
    uint64_t cd_offset = LoadLE(d + end + 16, 4);
    if (end >= kZip64LocatorSize && LoadLE(d + end - kZip64LocatorSize, 4) == kZip64LocatorSig) {
      const uint64_t z = LoadLE(d + end - kZip64LocatorSize + 8, 8);
      if (z > n || n - z < kZip64EndSize || LoadLE(d + z, 4) != kZip64EndSig) {
        return Corrupt(
            path, absl::StrCat("zip64 end of central directory record at byte ", z,
                               " is missing or out of range (file of ", n, " bytes): truncated?"));
      }
      count = LoadLE(d + z + 32, 8);
      cd_size = LoadLE(d + z + 40, 8);
      cd_offset = LoadLE(d + z + 48, 8);
    }
    if (cd_offset > n || cd_size > n - cd_offset) {
      return Corrupt(path,
                     absl::StrCat("zip central directory (", cd_size, " bytes at byte ", cd_offset,
                                  ") runs past the end of the file (", n, " bytes): truncated?"));
    }
    const uint64_t cd_end = cd_offset + cd_size;
    uint64_t pos = cd_offset;
    for (uint64_t i = 0; i < count; ++i) {
      if (cd_end - pos < kCentralHeaderSize || LoadLE(d + pos, 4) != kCentralHeaderSig) {
        return Corrupt(path, absl::StrCat("zip central directory entry ", i, " of ", count,
                                          " at byte ", pos, " is malformed"));
      }
      const uint8_t* h = d + pos;
      const uint64_t name_len = LoadLE(h + 28, 2), extra_len = LoadLE(h + 30, 2);
      const uint64_t comment_len = LoadLE(h + 32, 2);
      if (cd_end - pos - kCentralHeaderSize < name_len + extra_len + comment_len) {
        return Corrupt(path, absl::StrCat("zip central directory entry ", i, " at byte ", pos,
                                          " runs past the central directory"));
      }
      ZipEntry e;
      e.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_len);
      e.flags = static_cast<uint16_t>(LoadLE(h + 8, 2));
      e.method = static_cast<uint16_t>(LoadLE(h + 10, 2));
      e.crc = static_cast<uint32_t>(LoadLE(h + 16, 4));
      e.compressed_size = LoadLE(h + 20, 4);
      e.size = LoadLE(h + 24, 4);
      e.local_offset = LoadLE(h + 42, 4);
      absl::Status s = ReadZip64Extra(h + kCentralHeaderSize + name_len, extra_len, &e);
      if (!s.ok()) return s;
      if (!index_.emplace(e.name, entries_.size()).second) {
        return Corrupt(path, absl::StrCat("zip record \"", e.name, "\" appears twice"));
      }
      entries_.push_back(std::move(e));
      pos += kCentralHeaderSize + name_len + extra_len + comment_len;
    }
    return absl::OkStatus();
  }

  const std::vector<ZipEntry>& entries() const { return entries_; }

  const ZipEntry* Find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }

  // The bytes of a stored record, bounds-checked. Compressed or encrypted records are refused.
  absl::StatusOr<ByteView> Read(const ZipEntry& e) const {
    const std::string what = absl::StrCat("zip record \"", e.name, "\"");
    if (e.flags & 1) return Unsupported(path_, absl::StrCat(what, " is encrypted"));
    if (e.method != 0) {
      return Unsupported(path_, absl::StrCat(what, " is compressed (zip method ", e.method,
                                             "); only stored records are supported, as "
                                             "torch.save writes them"));
    }
    if (e.compressed_size != e.size) {
      return Corrupt(path_, absl::StrCat(what, " is stored but its sizes disagree (",
                                         e.compressed_size, " vs ", e.size, ")"));
    }
    const uint64_t n = file_.size;
    const uint64_t off = e.local_offset;
    if (off > n || n - off < kLocalHeaderSize || LoadLE(file_.data + off, 4) != kLocalHeaderSig) {
      return Corrupt(
          path_, absl::StrCat(what, ": no local header at byte ", off, " (file of ", n, " bytes)"));
    }
    const uint64_t start = off + kLocalHeaderSize + LoadLE(file_.data + off + 26, 2) +
                           LoadLE(file_.data + off + 28, 2);
    if (start > n || n - start < e.size) {
      return Corrupt(path_,
                     absl::StrCat(what, " (", e.size, " bytes at byte ", start,
                                  ") runs past the end of the file (", n, " bytes): truncated?"));
    }
    return ByteView{file_.data + start, e.size};
  }

 private:
  // Replaces the 0xFFFFFFFF sizes and offset of a central header by their zip64 values.
  absl::Status ReadZip64Extra(const uint8_t* p, uint64_t len, ZipEntry* e) const {
    uint64_t pos = 0;
    while (len - pos >= 4) {
      const uint64_t id = LoadLE(p + pos, 2), field_len = LoadLE(p + pos + 2, 2);
      if (len - pos - 4 < field_len) {
        return Corrupt(
            path_, absl::StrCat("zip record \"", e->name, "\": extra field runs past its header"));
      }
      if (id == 1) {
        const uint8_t* f = p + pos + 4;
        uint64_t used = 0;
        for (uint64_t* v : {&e->size, &e->compressed_size, &e->local_offset}) {
          if (*v != kZip64Marker) continue;
          if (field_len - used < 8) {
            return Corrupt(path_, absl::StrCat("zip record \"", e->name,
                                               "\": zip64 extra field is too short"));
          }
          *v = LoadLE(f + used, 8);
          used += 8;
        }
      }
      pos += 4 + field_len;
    }
    return absl::OkStatus();
  }

  std::string path_;
  ByteView file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// ---------------------------------------------------------------------------------------------
// The pickle virtual machine. Values live in an arena owned by the machine and refer to each
// other by plain pointers, so memo cycles and deep nesting cost no recursion when freed.

enum class Kind {
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kBytes,
  kTuple,
  kList,
  kDict,
  kGlobal,
  kStorage,
  kTensor
};

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kBytes:
      return "bytes";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kGlobal:
      return "global";
    case Kind::kStorage:
      return "storage";
    case Kind::kTensor:
      return "tensor";
  }
  return "?";
}

// What an allowed global does when called (REDUCE / NEWOBJ).
enum class Callable {
  kOrderedDict,
  kRebuildTensorV2,
  kRebuildTensor,
  kRebuildParameter,
  kStorageType
};

struct AllowedGlobal {
  const char* module;
  const char* name;
  Callable callable;
  DType dtype;  // kStorageType only
};

constexpr AllowedGlobal kAllowedGlobals[] = {
    {"collections", "OrderedDict", Callable::kOrderedDict, DType::kU8},
    {"torch._utils", "_rebuild_tensor_v2", Callable::kRebuildTensorV2, DType::kU8},
    {"torch._utils", "_rebuild_tensor", Callable::kRebuildTensor, DType::kU8},
    {"torch._utils", "_rebuild_parameter", Callable::kRebuildParameter, DType::kU8},
    {"torch", "HalfStorage", Callable::kStorageType, DType::kF16},
    {"torch", "BFloat16Storage", Callable::kStorageType, DType::kBF16},
    {"torch", "FloatStorage", Callable::kStorageType, DType::kF32},
    {"torch", "DoubleStorage", Callable::kStorageType, DType::kF64},
    {"torch", "IntStorage", Callable::kStorageType, DType::kI32},
    {"torch", "LongStorage", Callable::kStorageType, DType::kI64},
    {"torch", "ShortStorage", Callable::kStorageType, DType::kI16},
    {"torch", "CharStorage", Callable::kStorageType, DType::kI8},
    {"torch", "ByteStorage", Callable::kStorageType, DType::kU8},
    {"torch", "BoolStorage", Callable::kStorageType, DType::kBool},
};

struct Value;

struct DictData {
  std::vector<std::pair<Value*, Value*>> entries;       // insertion order, as Python keeps it
  std::unordered_map<std::string, size_t> string_keys;  // entries index of each str key
};

struct TensorData {
  const Value* storage = nullptr;
  int64_t offset = 0;
  std::vector<int64_t> size;
  std::vector<int64_t> stride;
};

struct Value {
  Kind kind = Kind::kNone;
  int64_t i = 0;                   // kBool, kInt; kStorage: the element count
  double f = 0;                    // kFloat
  std::string s;                   // kString, kBytes; kGlobal: "module.name"; kStorage: record key
  std::vector<Value*> items;       // kTuple, kList
  std::unique_ptr<DictData> dict;  // kDict
  std::unique_ptr<TensorData> tensor;          // kTensor
  Callable callable = Callable::kOrderedDict;  // kGlobal
  DType dtype = DType::kU8;                    // kGlobal storage types, kStorage
};

class PickleVm {
 public:
  PickleVm(const std::string& path, const std::string& record, ByteView pickle)
      : path_(path), record_(record), data_(pickle.data), size_(pickle.size) {
    none_ = New(Kind::kNone);
    true_ = New(Kind::kBool);
    true_->i = 1;
    false_ = New(Kind::kBool);
  }

  // Runs the pickle to STOP and returns the value it leaves; valid while this machine lives.
  absl::StatusOr<const Value*> Run() {
    for (;;) {
      op_pos_ = pos_;
      if (size_ - pos_ < 1) {
        return Corrupt(path_, absl::StrCat("record \"", record_, "\" ends at byte ", size_,
                                           " without a pickle STOP opcode (truncated?)"));
      }
      op_ = data_[pos_++];
      if (op_ == '.') {  // STOP
        Value* v = nullptr;
        if (!Pop(&v)) return error_;
        return v;
      }
      if (!Step()) return error_;
    }
  }

 private:
  Value* New(Kind k) {
    arena_.emplace_back();
    Value* v = &arena_.back();
    v->kind = k;
    if (k == Kind::kDict) v->dict = std::make_unique<DictData>();
    return v;
  }

  bool Fail(absl::string_view what) {
    error_ = Corrupt(path_, absl::StrCat("record \"", record_, "\", byte ", op_pos_, " (opcode 0x",
                                         absl::Hex(op_, absl::kZeroPad2), "): ", what));
    return false;
  }
  bool FailUnsupported(absl::string_view what) {
    Fail(what);
    error_ = absl::UnimplementedError(error_.message());
    return false;
  }

  // ---- reading the opcode arguments ----
  bool Take(uint64_t n, const uint8_t** p) {
    if (size_ - pos_ < n) {
      return Fail(absl::StrCat("the argument needs ", n, " bytes but only ", size_ - pos_,
                               " remain (truncated?)"));
    }
    *p = data_ + pos_;
    pos_ += n;
    return true;
  }
  bool TakeUint(int n, uint64_t* v) {
    const uint8_t* p = nullptr;
    if (!Take(n, &p)) return false;
    *v = LoadLE(p, n);
    return true;
  }
  bool TakeLine(std::string* line) {
    const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
    if (nl == nullptr) return Fail("unterminated line (truncated?)");
    const uint64_t len = static_cast<const uint8_t*>(nl) - (data_ + pos_);
    line->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len + 1;
    return true;
  }

  // ---- the stack; MARK opens a frame that pops may not reach below ----
  uint64_t Floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void Push(Value* v) { stack_.push_back(v); }
  bool Pop(Value** v) {
    if (stack_.size() <= Floor()) return Fail("pickle stack underflow");
    *v = stack_.back();
    stack_.pop_back();
    return true;
  }
  bool Top(Value** v) {
    if (stack_.size() <= Floor()) return Fail("pickle stack underflow");
    *v = stack_.back();
    return true;
  }
  bool PopMark(std::vector<Value*>* items) {
    if (marks_.empty()) return Fail("no MARK to pop to");
    const uint64_t m = marks_.back();
    marks_.pop_back();
    items->assign(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return true;
  }
  bool TopOf(Kind k, Value** v) {
    if (!Top(v)) return false;
    if ((*v)->kind != k) {
      return Fail(absl::StrCat("expected a ", KindName(k), " on the stack, found type ",
                               KindName((*v)->kind)));
    }
    return true;
  }

  Value* MakeInt(int64_t x) {
    Value* v = New(Kind::kInt);
    v->i = x;
    return v;
  }
  Value* MakeBytes(Kind k, const uint8_t* p, uint64_t n) {
    Value* v = New(k);
    v->s.assign(reinterpret_cast<const char*>(p), n);
    return v;
  }
  Value* MakeSequence(Kind k, std::vector<Value*> items) {
    Value* v = New(k);
    v->items = std::move(items);
    return v;
  }

  bool PushString(Kind k, int len_bytes) {
    uint64_t n = 0;
    const uint8_t* p = nullptr;
    if (!TakeUint(len_bytes, &n) || !Take(n, &p)) return false;
    Push(MakeBytes(k, p, n));
    return true;
  }
  // A little-endian two's complement integer of n bytes (LONG1 / LONG4).
  bool PushLong(int len_bytes) {
    uint64_t n = 0;
    const uint8_t* p = nullptr;
    if (!TakeUint(len_bytes, &n)) return false;
    if (n > 8) {
      return FailUnsupported(absl::StrCat("integer of ", n, " bytes does not fit 64 bits"));
    }
    if (!Take(n, &p)) return false;
    uint64_t x = LoadLE(p, static_cast<int>(n));
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) x |= ~uint64_t{0} << (8 * n);  // sign-extend
    Push(MakeInt(static_cast<int64_t>(x)));
    return true;
  }

  static void SetItem(Value* dict, Value* key, Value* value) {
    DictData& d = *dict->dict;
    if (key->kind == Kind::kString) {
      auto [it, inserted] = d.string_keys.emplace(key->s, d.entries.size());
      if (!inserted) {
        d.entries[it->second].second = value;
        return;
      }
    }
    d.entries.emplace_back(key, value);
  }
  bool SetItems(Value* dict, const std::vector<Value*>& items) {
    if (items.size() % 2 != 0) return Fail("odd number of items for a dict");
    for (size_t i = 0; i < items.size(); i += 2) SetItem(dict, items[i], items[i + 1]);
    return true;
  }

  bool PushGlobal(const std::string& module, const std::string& name) {
    for (const AllowedGlobal& g : kAllowedGlobals) {
      if (module == g.module && name == g.name) {
        Value* v = New(Kind::kGlobal);
        v->s = absl::StrCat(module, ".", name);
        v->callable = g.callable;
        v->dtype = g.dtype;
        Push(v);
        return true;
      }
    }
    return FailUnsupported(absl::StrCat(
        "unsupported global '", module, ".", name,
        "' (allowed: collections.OrderedDict, torch._utils._rebuild_tensor_v2, _rebuild_tensor, "
        "_rebuild_parameter and the typed torch storages)"));
  }

  static bool IsIntTuple(const Value* v) {
    if (v->kind != Kind::kTuple) return false;
    for (const Value* x : v->items) {
      if (x->kind != Kind::kInt) return false;
    }
    return true;
  }

  // REDUCE and NEWOBJ: call an allowed global with a tuple of arguments.
  bool Call(const Value* fn, const Value* args) {
    if (fn->kind != Kind::kGlobal) {
      return FailUnsupported(absl::StrCat("cannot call a value of type ", KindName(fn->kind)));
    }
    if (args->kind != Kind::kTuple) {
      return Fail(
          absl::StrCat("arguments of ", fn->s, " have type ", KindName(args->kind), ", not tuple"));
    }
    const std::vector<Value*>& a = args->items;
    switch (fn->callable) {
      case Callable::kOrderedDict:
        if (!a.empty()) return FailUnsupported("collections.OrderedDict with arguments");
        Push(New(Kind::kDict));
        return true;
      case Callable::kRebuildTensorV2:
      case Callable::kRebuildTensor: {
        const bool v2 = fn->callable == Callable::kRebuildTensorV2;
        const bool count_ok = v2 ? (a.size() == 6 || a.size() == 7) : a.size() == 4;
        if (!count_ok || a[0]->kind != Kind::kStorage || a[1]->kind != Kind::kInt ||
            !IsIntTuple(a[2]) || !IsIntTuple(a[3]) || a[2]->items.size() != a[3]->items.size()) {
          return Fail(absl::StrCat(fn->s, " expects (storage, storage_offset, size, stride",
                                   v2 ? ", requires_grad, backward_hooks[, metadata]" : "",
                                   ") with size and stride tuples of ints of one length"));
        }
        Value* t = New(Kind::kTensor);
        t->tensor = std::make_unique<TensorData>();
        t->tensor->storage = a[0];
        t->tensor->offset = a[1]->i;
        for (const Value* x : a[2]->items) t->tensor->size.push_back(x->i);
        for (const Value* x : a[3]->items) t->tensor->stride.push_back(x->i);
        Push(t);
        return true;
      }
      case Callable::kRebuildParameter:
        if (a.size() != 3 || a[0]->kind != Kind::kTensor) {
          return Fail("torch._utils._rebuild_parameter expects (tensor, requires_grad, hooks)");
        }
        Push(a[0]);
        return true;
      case Callable::kStorageType:
        return FailUnsupported(absl::StrCat("calling ", fn->s, " is not supported"));
    }
    return Fail("unknown callable");
  }

  // BINPERSID: ('storage', torch.<T>Storage, key, location, numel) -> a storage reference.
  bool PersistentLoad(const Value* pid) {
    const std::vector<Value*>& a = pid->items;
    if (pid->kind != Kind::kTuple || a.size() != 5 || a[0]->kind != Kind::kString ||
        a[0]->s != "storage" || a[1]->kind != Kind::kGlobal ||
        a[1]->callable != Callable::kStorageType ||
        (a[2]->kind != Kind::kString && a[2]->kind != Kind::kInt) || a[4]->kind != Kind::kInt ||
        a[4]->i < 0) {
      return FailUnsupported(
          "persistent id is not ('storage', torch.<T>Storage, key, location, numel)");
    }
    Value* s = New(Kind::kStorage);
    s->dtype = a[1]->dtype;
    s->s = a[2]->kind == Kind::kString ? a[2]->s : absl::StrCat(a[2]->i);
    s->i = a[4]->i;
    Push(s);
    return true;
  }

  bool Memo(uint64_t index) {
    Value* v = nullptr;
    if (!Top(&v)) return false;
    memo_[index] = v;
    return true;
  }
  bool Get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) return Fail(absl::StrCat("memo entry ", index, " is not defined"));
    Push(it->second);
    return true;
  }

  bool Step() {
    uint64_t u = 0;
    const uint8_t* p = nullptr;
    Value* a = nullptr;
    Value* b = nullptr;
    Value* c = nullptr;
    std::vector<Value*> items;
    switch (op_) {
      case 0x80:  // PROTO
        if (!TakeUint(1, &u)) return false;
        if (u > 5) return FailUnsupported(absl::StrCat("pickle protocol ", u));
        return true;
      case 0x95:  // FRAME: a length hint only
        return Take(8, &p);
      case '(':  // MARK
        marks_.push_back(stack_.size());
        return true;
      case '}':  // EMPTY_DICT
        Push(New(Kind::kDict));
        return true;
      case ']':  // EMPTY_LIST
        Push(New(Kind::kList));
        return true;
      case ')':  // EMPTY_TUPLE
        Push(New(Kind::kTuple));
        return true;
      case 't':  // TUPLE
        if (!PopMark(&items)) return false;
        Push(MakeSequence(Kind::kTuple, std::move(items)));
        return true;
      case 0x85:  // TUPLE1
        if (!Pop(&a)) return false;
        Push(MakeSequence(Kind::kTuple, {a}));
        return true;
      case 0x86:  // TUPLE2
        if (!Pop(&b) || !Pop(&a)) return false;
        Push(MakeSequence(Kind::kTuple, {a, b}));
        return true;
      case 0x87:  // TUPLE3
        if (!Pop(&c) || !Pop(&b) || !Pop(&a)) return false;
        Push(MakeSequence(Kind::kTuple, {a, b, c}));
        return true;
      case 'l':  // LIST
        if (!PopMark(&items)) return false;
        Push(MakeSequence(Kind::kList, std::move(items)));
        return true;
      case 'd':  // DICT
        if (!PopMark(&items)) return false;
        a = New(Kind::kDict);
        if (!SetItems(a, items)) return false;
        Push(a);
        return true;
      case 's':  // SETITEM
        if (!Pop(&c) || !Pop(&b) || !TopOf(Kind::kDict, &a)) return false;
        SetItem(a, b, c);
        return true;
      case 'u':  // SETITEMS
        return PopMark(&items) && TopOf(Kind::kDict, &a) && SetItems(a, items);
      case 'a':  // APPEND
        if (!Pop(&b) || !TopOf(Kind::kList, &a)) return false;
        a->items.push_back(b);
        return true;
      case 'e':  // APPENDS
        if (!PopMark(&items) || !TopOf(Kind::kList, &a)) return false;
        a->items.insert(a->items.end(), items.begin(), items.end());
        return true;
      case 'J':  // BININT: signed 32-bit
        if (!TakeUint(4, &u)) return false;
        Push(MakeInt(static_cast<int32_t>(static_cast<uint32_t>(u))));
        return true;
      case 'K':  // BININT1
        if (!TakeUint(1, &u)) return false;
        Push(MakeInt(static_cast<int64_t>(u)));
        return true;
      case 'M':  // BININT2
        if (!TakeUint(2, &u)) return false;
        Push(MakeInt(static_cast<int64_t>(u)));
        return true;
      case 0x8a:  // LONG1
        return PushLong(1);
      case 0x8b:  // LONG4
        return PushLong(4);
      case 'G': {  // BINFLOAT: big-endian double
        if (!Take(8, &p)) return false;
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = bits << 8 | p[i];
        a = New(Kind::kFloat);
        std::memcpy(&a->f, &bits, 8);
        Push(a);
        return true;
      }
      case 0x88:  // NEWTRUE
        Push(true_);
        return true;
      case 0x89:  // NEWFALSE
        Push(false_);
        return true;
      case 'N':  // NONE
        Push(none_);
        return true;
      case 'X':  // BINUNICODE
        return PushString(Kind::kString, 4);
      case 0x8c:  // SHORT_BINUNICODE
        return PushString(Kind::kString, 1);
      case 0x8d:  // BINUNICODE8
        return PushString(Kind::kString, 8);
      case 'T':  // BINSTRING (Python 2 str): a negative length reads as huge and fails bounds
        return PushString(Kind::kString, 4);
      case 'U':  // SHORT_BINSTRING
        return PushString(Kind::kString, 1);
      case 'B':  // BINBYTES
        return PushString(Kind::kBytes, 4);
      case 'C':  // SHORT_BINBYTES
        return PushString(Kind::kBytes, 1);
      case 0x8e:  // BINBYTES8
        return PushString(Kind::kBytes, 8);
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module, name;
        return TakeLine(&module) && TakeLine(&name) && PushGlobal(module, name);
      }
      case 0x93:  // STACK_GLOBAL
        if (!Pop(&b) || !Pop(&a)) return false;
        if (a->kind != Kind::kString || b->kind != Kind::kString) {
          return Fail("STACK_GLOBAL expects two strings");
        }
        return PushGlobal(a->s, b->s);
      case 'R':   // REDUCE
      case 0x81:  // NEWOBJ: cls.__new__(cls, *args); the same for the allowed globals
        return Pop(&b) && Pop(&a) && Call(a, b);
      case 'b':  // BUILD: the state of a state dict (its _metadata) is ignored
        if (!Pop(&b) || !Top(&a)) return false;
        if (a->kind != Kind::kDict) {
          return FailUnsupported(absl::StrCat("BUILD on a value of type ", KindName(a->kind)));
        }
        return true;
      case 'Q':  // BINPERSID
        return Pop(&a) && PersistentLoad(a);
      case 'q':  // BINPUT
        return TakeUint(1, &u) && Memo(u);
      case 'r':  // LONG_BINPUT
        return TakeUint(4, &u) && Memo(u);
      case 0x94:  // MEMOIZE
        return Memo(memo_.size());
      case 'h':  // BINGET
        return TakeUint(1, &u) && Get(u);
      case 'j':  // LONG_BINGET
        return TakeUint(4, &u) && Get(u);
      case '0':  // POP
        return Pop(&a);
      case '1':  // POP_MARK
        return PopMark(&items);
      case '2':  // DUP
        if (!Top(&a)) return false;
        Push(a);
        return true;
      default: {
        const bool printable = op_ >= 0x20 && op_ < 0x7f;
        return FailUnsupported(
            absl::StrCat("unsupported pickle opcode",
                         printable ? absl::StrCat(" '", std::string(1, op_), "'") : ""));
      }
    }
  }

  const std::string path_;
  const std::string record_;
  const uint8_t* data_;
  const uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t op_pos_ = 0;
  uint8_t op_ = 0;
  absl::Status error_;
  std::deque<Value> arena_;
  std::vector<Value*> stack_;
  std::vector<uint64_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  Value* none_;
  Value* true_;
  Value* false_;
};

// ---------------------------------------------------------------------------------------------
// Tensors: check the view against its storage, then copy it out contiguously.

std::string JoinInts(const std::vector<int64_t>& v) {
  return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
}

absl::Status CopyTensor(const std::string& path, const ZipArchive& zip, const std::string& top,
                        const std::string& name, const TensorData& t, TensorToWrite* out) {
  const Value& storage = *t.storage;
  const uint64_t es = DTypeSize(storage.dtype);
  const std::string where =
      absl::StrCat("tensor \"", name, "\" (", DTypeName(storage.dtype), ", size ", JoinInts(t.size),
                   ", stride ", JoinInts(t.stride), ", storage offset ", t.offset, ")");
  const std::string record = absl::StrCat(top, "/data/", storage.s);
  const ZipEntry* entry = zip.Find(record);
  if (entry == nullptr) {
    return Corrupt(path, absl::StrCat(where, ": storage record \"", record, "\" is missing"));
  }
  absl::StatusOr<ByteView> bytes = zip.Read(*entry);
  if (!bytes.ok()) return bytes.status();
  // Every record is checked, not only data.pkl: a flipped bit in the weights would otherwise load.
  if (Crc32(bytes->data, bytes->size) != entry->crc) {
    return Corrupt(path, absl::StrCat("storage record \"", record,
                                      "\" fails its CRC-32 check: the file is corrupted"));
  }
  const uint64_t storage_numel = static_cast<uint64_t>(storage.i);
  if (storage_numel > bytes->size / es) {
    return Corrupt(path, absl::StrCat("storage record \"", record, "\" has ", bytes->size,
                                      " bytes, fewer than its ", storage_numel, " elements of ",
                                      DTypeName(storage.dtype), " need"));
  }
  uint64_t numel = 1;
  for (size_t d = 0; d < t.size.size(); ++d) {
    if (t.size[d] < 0 || t.stride[d] < 0) {
      return Corrupt(path, absl::StrCat(where, ": negative size or stride"));
    }
    const uint64_t n = static_cast<uint64_t>(t.size[d]);
    if (n != 0 && numel > kMaxElements / n) {
      return Corrupt(path, absl::StrCat(where, ": too many elements"));
    }
    numel *= n;
  }
  if (t.offset < 0) return Corrupt(path, absl::StrCat(where, ": negative storage offset"));
  out->name = name;
  out->dtype = storage.dtype;
  out->shape = t.size;
  out->bytes.clear();
  if (numel == 0) return absl::OkStatus();

  // The last element the view touches must lie inside the storage.
  uint64_t last = static_cast<uint64_t>(t.offset);
  const std::string past = absl::StrCat(where, " runs past its storage \"", record, "\" of ",
                                        storage_numel, " elements");
  if (last >= storage_numel) return Corrupt(path, past);
  for (size_t d = 0; d < t.size.size(); ++d) {
    const uint64_t span = static_cast<uint64_t>(t.size[d]) - 1;
    const uint64_t stride = static_cast<uint64_t>(t.stride[d]);
    if (span != 0 && stride > (storage_numel - 1 - last) / span) return Corrupt(path, past);
    last += span * stride;
  }
  if (numel > storage_numel && numel * es > kMaxExpandedTensorBytes) {
    return Unsupported(path, absl::StrCat(where, ": an overlapping view of ", numel * es,
                                          " bytes, more than its storage holds"));
  }

  out->bytes.resize(numel * es);
  uint8_t* dst = reinterpret_cast<uint8_t*>(out->bytes.data());
  const uint8_t* src = bytes->data;
  const size_t nd = t.size.size();
  bool contiguous = true;
  int64_t expected_stride = 1;
  for (size_t d = nd; d-- > 0;) {
    if (t.size[d] != 1 && t.stride[d] != expected_stride) {
      contiguous = false;
      break;
    }
    expected_stride *= t.size[d];
  }
  if (contiguous) {
    std::memcpy(dst, src + t.offset * es, numel * es);
    return absl::OkStatus();
  }
  // Strided: walk the outer indices like an odometer and copy one innermost row at a time.
  const uint64_t row = static_cast<uint64_t>(t.size[nd - 1]);
  const uint64_t row_stride = static_cast<uint64_t>(t.stride[nd - 1]);
  std::vector<int64_t> idx(nd, 0);
  for (;;) {
    uint64_t off = static_cast<uint64_t>(t.offset);
    for (size_t d = 0; d + 1 < nd; ++d) off += static_cast<uint64_t>(idx[d] * t.stride[d]);
    if (row_stride == 1) {
      std::memcpy(dst, src + off * es, row * es);
      dst += row * es;
    } else {
      for (uint64_t j = 0; j < row; ++j, dst += es) {
        std::memcpy(dst, src + (off + j * row_stride) * es, es);
      }
    }
    size_t d = nd - 1;
    while (d > 0 && ++idx[d - 1] == t.size[d - 1]) {
      idx[d - 1] = 0;
      --d;
    }
    if (d == 0) break;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<TensorToWrite>> ReadTorchStateDict(const std::string& path) {
  MappedFile file;
  absl::Status s = file.Open(path);
  if (!s.ok()) return s;
  ZipArchive zip;
  s = zip.Open(path, file.bytes());
  if (!s.ok()) return s;

  // The top folder is named after the file when it was saved: find "<top>/data.pkl".
  std::string top;
  bool found = false;
  for (const ZipEntry& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash != std::string::npos && slash > 0 && e.name.substr(slash) == "/data.pkl") {
      top = e.name.substr(0, slash);
      found = true;
      break;
    }
  }
  if (!found) {
    return Corrupt(path, "zip archive has no <top>/data.pkl record: not a torch.save checkpoint");
  }

  if (const ZipEntry* e = zip.Find(top + "/byteorder")) {
    absl::StatusOr<ByteView> b = zip.Read(*e);
    if (!b.ok()) return b.status();
    absl::string_view order(reinterpret_cast<const char*>(b->data), b->size);
    while (!order.empty() && (order.back() == '\n' || order.back() == ' ')) order.remove_suffix(1);
    if (order == "big") {
      return Unsupported(path, "big-endian checkpoint (byteorder record says \"big\")");
    }
    if (order != "little") {
      return Corrupt(path, absl::StrCat("byteorder record holds \"", order,
                                        "\", expected \"little\" or \"big\""));
    }
  }

  const std::string pkl_name = top + "/data.pkl";
  const ZipEntry& pkl_entry = *zip.Find(pkl_name);
  absl::StatusOr<ByteView> pkl = zip.Read(pkl_entry);
  if (!pkl.ok()) return pkl.status();
  if (Crc32(pkl->data, pkl->size) != pkl_entry.crc) {
    return Corrupt(path, absl::StrCat("zip record \"", pkl_name,
                                      "\" fails its CRC-32 check: the file is corrupted"));
  }
  PickleVm vm(path, pkl_name, *pkl);
  absl::StatusOr<const Value*> root = vm.Run();
  if (!root.ok()) return root.status();
  if ((*root)->kind != Kind::kDict) {
    return Unsupported(
        path, absl::StrCat("\"", pkl_name, "\" holds a value of type ", KindName((*root)->kind),
                           ", not a state dict of tensors"));
  }
  std::vector<TensorToWrite> tensors;
  tensors.reserve((*root)->dict->entries.size());
  for (const auto& [key, value] : (*root)->dict->entries) {
    if (key->kind != Kind::kString) {
      return Unsupported(
          path, absl::StrCat("state dict key has type ", KindName(key->kind), ", not str"));
    }
    if (value->kind != Kind::kTensor) {
      return Unsupported(path, absl::StrCat("state dict entry \"", key->s, "\" has type ",
                                            KindName(value->kind), ", not tensor"));
    }
    tensors.emplace_back();
    s = CopyTensor(path, zip, top, key->s, *value->tensor, &tensors.back());
    if (!s.ok()) return s;
  }
  return tensors;
}

}  // namespace pmpd::models
