#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/atomic_file.h"
#include "kernels/half.h"
#include "models/file_util.h"

namespace pmpd::models {
namespace {

using json = nlohmann::json;

// Headers above this are refused: real checkpoints have headers of a few MB at most.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeEntry {
  const char* name;
  DType dtype;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {"BOOL", DType::kBool, 1}, {"U8", DType::kU8, 1},          {"I8", DType::kI8, 1},
    {"I16", DType::kI16, 2},   {"U16", DType::kU16, 2},        {"F16", DType::kF16, 2},
    {"BF16", DType::kBF16, 2}, {"I32", DType::kI32, 4},        {"U32", DType::kU32, 4},
    {"F32", DType::kF32, 4},   {"F64", DType::kF64, 8},        {"I64", DType::kI64, 8},
    {"U64", DType::kU64, 8},   {"F8_E4M3", DType::kF8E4M3, 1}, {"F8_E5M2", DType::kF8E5M2, 1},
};

bool ParseDType(const std::string& s, DType* out) {
  for (const auto& e : kDTypes) {
    if (s == e.name) {
      *out = e.dtype;
      return true;
    }
  }
  return false;
}

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": invalid safetensors: ", what));
}

}  // namespace

const char* DTypeName(DType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e.name;
  return "?";
}
size_t DTypeSize(DType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e.size;
  return 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::ShapeString() const {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  if (absl::Status st = CheckRegularFile(path); !st.ok()) return st;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat(path, ": fstat failed"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Bad(path,
               absl::StrCat("file is ", size, " bytes, shorter than the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED)
    return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(errno)));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_ = map;
  f->map_size_ = size;
  const uint8_t* base = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | base[i];
  if (header_len > kMaxHeaderBytes) {
    return Bad(path, absl::StrCat("header length ", header_len, " exceeds the limit of ",
                                  kMaxHeaderBytes));
  }
  if (header_len > size - 8) {
    return Bad(path, absl::StrCat("header length ", header_len, " runs past the end of the file (",
                                  size, " bytes): file truncated?"));
  }
  const char* hbegin = reinterpret_cast<const char*>(base + 8);
  json h = json::parse(hbegin, hbegin + header_len, nullptr, /*allow_exceptions=*/false);
  if (h.is_discarded() || !h.is_object()) return Bad(path, "header is not a JSON object");
  const uint64_t data_size = size - 8 - header_len;
  const uint8_t* data = base + 8 + header_len;

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) return Bad(path, "__metadata__ must be an object");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string())
          return Bad(path, absl::StrCat("__metadata__ value of \"", m.key(), "\" is not a string"));
        f->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor \"", name, "\"");
    if (!e.is_object()) return Bad(path, absl::StrCat(where, ": entry is not an object"));
    auto dt = e.find("dtype");
    auto sh = e.find("shape");
    auto off = e.find("data_offsets");
    if (dt == e.end() || !dt->is_string())
      return Bad(path, absl::StrCat(where, ": missing or non-string dtype"));
    if (sh == e.end() || !sh->is_array())
      return Bad(path, absl::StrCat(where, ": missing or non-array shape"));
    if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned()) {
      return Bad(path, absl::StrCat(
                           where, ": data_offsets must be [begin, end] of non-negative integers"));
    }
    TensorView t;
    t.name = name;
    t.file = path;
    if (!ParseDType(dt->get<std::string>(), &t.dtype)) {
      return Bad(path, absl::StrCat(where, ": unknown dtype \"", dt->get<std::string>(), "\""));
    }
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned())
        return Bad(path, absl::StrCat(where, ": shape entries must be non-negative integers"));
      const uint64_t v = d.get<uint64_t>();
      if (v != 0 && numel > (uint64_t{1} << 62) / v)
        return Bad(path, absl::StrCat(where, ": shape overflows"));
      numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return Bad(path, absl::StrCat(where, ": data_offsets [", begin, ", ", end,
                                    "] out of range; the data section has ", data_size,
                                    " bytes (file truncated?)"));
    }
    const uint64_t expected = numel * DTypeSize(t.dtype);
    if (end - begin != expected) {
      return Bad(path,
                 absl::StrCat(where, ": shape ", t.ShapeString(), " x ", DTypeName(t.dtype),
                              " needs ", expected, " bytes but data_offsets span ", end - begin));
    }
    t.data = data + begin;
    t.nbytes = end - begin;
    if (t.nbytes > 0) ranges.emplace_back(begin, end);
    f->tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      return Bad(path, absl::StrCat("tensor data ranges overlap at byte ", ranges[i].first));
    }
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::Open(
    const std::string& dir) {
  auto ck = std::unique_ptr<SafetensorsCheckpoint>(new SafetensorsCheckpoint());
  ck->dir_ = dir;
  const std::string index_path = JoinPath(dir, "model.safetensors.index.json");
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  if (FileExists(index_path)) {
    auto text = ReadFileToString(index_path);
    if (!text.ok()) return text.status();
    if (absl::Status st = CheckNoNulByte(*text, index_path); !st.ok()) return st;
    json j = json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") ||
        !j["weight_map"].is_object()) {
      return absl::DataLossError(
          absl::StrCat(index_path, ": expected a JSON object with a \"weight_map\" object"));
    }
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) {
        return absl::DataLossError(
            absl::StrCat(index_path, ": weight_map value of \"", it.key(), "\" is not a string"));
      }
      const std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos) {
        return absl::DataLossError(
            absl::StrCat(index_path, ": shard name \"", shard, "\" must be a plain file name"));
      }
      weight_map[it.key()] = shard;
      if (std::find(shard_names.begin(), shard_names.end(), shard) == shard_names.end())
        shard_names.push_back(shard);
    }
  } else if (FileExists(JoinPath(dir, "model.safetensors"))) {
    shard_names.push_back("model.safetensors");
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no model.safetensors or model.safetensors.index.json"));
  }
  for (const auto& shard : shard_names) {
    auto f = SafetensorsFile::Open(JoinPath(dir, shard));
    if (!f.ok()) return f.status();
    for (const auto& [name, view] : (*f)->tensors()) {
      if (!weight_map.empty()) {
        auto w = weight_map.find(name);
        if (w == weight_map.end() || w->second != shard)
          continue;  // listed elsewhere or not at all
      }
      if (!ck->index_.emplace(name, &view).second) {
        return absl::DataLossError(
            absl::StrCat(dir, ": tensor \"", name, "\" appears in more than one shard"));
      }
    }
    ck->files_.push_back(std::move(*f));
  }
  for (const auto& [name, shard] : weight_map) {
    if (!ck->index_.count(name)) {
      return absl::DataLossError(absl::StrCat(index_path, ": tensor \"", name,
                                              "\" is listed in shard ", shard,
                                              " but that file does not contain it"));
    }
  }
  return ck;
}

absl::StatusOr<const TensorView*> SafetensorsCheckpoint::Find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    return absl::NotFoundError(absl::StrCat(dir_, ": missing tensor \"", name, "\""));
  return it->second;
}

std::vector<std::string> SafetensorsCheckpoint::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, v] : index_) names.push_back(name);
  return names;
}

absl::Status ToFloat32(const TensorView& t, float* out) {
  const int64_t n = t.numel();
  switch (t.dtype) {
    case DType::kF32:
      std::memcpy(out, t.data, n * sizeof(float));
      return absl::OkStatus();
    case DType::kF16:
    case DType::kBF16: {
      const bool bf = t.dtype == DType::kBF16;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = bf ? kernels::Bf16ToF32(h) : kernels::F16ToF32(h);
      }
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(t.file, ": tensor \"", t.name, "\" has dtype ",
                                                     DTypeName(t.dtype),
                                                     "; supported for weights: F32, F16, BF16"));
  }
}

namespace {

// The 8-byte length and the JSON header (padded to 8 bytes) of a file holding `tensors` in order.
absl::StatusOr<std::string> FilePrefix(const std::string& path,
                                       const std::vector<TensorSlice>& tensors,
                                       const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (h.contains(t.name))
      return absl::InvalidArgumentError(absl::StrCat(path, ": duplicate tensor \"", t.name, "\""));
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    if (numel * DTypeSize(t.dtype) != t.nbytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", t.name, "\" has ",
                                                     t.nbytes, " bytes, shape needs ",
                                                     numel * DTypeSize(t.dtype)));
    }
    h[t.name] = {{"dtype", DTypeName(t.dtype)},
                 {"shape", t.shape},
                 {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string header = h.dump();
  while (header.size() % 8 != 0) header.push_back(' ');
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header;
}

std::vector<TensorSlice> Slices(const std::vector<TensorToWrite>& tensors) {
  std::vector<TensorSlice> out;
  out.reserve(tensors.size());
  for (const auto& t : tensors) {
    out.push_back({t.name, t.dtype, t.shape, reinterpret_cast<const uint8_t*>(t.bytes.data()),
                   t.bytes.size()});
  }
  return out;
}

}  // namespace

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  auto prefix = FilePrefix(path, Slices(tensors), metadata);
  if (!prefix.ok()) return prefix.status();
  std::string out = std::move(*prefix);
  size_t total = out.size();
  for (const auto& t : tensors) total += t.bytes.size();
  out.reserve(total);
  for (const auto& t : tensors) out += t.bytes;
  return base::WriteFileAtomically(path, out);
}

absl::Status WriteSafetensorsStreamed(const std::string& path,
                                      const std::vector<TensorSlice>& tensors,
                                      const std::map<std::string, std::string>& metadata,
                                      const std::function<void(size_t)>& written) {
  auto prefix = FilePrefix(path, tensors, metadata);
  if (!prefix.ok()) return prefix.status();
  auto file = base::AtomicFile::Create(path);
  if (!file.ok()) return file.status();
  std::FILE* f = std::fopen(file->temp_path().c_str(), "wb");
  if (f == nullptr) {
    return absl::InternalError(
        absl::StrCat(file->temp_path(), ": cannot open for writing: ", std::strerror(errno)));
  }
  bool ok = std::fwrite(prefix->data(), 1, prefix->size(), f) == prefix->size();
  for (size_t i = 0; ok && i < tensors.size(); ++i) {
    ok = std::fwrite(tensors[i].data, 1, tensors[i].nbytes, f) == tensors[i].nbytes;
    if (ok && written) written(i);
  }
  const int err = errno;
  if (std::fclose(f) != 0 || !ok) {
    return absl::InternalError(
        absl::StrCat(path, ": write failed: ", std::strerror(ok ? errno : err)));
  }
  return file->Commit();
}

void ReleaseMappedPages(const uint8_t* data, size_t nbytes) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + nbytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace pmpd::models
