#include "models/hdf5_file.h"

#include <hdf5.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "models/file_util.h"

namespace pmpd::models {
namespace {

// HDF5 prints its error stack to stderr by default; we turn that off once and turn the innermost
// message of the stack into our Status instead.
void SilenceHdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

herr_t CollectMessage(unsigned n, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && e->desc != nullptr) *out = e->desc;  // innermost: the most specific reason
  return 0;
}

std::string Hdf5Reason() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, CollectMessage, &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg.empty() ? "HDF5 error" : msg;
}

// Closes any HDF5 id on scope exit.
class Id {
 public:
  explicit Id(hid_t id = -1) : id_(id) {}
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() {
    if (id_ >= 0) H5Idec_ref(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
};

// IEEE half precision as h5py/numpy expect it: a float of size 2, sign bit 15, 5 exponent bits at
// 10, 10 mantissa bits at 0, bias 15.
hid_t Float16Type() {
  static hid_t t = [] {
    hid_t f = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(f, 15, 10, 5, 0, 10);
    H5Tset_size(f, 2);
    H5Tset_ebias(f, 15);
    H5Tlock(f);
    return f;
  }();
  return t;
}

hid_t NativeType(H5Type t) {
  switch (t) {
    case H5Type::kInt32:
      return H5T_NATIVE_INT32;
    case H5Type::kInt64:
      return H5T_NATIVE_INT64;
    case H5Type::kFloat16:
      return Float16Type();
    case H5Type::kFloat32:
      return H5T_NATIVE_FLOAT;
    case H5Type::kFloat64:
      return H5T_NATIVE_DOUBLE;
  }
  return -1;
}

const char* TypeName(H5Type t) {
  switch (t) {
    case H5Type::kInt32:
      return "int32";
    case H5Type::kInt64:
      return "int64";
    case H5Type::kFloat16:
      return "float16";
    case H5Type::kFloat32:
      return "float32";
    case H5Type::kFloat64:
      return "float64";
  }
  return "?";
}

// The stored type of a dataset as one of ours, or an error for anything else.
absl::StatusOr<H5Type> Classify(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_2) {
    if (size == 4) return H5Type::kInt32;
    if (size == 8) return H5Type::kInt64;
  } else if (cls == H5T_FLOAT) {
    if (size == 2) return H5Type::kFloat16;
    if (size == 4) return H5Type::kFloat32;
    if (size == 8) return H5Type::kFloat64;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported stored type (class ", static_cast<int>(cls), ", size ", size, ")"));
}

}  // namespace

size_t H5TypeSize(H5Type t) {
  switch (t) {
    case H5Type::kInt32:
      return 4;
    case H5Type::kInt64:
      return 8;
    case H5Type::kFloat16:
      return 2;
    case H5Type::kFloat32:
      return 4;
    case H5Type::kFloat64:
      return 8;
  }
  return 0;
}

struct Hdf5File::Handle {
  hid_t file = -1;
  ~Handle() {
    if (file >= 0) H5Fclose(file);
  }
};

Hdf5File::Hdf5File(std::string path, std::unique_ptr<Handle> handle)
    : path_(std::move(path)), h_(std::move(handle)) {}
Hdf5File::Hdf5File(Hdf5File&& other) noexcept = default;
Hdf5File& Hdf5File::operator=(Hdf5File&& other) noexcept = default;
Hdf5File::~Hdf5File() = default;

absl::StatusOr<Hdf5File> Hdf5File::Create(const std::string& path) {
  SilenceHdf5();
  auto h = std::make_unique<Handle>();
  h->file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (h->file < 0)
    return absl::InternalError(absl::StrCat(path, ": cannot create HDF5 file: ", Hdf5Reason()));
  return Hdf5File(path, std::move(h));
}

absl::StatusOr<Hdf5File> Hdf5File::Open(const std::string& path, bool writable) {
  SilenceHdf5();
  if (absl::Status st = CheckRegularFile(path); !st.ok()) return st;
  FILE* probe = std::fopen(path.c_str(), "rb");
  if (probe == nullptr)
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: no such file"));
  std::fclose(probe);
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an HDF5 file (no valid superblock)"));
  }
  auto h = std::make_unique<Handle>();
  h->file = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (h->file < 0)
    return absl::DataLossError(absl::StrCat(path, ": cannot open HDF5 file: ", Hdf5Reason()));
  return Hdf5File(path, std::move(h));
}

absl::Status Hdf5File::Close() {
  if (!h_ || h_->file < 0) return absl::OkStatus();
  const herr_t flushed = H5Fflush(h_->file, H5F_SCOPE_LOCAL);
  const herr_t closed = H5Fclose(h_->file);
  h_->file = -1;
  if (flushed < 0 || closed < 0)
    return absl::DataLossError(absl::StrCat(path_, ": flush/close failed: ", Hdf5Reason()));
  return absl::OkStatus();
}

bool Hdf5File::Exists(const std::string& object) const {
  if (object == "/" || object.empty()) return true;
  // H5Lexists needs every intermediate link to exist, so walk the path.
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(object, '/', absl::SkipEmpty())) {
    prefix = prefix.empty() ? std::string(part) : absl::StrCat(prefix, "/", part);
    if (H5Lexists(h_->file, prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  return true;
}

absl::Status Hdf5File::CreateGroup(const std::string& group) {
  Id g(H5Gcreate2(h_->file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!g.ok())
    return absl::InternalError(
        absl::StrCat(path_, ": cannot create group ", group, ": ", Hdf5Reason()));
  return absl::OkStatus();
}

absl::Status Hdf5File::Remove(const std::string& object) {
  if (H5Ldelete(h_->file, object.c_str(), H5P_DEFAULT) < 0) {
    return absl::NotFoundError(absl::StrCat(path_, ": cannot remove ", object, ": ", Hdf5Reason()));
  }
  return absl::OkStatus();
}

namespace {
// The link-info type changed name in HDF5 1.12 (Debian 12 and Ubuntu 24.04 ship 1.10).
#if H5_VERSION_GE(1, 12, 0)
using LinkInfo = H5L_info2_t;
#define PMPD_H5LITERATE H5Literate2
#else
using LinkInfo = H5L_info_t;
#define PMPD_H5LITERATE H5Literate
#endif
herr_t AddName(hid_t, const char* name, const LinkInfo*, void* data) {
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}
}  // namespace

absl::StatusOr<std::vector<std::string>> Hdf5File::ListChildren(const std::string& group) const {
  Id g(H5Gopen2(h_->file, group.c_str(), H5P_DEFAULT));
  if (!g.ok())
    return absl::NotFoundError(absl::StrCat(path_, ": no group ", group, ": ", Hdf5Reason()));
  std::vector<std::string> names;
  hsize_t idx = 0;
  if (PMPD_H5LITERATE(g.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, AddName, &names) < 0) {
    return absl::DataLossError(absl::StrCat(path_, ": cannot list ", group, ": ", Hdf5Reason()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

// Writes attribute `name` on `object` with the given file type/space and memory buffer.
absl::Status WriteAttr(hid_t file, const std::string& path, const std::string& object,
                       const std::string& name, hid_t type, hid_t space, const void* data) {
  Id obj(H5Oopen(file, object.c_str(), H5P_DEFAULT));
  if (!obj.ok())
    return absl::NotFoundError(absl::StrCat(path, ": no object ", object, ": ", Hdf5Reason()));
  if (H5Aexists(obj.get(), name.c_str()) > 0) H5Adelete(obj.get(), name.c_str());
  Id attr(H5Acreate2(obj.get(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.ok() || H5Awrite(attr.get(), type, data) < 0) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot write attribute ", object, "@", name, ": ", Hdf5Reason()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Hdf5File::SetAttribute(const std::string& object, const std::string& name,
                                    const std::string& value) {
  // Variable-length UTF-8, so h5py hands back str rather than bytes.
  Id type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Id space(H5Screate(H5S_SCALAR));
  const char* data = value.c_str();
  return WriteAttr(h_->file, path_, object, name, type.get(), space.get(), &data);
}

absl::Status Hdf5File::SetAttribute(const std::string& object, const std::string& name,
                                    int64_t value) {
  Id space(H5Screate(H5S_SCALAR));
  return WriteAttr(h_->file, path_, object, name, H5T_NATIVE_INT64, space.get(), &value);
}

absl::Status Hdf5File::SetAttribute(const std::string& object, const std::string& name,
                                    double value) {
  Id space(H5Screate(H5S_SCALAR));
  return WriteAttr(h_->file, path_, object, name, H5T_NATIVE_DOUBLE, space.get(), &value);
}

absl::Status Hdf5File::SetAttribute(const std::string& object, const std::string& name,
                                    const std::vector<int64_t>& value) {
  const hsize_t n = value.size();
  Id space(n == 0 ? H5Screate(H5S_NULL) : H5Screate_simple(1, &n, nullptr));
  return WriteAttr(h_->file, path_, object, name, H5T_NATIVE_INT64, space.get(), value.data());
}

bool Hdf5File::HasAttribute(const std::string& object, const std::string& name) const {
  if (!Exists(object)) return false;
  const htri_t r = H5Aexists_by_name(h_->file, object.c_str(), name.c_str(), H5P_DEFAULT);
  if (r < 0) H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

namespace {

struct OpenAttr {
  explicit OpenAttr(hid_t a)
      : attr(a), type(a >= 0 ? H5Aget_type(a) : -1), space(a >= 0 ? H5Aget_space(a) : -1) {}
  Id attr, type, space;
};

absl::StatusOr<std::unique_ptr<OpenAttr>> OpenAttribute(hid_t file, const std::string& path,
                                                        const std::string& object,
                                                        const std::string& name) {
  auto a = std::make_unique<OpenAttr>(
      H5Aopen_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a->attr.ok()) {
    H5Eclear2(H5E_DEFAULT);
    return absl::NotFoundError(absl::StrCat(path, ": missing attribute ", object, "@", name));
  }
  return a;
}

}  // namespace

absl::StatusOr<std::string> Hdf5File::GetStringAttribute(const std::string& object,
                                                         const std::string& name) const {
  auto a = OpenAttribute(h_->file, path_, object, name);
  if (!a.ok()) return a.status();
  if (H5Tget_class((*a)->type.get()) != H5T_STRING) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": attribute ", object, "@", name, " is not a string"));
  }
  if (H5Tis_variable_str((*a)->type.get()) > 0) {
    char* data = nullptr;
    if (H5Aread((*a)->attr.get(), (*a)->type.get(), &data) < 0) {
      return absl::DataLossError(
          absl::StrCat(path_, ": cannot read ", object, "@", name, ": ", Hdf5Reason()));
    }
    std::string out = data == nullptr ? "" : data;
    H5free_memory(data);
    return out;
  }
  const size_t size = H5Tget_size((*a)->type.get());
  std::string out(size, '\0');
  if (H5Aread((*a)->attr.get(), (*a)->type.get(), out.data()) < 0) {
    return absl::DataLossError(
        absl::StrCat(path_, ": cannot read ", object, "@", name, ": ", Hdf5Reason()));
  }
  out.resize(std::strlen(out.c_str()));
  return out;
}

absl::StatusOr<int64_t> Hdf5File::GetIntAttribute(const std::string& object,
                                                  const std::string& name) const {
  auto v = GetIntVectorAttribute(object, name);
  if (!v.ok()) return v.status();
  if (v->size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": attribute ", object, "@", name, " is not a scalar"));
  }
  return (*v)[0];
}

absl::StatusOr<double> Hdf5File::GetDoubleAttribute(const std::string& object,
                                                    const std::string& name) const {
  auto a = OpenAttribute(h_->file, path_, object, name);
  if (!a.ok()) return a.status();
  if (H5Tget_class((*a)->type.get()) != H5T_FLOAT ||
      H5Sget_simple_extent_npoints((*a)->space.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": attribute ", object, "@", name, " is not a float scalar"));
  }
  double v = 0;
  if (H5Aread((*a)->attr.get(), H5T_NATIVE_DOUBLE, &v) < 0) {
    return absl::DataLossError(
        absl::StrCat(path_, ": cannot read ", object, "@", name, ": ", Hdf5Reason()));
  }
  return v;
}

absl::StatusOr<std::vector<int64_t>> Hdf5File::GetIntVectorAttribute(
    const std::string& object, const std::string& name) const {
  auto a = OpenAttribute(h_->file, path_, object, name);
  if (!a.ok()) return a.status();
  if (H5Tget_class((*a)->type.get()) != H5T_INTEGER) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": attribute ", object, "@", name, " is not an integer"));
  }
  const hssize_t n = H5Sget_simple_extent_npoints((*a)->space.get());
  std::vector<int64_t> out(std::max<hssize_t>(n, 0));
  if (!out.empty() && H5Aread((*a)->attr.get(), H5T_NATIVE_INT64, out.data()) < 0) {
    return absl::DataLossError(
        absl::StrCat(path_, ": cannot read ", object, "@", name, ": ", Hdf5Reason()));
  }
  return out;
}

absl::Status Hdf5File::CreateAppendable(const std::string& dataset, H5Type type,
                                        const std::vector<int64_t>& inner, int64_t chunk_rows,
                                        bool compress) {
  const int rank = 1 + static_cast<int>(inner.size());
  std::vector<hsize_t> dims(rank, 0), maxdims(rank, H5S_UNLIMITED), chunk(rank, 1);
  chunk[0] = static_cast<hsize_t>(std::max<int64_t>(1, chunk_rows));
  for (int i = 1; i < rank; ++i)
    dims[i] = maxdims[i] = chunk[i] = static_cast<hsize_t>(inner[i - 1]);
  Id space(H5Screate_simple(rank, dims.data(), maxdims.data()));
  Id plist(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(plist.get(), rank, chunk.data());
  if (compress) {
    H5Pset_shuffle(plist.get());
    H5Pset_deflate(plist.get(), 4);
  }
  Id d(H5Dcreate2(h_->file, dataset.c_str(), NativeType(type), space.get(), H5P_DEFAULT,
                  plist.get(), H5P_DEFAULT));
  if (!d.ok())
    return absl::InternalError(
        absl::StrCat(path_, ": cannot create dataset ", dataset, ": ", Hdf5Reason()));
  return absl::OkStatus();
}

absl::Status Hdf5File::Append(const std::string& dataset, const void* data, int64_t rows) {
  Id d(H5Dopen2(h_->file, dataset.c_str(), H5P_DEFAULT));
  if (!d.ok())
    return absl::NotFoundError(absl::StrCat(path_, ": no dataset ", dataset, ": ", Hdf5Reason()));
  if (rows == 0) return absl::OkStatus();
  Id fspace(H5Dget_space(d.get()));
  const int rank = H5Sget_simple_extent_ndims(fspace.get());
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr);
  std::vector<hsize_t> grown = dims, start(rank, 0), count = dims;
  grown[0] += static_cast<hsize_t>(rows);
  start[0] = dims[0];
  count[0] = static_cast<hsize_t>(rows);
  if (H5Dset_extent(d.get(), grown.data()) < 0) {
    return absl::InternalError(absl::StrCat(path_, ": cannot grow ", dataset, ": ", Hdf5Reason()));
  }
  Id space(H5Dget_space(d.get()));
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Id mem(H5Screate_simple(rank, count.data(), nullptr));
  Id type(H5Dget_type(d.get()));
  if (H5Dwrite(d.get(), type.get(), mem.get(), space.get(), H5P_DEFAULT, data) < 0) {
    return absl::InternalError(absl::StrCat(path_, ": cannot write ", dataset, ": ", Hdf5Reason()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> Hdf5File::Shape(const std::string& dataset) const {
  Id d(H5Dopen2(h_->file, dataset.c_str(), H5P_DEFAULT));
  if (!d.ok()) {
    H5Eclear2(H5E_DEFAULT);
    return absl::NotFoundError(absl::StrCat(path_, ": missing dataset ", dataset));
  }
  Id space(H5Dget_space(d.get()));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(std::max(rank, 0));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

absl::StatusOr<H5Type> Hdf5File::Type(const std::string& dataset) const {
  Id d(H5Dopen2(h_->file, dataset.c_str(), H5P_DEFAULT));
  if (!d.ok()) {
    H5Eclear2(H5E_DEFAULT);
    return absl::NotFoundError(absl::StrCat(path_, ": missing dataset ", dataset));
  }
  Id type(H5Dget_type(d.get()));
  auto t = Classify(type.get());
  if (!t.ok())
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": dataset ", dataset, ": ", t.status().message()));
  return *t;
}

absl::Status Hdf5File::ReadRows(const std::string& dataset, H5Type type, int64_t begin,
                                int64_t rows, void* out) const {
  auto stored = Type(dataset);
  if (!stored.ok()) return stored.status();
  if (*stored != type) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": dataset ", dataset, " holds ", TypeName(*stored), ", expected ", TypeName(type)));
  }
  Id d(H5Dopen2(h_->file, dataset.c_str(), H5P_DEFAULT));
  Id space(H5Dget_space(d.get()));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  if (rank < 1 || begin < 0 || rows < 0 || static_cast<hsize_t>(begin + rows) > dims[0]) {
    return absl::OutOfRangeError(absl::StrCat(path_, ": dataset ", dataset, ": rows [", begin, ", ",
                                              begin + rows, ") outside its ",
                                              rank < 1 ? 0 : dims[0], " rows"));
  }
  if (rows == 0) return absl::OkStatus();
  std::vector<hsize_t> start(rank, 0), count = dims;
  start[0] = static_cast<hsize_t>(begin);
  count[0] = static_cast<hsize_t>(rows);
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Id mem(H5Screate_simple(rank, count.data(), nullptr));
  if (H5Dread(d.get(), NativeType(type), mem.get(), space.get(), H5P_DEFAULT, out) < 0) {
    return absl::DataLossError(absl::StrCat(path_, ": cannot read ", dataset, ": ", Hdf5Reason()));
  }
  return absl::OkStatus();
}

absl::Status Hdf5File::ReadAllRaw(const std::string& dataset, H5Type type, std::vector<char>* bytes,
                                  std::vector<int64_t>* shape) const {
  auto dims = Shape(dataset);
  if (!dims.ok()) return dims.status();
  int64_t n = 1;
  for (int64_t d : *dims) n *= d;
  bytes->assign(static_cast<size_t>(n) * H5TypeSize(type), 0);
  if (shape != nullptr) *shape = *dims;
  if (dims->empty()) {  // scalar dataset
    Id d(H5Dopen2(h_->file, dataset.c_str(), H5P_DEFAULT));
    if (H5Dread(d.get(), NativeType(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes->data()) < 0) {
      return absl::DataLossError(
          absl::StrCat(path_, ": cannot read ", dataset, ": ", Hdf5Reason()));
    }
    return absl::OkStatus();
  }
  return ReadRows(dataset, type, 0, (*dims)[0], bytes->data());
}

}  // namespace pmpd::models
