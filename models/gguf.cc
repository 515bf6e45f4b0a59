#include "models/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/half.h"

// Multi-byte fields are read with memcpy (no alignment assumed) in host order.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the GGUF reader assumes a little-endian host");

namespace pmpd::models {
namespace {

// A `T` at p, read with memcpy (no alignment assumed).
template <typename T>
T Load(const uint8_t* p) {
  T x;
  std::memcpy(&x, p, sizeof(T));
  return x;
}

constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
// Arrays of arrays are legal but unused in practice; deeper nesting is refused.
constexpr int kMaxArrayDepth = 8;
// Upper bounds on what the metadata may make us allocate, whatever its counts claim (each count is
// also checked against the bytes left in the file). The largest real vocabularies (262k tokens,
// their scores and types, or 128k tokens and 280k merges) use a few percent of this.
constexpr uint64_t kMaxMetadataElements = uint64_t{1} << 24;
constexpr uint64_t kMaxNestedArrays = uint64_t{1} << 16;
// Smallest encodings: a key/value pair (empty key, a u8), a tensor info (empty name, one dim).
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

// Block size (elements) and bytes per block of every type ggml defines (ggml.c type_traits).
// gguf-py's GGML_QUANT_SIZES agrees except for Q8_1, which it still sizes with float32 d and s (40
// bytes); ggml's block_q8_1 holds two halves (36). Numbers 4, 5 (Q4_2, Q4_3) and 31..33, 36..38
// (repacked layouts) were removed from ggml and are refused like unknown numbers.
struct TypeTraits {
  uint32_t id;
  const char* name;
  uint64_t block;
  uint64_t bytes;
};
constexpr TypeTraits kTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},    {40, "NVFP4", 64, 36},
    {41, "Q1_0", 128, 18},
};

const TypeTraits* FindType(uint32_t id) {
  for (const auto& t : kTypes) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

// Bytes of one scalar metadata value; 0 for string and array.
uint64_t ScalarBytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64:
      return 8;
    default:
      return 0;
  }
}

bool IsUnsigned(GgufValueType t) {
  return t == GgufValueType::kU8 || t == GgufValueType::kU16 || t == GgufValueType::kU32 ||
         t == GgufValueType::kU64 || t == GgufValueType::kBool;
}
bool IsSigned(GgufValueType t) {
  return t == GgufValueType::kI8 || t == GgufValueType::kI16 || t == GgufValueType::kI32 ||
         t == GgufValueType::kI64;
}
bool IsFloat(GgufValueType t) { return t == GgufValueType::kF32 || t == GgufValueType::kF64; }

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": invalid GGUF file: ", what));
}

// A bounds-checked reader over the mapped bytes. Reads return false (and consume nothing) when
// the bytes are not there; the caller names what it was reading.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size) : base_(base), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t size() const { return size_; }
  uint64_t left() const { return size_ - pos_; }

  bool Raw(void* out, uint64_t n) {
    if (n > left()) return false;
    std::memcpy(out, base_ + pos_, n);
    pos_ += n;
    return true;
  }
  bool U32(uint32_t* v) { return Raw(v, 4); }
  bool U64(uint64_t* v) { return Raw(v, 8); }
  const uint8_t* here() const { return base_ + pos_; }
  void Skip(uint64_t n) { pos_ += n; }  // n <= left(), checked by the caller

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// Reads metadata values, keeping count of what they allocate.
class MetadataParser {
 public:
  MetadataParser(const std::string& path, Cursor* c) : path_(path), c_(*c) {}

  absl::Status Truncated(absl::string_view what) const {
    return Bad(path_, absl::StrCat("file truncated in ", what, " at byte ", c_.pos(),
                                   " (the file has ", c_.size(), " bytes)"));
  }

  // A u64 length and that many bytes; `where` (and `index` >= 0: its element) names it in errors.
  absl::Status ReadString(absl::string_view where, std::string* s, int64_t index = -1) {
    auto name = [&] {
      return index < 0 ? std::string(where) : absl::StrCat(where, "[", index, "]");
    };
    uint64_t n = 0;
    if (!c_.U64(&n)) return Truncated(absl::StrCat("the length of ", name()));
    if (n > c_.left()) {
      return Bad(path_, absl::StrCat(name(), ": a string of ", n, " bytes at byte ", c_.pos(),
                                     " runs past the end of the file (", c_.size(),
                                     " bytes): file truncated?"));
    }
    s->assign(reinterpret_cast<const char*>(c_.here()), n);
    c_.Skip(n);
    return absl::OkStatus();
  }

  absl::Status ReadType(const std::string& where, GgufValueType* t) {
    uint32_t raw = 0;
    if (!c_.U32(&raw)) return Truncated(absl::StrCat("the value type of ", where));
    if (raw > static_cast<uint32_t>(GgufValueType::kF64)) {
      return Bad(path_, absl::StrCat(where, " has unknown value type ", raw, " (known: 0..12)"));
    }
    *t = static_cast<GgufValueType>(raw);
    return absl::OkStatus();
  }

  // One value of type `t` into *v; `where` names it ("metadata \"general.name\"").
  absl::Status ReadValue(const std::string& where, GgufValueType t, GgufValue* v, int depth) {
    v->type = t;
    if (t == GgufValueType::kString) return ReadString(where, &v->s);
    if (t == GgufValueType::kArray) return ReadArray(where, v, depth);
    const uint64_t n = ScalarBytes(t);
    if (n > c_.left()) return Truncated(where);
    ReadScalar(c_.here(), t, &v->u, &v->i, &v->f);
    c_.Skip(n);
    if (t == GgufValueType::kBool && v->u > 1) {
      return Bad(path_,
                 absl::StrCat(where, " is a bool with byte value ", v->u, " (expected 0 or 1)"));
    }
    return absl::OkStatus();
  }

 private:
  static void ReadScalar(const uint8_t* p, GgufValueType t, uint64_t* u, int64_t* i, double* f) {
    switch (t) {
      case GgufValueType::kU8:
      case GgufValueType::kBool:
        *u = p[0];
        break;
      case GgufValueType::kI8:
        *i = static_cast<int8_t>(p[0]);
        break;
      case GgufValueType::kU16:
        *u = Load<uint16_t>(p);
        break;
      case GgufValueType::kI16:
        *i = Load<int16_t>(p);
        break;
      case GgufValueType::kU32:
        *u = Load<uint32_t>(p);
        break;
      case GgufValueType::kI32:
        *i = Load<int32_t>(p);
        break;
      case GgufValueType::kF32:
        *f = Load<float>(p);
        break;
      case GgufValueType::kU64:
        *u = Load<uint64_t>(p);
        break;
      case GgufValueType::kI64:
        *i = Load<int64_t>(p);
        break;
      case GgufValueType::kF64:
        *f = Load<double>(p);
        break;
      default:
        break;
    }
  }

  absl::Status ReadArray(const std::string& where, GgufValue* v, int depth) {
    if (depth >= kMaxArrayDepth) {
      return Bad(path_, absl::StrCat(where, ": arrays nested deeper than ", kMaxArrayDepth));
    }
    GgufValueType et = GgufValueType::kU8;
    if (auto st = ReadType(absl::StrCat("the element type of ", where), &et); !st.ok()) return st;
    v->array_type = et;
    uint64_t count = 0;
    if (!c_.U64(&count)) return Truncated(absl::StrCat("the length of ", where));
    // Smallest encoding of one element: a scalar's bytes, a string's length, an array's type +
    // length.
    const uint64_t min_bytes = et == GgufValueType::kString  ? 8
                               : et == GgufValueType::kArray ? 12
                                                             : ScalarBytes(et);
    if (count > c_.left() / min_bytes) {
      return Bad(path_, absl::StrCat(where, ": array of ", count, " ", GgufValueTypeName(et),
                                     " elements cannot fit in the ", c_.left(),
                                     " bytes left in the file (file truncated?)"));
    }
    elements_ += count;
    if (elements_ > kMaxMetadataElements) {
      return Bad(path_, absl::StrCat(where, ": the metadata holds more than ", kMaxMetadataElements,
                                     " array elements"));
    }
    if (et == GgufValueType::kArray) {
      nested_ += count;
      if (nested_ > kMaxNestedArrays) {
        return Bad(path_, absl::StrCat(where, ": more than ", kMaxNestedArrays, " nested arrays"));
      }
      v->array.resize(count);
      for (uint64_t k = 0; k < count; ++k) {
        auto st = ReadValue(absl::StrCat(where, "[", k, "]"), et, &v->array[k], depth + 1);
        if (!st.ok()) return st;
      }
      return absl::OkStatus();
    }
    if (et == GgufValueType::kString) {
      v->array_s.resize(count);
      for (uint64_t k = 0; k < count; ++k) {
        if (auto st = ReadString(where, &v->array_s[k], static_cast<int64_t>(k)); !st.ok())
          return st;
      }
      return absl::OkStatus();
    }
    // Scalars: all `count` elements are known to be in the file.
    const uint8_t* p = c_.here();
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    if (IsUnsigned(et)) v->array_u.resize(count);
    if (IsSigned(et)) v->array_i.resize(count);
    if (IsFloat(et)) v->array_f.resize(count);
    for (uint64_t k = 0; k < count; ++k, p += min_bytes) {
      ReadScalar(p, et, &u, &i, &f);
      if (et == GgufValueType::kBool && u > 1) {
        return Bad(path_, absl::StrCat(where, "[", k, "] is a bool with byte value ", u,
                                       " (expected 0 or 1)"));
      }
      if (IsUnsigned(et)) v->array_u[k] = u;
      if (IsSigned(et)) v->array_i[k] = i;
      if (IsFloat(et)) v->array_f[k] = f;
    }
    c_.Skip(count * min_bytes);
    return absl::OkStatus();
  }

  const std::string& path_;
  Cursor& c_;
  uint64_t elements_ = 0, nested_ = 0;
};

}  // namespace

const char* GgufValueTypeName(GgufValueType t) {
  static const char* kNames[] = {"U8",   "I8",     "U16",   "I16", "U32", "I32", "F32",
                                 "BOOL", "STRING", "ARRAY", "U64", "I64", "F64"};
  const uint32_t i = static_cast<uint32_t>(t);
  return i < sizeof(kNames) / sizeof(kNames[0]) ? kNames[i] : "?";
}

std::string GgmlTypeName(uint32_t type) {
  const TypeTraits* t = FindType(type);
  return t != nullptr ? t->name : absl::StrCat("type ", type);
}

size_t GgufValue::size() const {
  if (type != GgufValueType::kArray) return 0;
  return array_u.size() + array_i.size() + array_f.size() + array_s.size() + array.size();
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::shape() const {
  return std::vector<int64_t>(ne.rbegin(), ne.rend());
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat(path, ": fstat failed: ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file (expected a GGUF file)"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return Bad(path, "the file is empty");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED)
    return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(errno)));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->map_ = map;
  f->map_size_ = size;
  const uint8_t* base = static_cast<const uint8_t*>(map);
  Cursor c(base, size);
  MetadataParser parser(path, &c);

  // Header.
  uint8_t magic[4];
  if (!c.Raw(magic, 4)) return parser.Truncated("the magic");
  if (std::memcmp(magic, kMagic, 4) != 0) {
    return Bad(path,
               absl::StrCat("bad magic \"",
                            absl::CHexEscape(absl::string_view(reinterpret_cast<char*>(magic), 4)),
                            "\" (expected \"GGUF\"): not a GGUF file"));
  }
  if (!c.U32(&f->version_)) return parser.Truncated("the version");
  if (f->version_ != 2 && f->version_ != 3) {
    const uint32_t v = f->version_;
    const uint32_t swapped = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
    return Bad(
        path,
        absl::StrCat("GGUF version ", v, " is not supported (versions 2 and 3 are)",
                     v == 1 ? "; version 1 files predate 64-bit counts: reconvert the model" : "",
                     swapped == 2 || swapped == 3 ? "; the file looks big-endian" : ""));
  }
  uint64_t tensor_count = 0, kv_count = 0;
  if (!c.U64(&tensor_count)) return parser.Truncated("the tensor count");
  if (!c.U64(&kv_count)) return parser.Truncated("the metadata count");
  if (kv_count > c.left() / kMinKvBytes) {
    return Bad(path, absl::StrCat("metadata count ", kv_count, " cannot fit in the ", c.left(),
                                  " bytes after the header (file truncated?)"));
  }
  if (tensor_count > c.left() / kMinTensorInfoBytes) {
    return Bad(path, absl::StrCat("tensor count ", tensor_count, " cannot fit in the ", c.left(),
                                  " bytes after the header (file truncated?)"));
  }

  // Metadata.
  for (uint64_t k = 0; k < kv_count; ++k) {
    std::string key;
    if (auto s = parser.ReadString(absl::StrCat("the key of metadata entry ", k), &key); !s.ok())
      return s;
    const std::string where = absl::StrCat("metadata \"", key, "\"");
    GgufValueType t = GgufValueType::kU8;
    if (auto s = parser.ReadType(where, &t); !s.ok()) return s;
    GgufValue v;
    if (auto s = parser.ReadValue(where, t, &v, 0); !s.ok()) return s;
    if (!f->metadata_.emplace(key, std::move(v)).second) {
      return Bad(path, absl::StrCat("duplicate metadata key \"", key, "\""));
    }
  }
  if (auto it = f->metadata_.find("general.alignment"); it != f->metadata_.end()) {
    const GgufValue& a = it->second;
    if (a.type != GgufValueType::kU32) {
      return Bad(path, absl::StrCat("metadata \"general.alignment\" is ", GgufValueTypeName(a.type),
                                    " (expected U32)"));
    }
    if (a.u == 0 || (a.u & (a.u - 1)) != 0) {
      return Bad(
          path,
          absl::StrCat("metadata \"general.alignment\" must be a nonzero power of two, got ", a.u));
    }
    f->alignment_ = a.u;
  } else {
    f->alignment_ = kDefaultAlignment;
  }

  // Tensor infos.
  f->tensors_.resize(tensor_count);
  for (uint64_t k = 0; k < tensor_count; ++k) {
    GgufTensorInfo& t = f->tensors_[k];
    if (auto s = parser.ReadString(absl::StrCat("the name of tensor info ", k), &t.name); !s.ok())
      return s;
    const std::string where = absl::StrCat("tensor \"", t.name, "\"");
    uint32_t n_dims = 0;
    if (!c.U32(&n_dims)) return parser.Truncated(absl::StrCat("the dimension count of ", where));
    if (n_dims < 1 || n_dims > kMaxDims) {
      return Bad(
          path, absl::StrCat(where, " has ", n_dims, " dimensions (expected 1 to ", kMaxDims, ")"));
    }
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      if (!c.U64(&ne)) return parser.Truncated(absl::StrCat("the dimensions of ", where));
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Bad(path,
                   absl::StrCat(where, " has dimension ne[", d, "] = ", ne, " (expected >= 1)"));
      }
      if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne) {
        return Bad(path, absl::StrCat(where, ": element count overflows"));
      }
      numel *= ne;
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    if (!c.U32(&t.type)) return parser.Truncated(absl::StrCat("the type of ", where));
    if (!c.U64(&t.offset)) return parser.Truncated(absl::StrCat("the offset of ", where));
    const TypeTraits* tt = FindType(t.type);
    if (tt == nullptr)
      return Bad(path, absl::StrCat(where, " has unknown ggml type number ", t.type));
    if (static_cast<uint64_t>(t.ne[0]) % tt->block != 0) {
      return Bad(path,
                 absl::StrCat(where, " has rows of ", t.ne[0], " elements, not a multiple of the ",
                              tt->name, " block size ", tt->block));
    }
    const uint64_t blocks = numel / tt->block;
    if (blocks > std::numeric_limits<uint64_t>::max() / tt->bytes) {
      return Bad(path, absl::StrCat(where, ": byte size overflows"));
    }
    t.nbytes = blocks * tt->bytes;
  }
  std::map<std::string, size_t> index;
  for (size_t k = 0; k < f->tensors_.size(); ++k) {
    if (!index.emplace(f->tensors_[k].name, k).second) {
      return Bad(path, absl::StrCat("duplicate tensor name \"", f->tensors_[k].name, "\""));
    }
  }

  // Tensor data: after the infos, padded to the alignment.
  const uint64_t a = f->alignment_;
  const uint64_t data_start = (c.pos() + a - 1) / a * a;  // pos < 2^63 and a < 2^32: no overflow
  if (tensor_count > 0 && data_start > size) {
    return Bad(path, absl::StrCat("file truncated: the tensor data would start at byte ",
                                  data_start, " but the file has ", size, " bytes"));
  }
  const uint64_t data_size = tensor_count > 0 ? size - data_start : 0;
  for (GgufTensorInfo& t : f->tensors_) {
    const std::string where = absl::StrCat("tensor \"", t.name, "\"");
    if (t.offset % a != 0) {
      return Bad(path, absl::StrCat(where, ": offset ", t.offset,
                                    " is not a multiple of the alignment ", a));
    }
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      return Bad(path,
                 absl::StrCat(where, ": data at offset ", t.offset, " (", t.nbytes, " bytes of ",
                              GgmlTypeName(t.type), ") runs past the end of the data section (",
                              data_size, " bytes): file truncated?"));
    }
    t.data = base + data_start + t.offset;
  }
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : f->tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* x, const GgufTensorInfo* y) { return x->offset < y->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensorInfo& prev = *by_offset[k - 1];
    const GgufTensorInfo& cur = *by_offset[k];
    if (cur.offset < prev.offset + prev.nbytes) {
      return Bad(path, absl::StrCat("tensors \"", prev.name, "\" (bytes ", prev.offset, "..",
                                    prev.offset + prev.nbytes, ") and \"", cur.name,
                                    "\" (from byte ", cur.offset, ") overlap"));
    }
  }
  f->tensor_index_ = std::move(index);
  return f;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

const GgufTensorInfo* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

absl::Status MissingKey(const std::string& path, const std::string& key) {
  return absl::NotFoundError(absl::StrCat(path, ": missing metadata key \"", key, "\""));
}

absl::Status WrongType(const std::string& path, const std::string& key, const GgufValue& v,
                       absl::string_view expected) {
  const std::string got = v.type == GgufValueType::kArray
                              ? absl::StrCat("an array of ", GgufValueTypeName(v.array_type))
                              : std::string(GgufValueTypeName(v.type));
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": metadata \"", key, "\" is ", got, "; expected ", expected));
}

// An integer element as int64, or false when it does not fit.
bool AsInt64(const GgufValue& v, int64_t* out) {
  if (IsSigned(v.type)) {
    *out = v.i;
    return true;
  }
  if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  *out = static_cast<int64_t>(v.u);
  return true;
}

}  // namespace

absl::StatusOr<std::string> GgufFile::GetString(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return MissingKey(path_, key);
  if (it->second.type != GgufValueType::kString) return WrongType(path_, key, it->second, "STRING");
  return it->second.s;
}

absl::StatusOr<int64_t> GgufFile::GetInt(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return MissingKey(path_, key);
  const GgufValue& v = it->second;
  if (!IsSigned(v.type) && (!IsUnsigned(v.type) || v.type == GgufValueType::kBool)) {
    return WrongType(path_, key, v, "an integer");
  }
  int64_t out = 0;
  if (!AsInt64(v, &out)) {
    return absl::OutOfRangeError(
        absl::StrCat(path_, ": metadata \"", key, "\" = ", v.u, " is out of range"));
  }
  return out;
}

absl::StatusOr<double> GgufFile::GetFloat(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return MissingKey(path_, key);
  const GgufValue& v = it->second;
  if (IsFloat(v.type)) return v.f;
  if (IsSigned(v.type)) return static_cast<double>(v.i);
  if (IsUnsigned(v.type) && v.type != GgufValueType::kBool) return static_cast<double>(v.u);
  return WrongType(path_, key, v, "a number");
}

absl::StatusOr<bool> GgufFile::GetBool(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return MissingKey(path_, key);
  if (it->second.type != GgufValueType::kBool) return WrongType(path_, key, it->second, "BOOL");
  return it->second.u != 0;
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return MissingKey(path_, key);
  const GgufValue& v = it->second;
  if (v.type != GgufValueType::kArray || v.array_type != GgufValueType::kString) {
    return WrongType(path_, key, v, "an array of STRING");
  }
  return v.array_s;
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return MissingKey(path_, key);
  const GgufValue& v = it->second;
  if (v.type != GgufValueType::kArray || v.array_type == GgufValueType::kBool ||
      (!IsSigned(v.array_type) && !IsUnsigned(v.array_type))) {
    return WrongType(path_, key, v, "an array of integers");
  }
  if (IsSigned(v.array_type)) return v.array_i;
  std::vector<int64_t> out(v.array_u.size());
  for (size_t k = 0; k < out.size(); ++k) {
    if (v.array_u[k] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::OutOfRangeError(absl::StrCat(path_, ": metadata \"", key, "\"[", k,
                                                "] = ", v.array_u[k], " is out of range"));
    }
    out[k] = static_cast<int64_t>(v.array_u[k]);
  }
  return out;
}

absl::StatusOr<std::vector<double>> GgufFile::GetFloatArray(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return MissingKey(path_, key);
  const GgufValue& v = it->second;
  if (v.type != GgufValueType::kArray || v.array_type == GgufValueType::kBool ||
      !(IsFloat(v.array_type) || IsSigned(v.array_type) || IsUnsigned(v.array_type))) {
    return WrongType(path_, key, v, "an array of numbers");
  }
  if (IsFloat(v.array_type)) return v.array_f;
  std::vector<double> out;
  out.reserve(v.size());
  for (int64_t x : v.array_i) out.push_back(static_cast<double>(x));
  for (uint64_t x : v.array_u) out.push_back(static_cast<double>(x));
  return out;
}

// Block layouts (32 elements each; d, m are IEEE halves; element j of a block is written out[j]):
//   Q8_0: d | q[32] int8                     x[j] = d * q[j]
//   Q4_0: d | b[16]  q[j] = b[j] & 15, q[j + 16] = b[j] >> 4      x[j] = d * (q[j] - 8)
//   Q4_1: d | m | b[16]  (nibbles as Q4_0)   x[j] = d * q[j] + m
// d * q is exact in float32 (an 11-bit significand times at most 8 bits), so the results do not
// depend on evaluation order or FMA contraction: they equal ggml's and gguf-py's bit for bit.
absl::Status GgufFile::DequantizeF32(const GgufTensorInfo& t, float* out) const {
  const int64_t n = t.numel();
  const uint8_t* p = t.data;
  auto half = [](const uint8_t* q) { return kernels::F16ToF32(Load<uint16_t>(q)); };
  switch (t.type) {
    case static_cast<uint32_t>(GgmlType::kF32):
      std::memcpy(out, p, static_cast<size_t>(n) * sizeof(float));
      return absl::OkStatus();
    case static_cast<uint32_t>(GgmlType::kF16):
      for (int64_t i = 0; i < n; ++i) out[i] = half(p + 2 * i);
      return absl::OkStatus();
    case static_cast<uint32_t>(GgmlType::kBF16):
      for (int64_t i = 0; i < n; ++i) out[i] = kernels::Bf16ToF32(Load<uint16_t>(p + 2 * i));
      return absl::OkStatus();
    case static_cast<uint32_t>(GgmlType::kQ8_0):
      for (int64_t b = 0; b < n / 32; ++b, p += 34, out += 32) {
        const float d = half(p);
        for (int j = 0; j < 32; ++j) out[j] = d * static_cast<float>(static_cast<int8_t>(p[2 + j]));
      }
      return absl::OkStatus();
    case static_cast<uint32_t>(GgmlType::kQ4_0):
      for (int64_t b = 0; b < n / 32; ++b, p += 18, out += 32) {
        const float d = half(p);
        for (int j = 0; j < 16; ++j) {
          out[j] = d * static_cast<float>((p[2 + j] & 15) - 8);
          out[j + 16] = d * static_cast<float>((p[2 + j] >> 4) - 8);
        }
      }
      return absl::OkStatus();
    case static_cast<uint32_t>(GgmlType::kQ4_1):
      for (int64_t b = 0; b < n / 32; ++b, p += 20, out += 32) {
        const float d = half(p), m = half(p + 2);
        for (int j = 0; j < 16; ++j) {
          out[j] = d * static_cast<float>(p[4 + j] & 15) + m;
          out[j + 16] = d * static_cast<float>(p[4 + j] >> 4) + m;
        }
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": tensor \"", t.name, "\" has type ", GgmlTypeName(t.type),
                       "; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"));
  }
}

bool IsGgufPath(const std::string& path) {
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) return false;
  if (absl::EndsWithIgnoreCase(path, ".gguf")) return true;
  if (!exists || !S_ISREG(st.st_mode)) return false;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  uint8_t magic[4];
  const bool gguf = ::read(fd, magic, 4) == 4 && std::memcmp(magic, kMagic, 4) == 0;
  ::close(fd);
  return gguf;
}

}  // namespace pmpd::models
