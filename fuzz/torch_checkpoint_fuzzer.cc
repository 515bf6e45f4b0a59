// Fuzz target: torch.save archives (pytorch_model.bin, the reference's classifier .pt). First byte
// even: the rest is the file as is (zip parsing, CRCs, zip64). Odd: the rest is a pickle and up to
// sixteen storages, put into a valid zip with correct CRCs here, so the fuzzer reaches the pickle
// machine and the tensor rebuilding behind the checksums.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "models/torch_checkpoint.h"
#include "tests/models/zip_writer.h"

using namespace pmpd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Bytes in(data, size);
  const bool structured = in.Read<uint8_t>() & 1;
  std::string file;
  if (!structured) {
    file = in.Rest();
  } else {
    std::vector<testing::ZipRecord> records;
    records.push_back({"archive/data.pkl", in.ReadLongString(8192)});
    records.push_back({"archive/byteorder", "little"});
    const int storages = in.Read<uint8_t>() % 17;
    for (int i = 0; i < storages; ++i) {
      records.push_back({"archive/data/" + std::to_string(i), in.ReadLongString(16384)});
    }
    records.push_back({"archive/version", "3\n"});
    file = testing::MakeZip(records, /*zip64=*/in.Read<uint8_t>() & 1);
  }
  (void)models::ReadTorchStateDict(fuzz::WriteScratch("archive.pt", file));
  return 0;
}
