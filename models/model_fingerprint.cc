#include "models/model_fingerprint.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "models/file_util.h"
#include "models/gguf.h"
#include "models/splitmix64.h"

namespace pmpd::models {
namespace {

constexpr uint64_t kMul1 = 0x9E3779B97F4A7C15ull, kMul2 = 0xC2B2AE3D27D4EB4Full;

uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Folds every byte of `path` into *h (1 MiB at a time).
absl::Status HashFileInto(const std::string& path, uint64_t* h) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), buf.size());
    const std::streamsize n = in.gcount();
    if (n > 0) *h = Hash64(absl::string_view(buf.data(), n), *h);
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return absl::OkStatus();
}

}  // namespace

uint64_t Hash64(absl::string_view bytes, uint64_t seed) {
  uint64_t h = seed ^ (bytes.size() * kMul1);
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = Rotl(h ^ (w * kMul2), 31) * kMul1;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
  h = Rotl(h ^ (tail * kMul2), 31) * kMul1;
  return SplitMix64Mix(h);  // every input bit affects every output bit
}

absl::StatusOr<std::string> FingerprintModelDir(const std::string& dir) {
  if (IsGgufPath(dir)) return FingerprintFile(dir);  // one file holds config, weights and tokenizer
  auto all = ListDirectory(dir);
  if (!all.ok()) return all.status();
  std::vector<std::string> names;  // sorted, as ListDirectory returns them
  for (const std::string& name : *all) {
    if (name == "config.json" || absl::EndsWith(name, ".safetensors") ||
        absl::EndsWith(name, ".bin")) {
      names.push_back(name);
    }
  }
  if (std::find(names.begin(), names.end(), "config.json") == names.end()) {
    return absl::NotFoundError(absl::StrCat(dir, ": no config.json"));
  }
  uint64_t h = 0;
  for (const std::string& name : names) {
    h = Hash64(name, h);
    if (auto st = HashFileInto(JoinPath(dir, name), &h); !st.ok()) return st;
  }
  return absl::StrFormat("%016x", h);
}

absl::StatusOr<std::string> FingerprintFile(const std::string& path) {
  uint64_t h = 0;
  if (auto st = HashFileInto(path, &h); !st.ok()) return st;
  return absl::StrFormat("%016x", h);
}

}  // namespace pmpd::models
