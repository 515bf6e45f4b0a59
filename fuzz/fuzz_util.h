// Shared by the libFuzzer targets in fuzz/: a scratch directory per process (the parsers under
// test take paths, as the tools do) and a reader of typed values from the fuzzer's bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "base/atomic_file.h"

namespace pmpd::fuzz {

// A fresh directory under $TMPDIR (default /tmp), created on first use and removed at exit.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/pmpd-fuzz-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    std::atexit([] { (void)base::RemoveTree(ScratchDir()); });
    return templ;
  }();
  return dir;
}

// Writes `size` bytes to ScratchDir()/name (replacing the file) and returns its path.
inline std::string WriteScratch(const std::string& name, const void* data, size_t size) {
  const std::string path = ScratchDir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f) std::abort();
  return path;
}
inline std::string WriteScratch(const std::string& name, const std::string& bytes) {
  return WriteScratch(name, bytes.data(), bytes.size());
}

// Consumes the fuzzer's bytes front to back; past the end every read gives zeros.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ >= end_; }
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  template <typename T>
  T Read() {
    T v{};
    const size_t n = std::min(sizeof(T), left());
    std::memcpy(&v, p_, n);
    p_ += n;
    return v;
  }
  std::string ReadString(size_t max) {
    const size_t n = std::min<size_t>(Read<uint8_t>() % (max + 1), left());
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  // A length-prefixed piece of up to `max` bytes (two length bytes).
  std::string ReadLongString(size_t max) {
    const size_t n = std::min<size_t>(Read<uint16_t>() % (max + 1), left());
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  std::string Rest() {
    std::string s(reinterpret_cast<const char*>(p_), left());
    p_ = end_;
    return s;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace pmpd::fuzz
