// A small Status-returning layer over the HDF5 C library: groups, scalar/vector attributes, and
// datasets that grow along axis 0 (chunked, optionally shuffle+deflate compressed). Everything we
// store in HDF5 (gen-data KV datasets) goes through here, so HDF5's error stack, its handle
// lifetimes and its float16 type live in one file. HDF5 types stay out of this header.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pmpd::models {

enum class H5Type { kInt32, kInt64, kFloat16, kFloat32, kFloat64 };
size_t H5TypeSize(H5Type t);

// One open HDF5 file. Move-only; closing flushes. Not thread-safe (neither is libhdf5 serial).
// Paths are HDF5 object paths ("pair_4_3/labels"); errors name the file and the object.
class Hdf5File {
 public:
  // Create truncates an existing file. Open is read-only unless `writable`.
  static absl::StatusOr<Hdf5File> Create(const std::string& path);
  static absl::StatusOr<Hdf5File> Open(const std::string& path, bool writable = false);
  Hdf5File(Hdf5File&& other) noexcept;
  Hdf5File& operator=(Hdf5File&& other) noexcept;
  ~Hdf5File();

  // Flushes HDF5's caches to the file and closes it; errors (e.g. disk full) are reported here.
  absl::Status Close();
  const std::string& path() const { return path_; }

  bool Exists(const std::string& object) const;
  absl::Status CreateGroup(const std::string& group);
  // Unlinks a group or dataset (its space is not reclaimed).
  absl::Status Remove(const std::string& object);
  // Names of the direct children of `group` ("/" for the root), sorted.
  absl::StatusOr<std::vector<std::string>> ListChildren(const std::string& group) const;

  // Attributes on a group or dataset ("/" = root). Setting replaces an existing attribute.
  absl::Status SetAttribute(const std::string& object, const std::string& name,
                            const std::string& value);
  absl::Status SetAttribute(const std::string& object, const std::string& name, int64_t value);
  absl::Status SetAttribute(const std::string& object, const std::string& name, double value);
  absl::Status SetAttribute(const std::string& object, const std::string& name,
                            const std::vector<int64_t>& value);
  bool HasAttribute(const std::string& object, const std::string& name) const;
  absl::StatusOr<std::string> GetStringAttribute(const std::string& object,
                                                 const std::string& name) const;
  absl::StatusOr<int64_t> GetIntAttribute(const std::string& object, const std::string& name) const;
  absl::StatusOr<double> GetDoubleAttribute(const std::string& object,
                                            const std::string& name) const;
  absl::StatusOr<std::vector<int64_t>> GetIntVectorAttribute(const std::string& object,
                                                             const std::string& name) const;

  // A dataset of shape [0, inner...] that grows along axis 0; chunks hold `chunk_rows` rows;
  // `compress` adds the shuffle + deflate(4) filters.
  absl::Status CreateAppendable(const std::string& dataset, H5Type type,
                                const std::vector<int64_t>& inner, int64_t chunk_rows,
                                bool compress);
  // Appends `rows` rows (rows * prod(inner) elements of the dataset's type, raw bytes in `data`).
  absl::Status Append(const std::string& dataset, const void* data, int64_t rows);
  absl::StatusOr<std::vector<int64_t>> Shape(const std::string& dataset) const;
  absl::StatusOr<H5Type> Type(const std::string& dataset) const;
  // Reads rows [begin, begin + rows) (all inner elements) into `out`, which must hold them. The
  // stored type must be `type` (no conversions: a type mismatch is an error).
  absl::Status ReadRows(const std::string& dataset, H5Type type, int64_t begin, int64_t rows,
                        void* out) const;
  // Whole dataset helpers for 1-D and 2-D numeric data.
  template <typename T>
  absl::Status ReadAll(const std::string& dataset, std::vector<T>* out,
                       std::vector<int64_t>* shape = nullptr) const;

 private:
  struct Handle;
  Hdf5File(std::string path, std::unique_ptr<Handle> handle);
  absl::Status ReadAllRaw(const std::string& dataset, H5Type type, std::vector<char>* bytes,
                          std::vector<int64_t>* shape) const;
  std::string path_;
  std::unique_ptr<Handle> h_;
};

template <typename T>
H5Type H5TypeOf();
template <>
inline H5Type H5TypeOf<int32_t>() {
  return H5Type::kInt32;
}
template <>
inline H5Type H5TypeOf<int64_t>() {
  return H5Type::kInt64;
}
template <>
inline H5Type H5TypeOf<uint16_t>() {
  return H5Type::kFloat16;
}
template <>
inline H5Type H5TypeOf<float>() {
  return H5Type::kFloat32;
}
template <>
inline H5Type H5TypeOf<double>() {
  return H5Type::kFloat64;
}

template <typename T>
absl::Status Hdf5File::ReadAll(const std::string& dataset, std::vector<T>* out,
                               std::vector<int64_t>* shape) const {
  std::vector<char> bytes;
  absl::Status s = ReadAllRaw(dataset, H5TypeOf<T>(), &bytes, shape);
  if (!s.ok()) return s;
  out->resize(bytes.size() / sizeof(T));
  if (!bytes.empty()) std::memcpy(out->data(), bytes.data(), bytes.size());
  return absl::OkStatus();
}

}  // namespace pmpd::models
