// GGUF files (llama.cpp's model format, versions 2 and 3) read without ggml: a validating,
// memory-mapped reader of the header, the metadata (every value type, arrays included) and the
// tensor infos, plus dequantization of F32, F16, BF16, Q8_0, Q4_0 and Q4_1 tensors to float32.
//
// Layout (little-endian): magic "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count;
// metadata_kv_count x (string key, u32 value type, value); tensor_count x (string name, u32 n_dims,
// n_dims x u64 ne (ne[0] the fastest-varying dimension), u32 ggml type, u64 offset); padding to
// `general.alignment` (default 32); the tensor data, each tensor at data_start + offset. A string
// is a u64 length and that many bytes (no NUL). Version 1 (u32 counts) is refused.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pmpd::models {

// Metadata value types, numbered as in the file.
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
const char* GgufValueTypeName(GgufValueType t);

// One metadata value. Scalars live in the matching member. An array keeps its element type and
// its elements in the one vector that matches that type (the others stay empty): 8 bytes per
// number rather than a GgufValue each, so a vocabulary's arrays cost about what the file holds.
// Open() caps the metadata at 2^24 array elements whatever the counts claim.
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  GgufValueType array_type = GgufValueType::kU8;  // kArray only
  uint64_t u = 0;                                 // unsigned integers and bool
  int64_t i = 0;                                  // signed integers
  double f = 0;                                   // floats
  std::string s;                                  // kString
  std::vector<uint64_t> array_u;                  // elements of type U8, U16, U32, U64, Bool
  std::vector<int64_t> array_i;                   // I8, I16, I32, I64
  std::vector<double> array_f;                    // F32, F64
  std::vector<std::string> array_s;               // String
  std::vector<GgufValue> array;                   // Array (nested arrays)

  // Number of elements of an array (0 for a scalar).
  size_t size() const;
};

// ggml tensor types, numbered as in the file. Only the ones we dequantize are named; any other
// number is reported by number (and by llama.cpp's name where known) when a tensor of it is used.
enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 8, kBF16 = 30 };
// "F32", "Q4_1", ..., or "type <n>" for numbers we do not know.
std::string GgmlTypeName(uint32_t type);

struct GgufTensorInfo {
  std::string name;
  // ggml order: ne[0] is the row length (contiguous); the Hugging Face shape is ne reversed.
  std::vector<int64_t> ne;
  uint32_t type = 0;    // GgmlType value (may be one we cannot dequantize)
  uint64_t offset = 0;  // from the start of the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  // Hugging Face order: {ne[n-1], ..., ne[0]}.
  std::vector<int64_t> shape() const;
};

// A GGUF file, memory-mapped read-only. Open() validates everything before returning: magic,
// version (2 or 3), counts (bounded by what the file can hold), string lengths, value types, array
// lengths, duplicate keys and tensor names, n_dims (1..4), dims > 0, element counts and byte sizes
// without overflow, rows a multiple of the block size for block types, alignment (a power of two),
// every tensor offset aligned and every tensor inside the file and not overlapping another.
// Tensors of every ggml type llama.cpp defines are accepted (their block sizes are known, so their
// byte ranges are checked); a type number outside that table is refused here, and a known type we
// cannot dequantize (Q5_K, IQ2_XS, ...) is refused by DequantizeF32, naming the type and the
// tensor. Errors: "<path>: <problem>".
class GgufFile {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  // Typed metadata access. Errors name the file and the key: missing key, wrong type, value out of
  // range of the requested type.
  bool Has(const std::string& key) const { return metadata_.count(key) > 0; }
  absl::StatusOr<std::string> GetString(const std::string& key) const;
  absl::StatusOr<int64_t> GetInt(const std::string& key) const;  // any integer type that fits int64
  absl::StatusOr<double> GetFloat(const std::string& key) const;  // F32/F64 (integers accepted too)
  absl::StatusOr<bool> GetBool(const std::string& key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(const std::string& key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(const std::string& key) const;
  absl::StatusOr<std::vector<double>> GetFloatArray(const std::string& key) const;

  // nullptr when absent.
  const GgufTensorInfo* FindTensor(const std::string& name) const;

  // Dequantizes `t` (F32, F16, BF16, Q8_0, Q4_0, Q4_1) into `out` (t.numel() floats, ggml order,
  // i.e. row-major in the Hugging Face shape). Other types: an error naming the type, the tensor
  // and the file. Cost: one pass over the tensor's bytes.
  absl::Status DequantizeF32(const GgufTensorInfo& t, float* out) const;

 private:
  GgufFile() = default;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// True when `path` is not a directory and either ends in ".gguf" (case-insensitive; also when no
// such file exists, so that the GGUF reader names the missing file) or is a regular file starting
// with the GGUF magic (a Hugging Face cache blob, say). Tools use it to take a GGUF file wherever
// they take a Hugging Face model directory. Cost: a stat, and a 4-byte read for other names.
bool IsGgufPath(const std::string& path);

}  // namespace pmpd::models
