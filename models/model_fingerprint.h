// Content fingerprints of checkpoints, so a dataset records exactly which model produced it and a
// resumed job can refuse to mix models.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pmpd::models {

// 64-bit non-cryptographic hash of `bytes` continuing from `seed` (one multiply per 8 bytes;
// several GB/s). Stable across platforms and releases: stored fingerprints depend on it.
uint64_t Hash64(absl::string_view bytes, uint64_t seed = 0);

// Hex fingerprint of a model directory: config.json and every weight file (*.safetensors, *.bin),
// in name order, names included; for a GGUF file, FingerprintFile of it. Reads every weight byte
// once (streamed, 1 MiB buffer).
// Errors name the directory or file.
absl::StatusOr<std::string> FingerprintModelDir(const std::string& dir);

// Hex Hash64 of one file's bytes (streamed). Errors name the file.
absl::StatusOr<std::string> FingerprintFile(const std::string& path);

}  // namespace pmpd::models
