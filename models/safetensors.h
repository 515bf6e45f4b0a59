// safetensors files: a validating, memory-mapped reader (single file or sharded checkpoint) and an
// atomic writer. Format: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pmpd::models {

enum class DType {
  kBool,
  kU8,
  kI8,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
  kF8E4M3,
  kF8E5M2
};

const char* DTypeName(DType d);
size_t DTypeSize(DType d);

// A view into a mapped file; valid while the owning SafetensorsFile lives.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // the file it lives in, for error messages

  int64_t numel() const;
  std::string ShapeString() const;
};

// One .safetensors file, memory-mapped read-only. Open() validates the whole header: sane length,
// well-formed JSON, known dtypes, offsets in range and non-overlapping, shape x dtype size ==
// bytes.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: model.safetensors, or shards listed in model.safetensors.index.json.
class SafetensorsCheckpoint {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> Open(const std::string& dir);

  // The tensor called `name`; NotFound naming the checkpoint when absent.
  absl::StatusOr<const TensorView*> Find(const std::string& name) const;
  bool Has(const std::string& name) const { return index_.count(name) > 0; }
  const std::string& dir() const { return dir_; }
  std::vector<std::string> Names() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

// Converts a F32/F16/BF16 tensor to float32 (`out` has numel() elements). Other dtypes: an error
// naming the tensor, its file and its dtype.
absl::Status ToFloat32(const TensorView& t, float* out);

// A tensor to write: raw little-endian bytes of `dtype`, row-major.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// Writes a .safetensors file atomically (temp file + fsync + rename). Names must be unique.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// A tensor to write from memory the caller owns (a mapped file, a buffer): nothing is copied.
struct TensorSlice {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

// As WriteSafetensors (same bytes for the same tensors, atomically), streaming each tensor from
// its memory to the file, so the writer holds the header only; `written(i)`, when given, runs
// after tensor i is written (e.g. ReleaseMappedPages on its source).
absl::Status WriteSafetensorsStreamed(const std::string& path,
                                      const std::vector<TensorSlice>& tensors,
                                      const std::map<std::string, std::string>& metadata = {},
                                      const std::function<void(size_t)>& written = {});

// Drops the pages of a tensor that lives in a memory-mapped file (SafetensorsFile) from the
// process's resident set; it reads back from the file when touched again. Only for mapped files
// (on anonymous memory it would zero the data). O(1) system call.
void ReleaseMappedPages(const uint8_t* data, size_t nbytes);

}  // namespace pmpd::models
