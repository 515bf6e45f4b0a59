// Fuzz target: safetensors. First byte even: the rest is one .safetensors file (opened, every
// tensor converted to float32). Odd: the rest is model.safetensors.index.json beside two valid
// shards (the checkpoint opened through the index, every tensor looked up).
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "models/file_util.h"
#include "models/safetensors.h"

using namespace pmpd;

namespace {

// Two small valid shards, written once: shard 1 holds "a" (F32) and "b" (F16), shard 2 "c" (BF16).
void WriteShards(const std::string& dir) {
  static bool done = false;
  if (done) return;
  done = true;
  using models::DType;
  const std::string four(16, '\x3c');
  (void)models::WriteSafetensors(
      dir + "/model-00001-of-00002.safetensors",
      {{"a", DType::kF32, {2, 2}, four}, {"b", DType::kF16, {4}, "12345678"}});
  (void)models::WriteSafetensors(dir + "/model-00002-of-00002.safetensors",
                                 {{"c", DType::kBF16, {1, 3}, "abcdef"}});
}

void ConvertAll(const std::map<std::string, models::TensorView>& tensors) {
  for (const auto& [name, t] : tensors) {
    const int64_t n = t.numel();
    if (n < 0 || n > (int64_t{1} << 20)) continue;
    std::vector<float> out(static_cast<size_t>(n));
    (void)models::ToFloat32(t, out.data());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Bytes in(data, size);
  const bool index = in.Read<uint8_t>() & 1;
  const std::string rest = in.Rest();
  if (!index) {
    auto f = models::SafetensorsFile::Open(fuzz::WriteScratch("one.safetensors", rest));
    if (f.ok()) ConvertAll((*f)->tensors());
    return 0;
  }
  const std::string dir = fuzz::ScratchDir() + "/sharded";
  (void)models::MakeDirs(dir);
  WriteShards(dir);
  fuzz::WriteScratch("sharded/model.safetensors.index.json", rest);
  auto c = models::SafetensorsCheckpoint::Open(dir);
  if (c.ok()) {
    for (const std::string& name : (*c)->Names()) (void)(*c)->Find(name);
  }
  return 0;
}
