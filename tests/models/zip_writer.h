// A tiny zip writer for tests and fuzz targets: stored records with torch-like local headers
// (what torch.save writes), CRC-32 from zlib, optionally zip64. Independent of
// models/torch_checkpoint.cc.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pmpd::testing {

struct ZipRecord {
  std::string name;
  std::string data;
  uint16_t method = 0;  // written as given; the data is never compressed
};

inline void PutLE(std::string* out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Like torch: local headers carry the data-descriptor flag with zero CRC and sizes, and pad the
// data to a 64-byte boundary through the local extra field. With `zip64`, the central directory
// sizes and offsets move into zip64 extra fields and a zip64 end record is written.
inline std::string MakeZip(const std::vector<ZipRecord>& records, bool zip64 = false) {
  std::string out, central;
  for (const ZipRecord& r : records) {
    const uint64_t offset = out.size();
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(r.data.data()), static_cast<uInt>(r.data.size())));
    uint64_t pad = 64 - (offset + 30 + r.name.size() + 4) % 64;
    if (pad == 64) pad = 0;
    PutLE(&out, 0x04034b50, 4);
    PutLE(&out, 20, 2);
    PutLE(&out, 0x0808, 2);
    PutLE(&out, r.method, 2);
    PutLE(&out, 0, 4);  // time, date
    PutLE(&out, 0, 4);  // crc
    PutLE(&out, 0, 4);  // compressed size
    PutLE(&out, 0, 4);  // size
    PutLE(&out, r.name.size(), 2);
    PutLE(&out, 4 + pad, 2);
    out += r.name;
    PutLE(&out, 0x4246, 2);  // "FB", torch's padding field
    PutLE(&out, pad, 2);
    out.append(pad, 'Z');
    out += r.data;
    PutLE(&out, 0x08074b50, 4);  // data descriptor
    PutLE(&out, crc, 4);
    PutLE(&out, r.data.size(), 4);
    PutLE(&out, r.data.size(), 4);

    PutLE(&central, 0x02014b50, 4);
    PutLE(&central, 0x031e, 2);
    PutLE(&central, zip64 ? 45 : 20, 2);
    PutLE(&central, 0x0808, 2);
    PutLE(&central, r.method, 2);
    PutLE(&central, 0, 4);
    PutLE(&central, crc, 4);
    PutLE(&central, zip64 ? 0xFFFFFFFFu : r.data.size(), 4);
    PutLE(&central, zip64 ? 0xFFFFFFFFu : r.data.size(), 4);
    PutLE(&central, r.name.size(), 2);
    PutLE(&central, zip64 ? 28 : 0, 2);
    PutLE(&central, 0, 2);  // comment
    PutLE(&central, 0, 2);  // disk
    PutLE(&central, 0, 2);  // internal attributes
    PutLE(&central, 0, 4);  // external attributes
    PutLE(&central, zip64 ? 0xFFFFFFFFu : offset, 4);
    central += r.name;
    if (zip64) {
      PutLE(&central, 1, 2);
      PutLE(&central, 24, 2);
      PutLE(&central, r.data.size(), 8);
      PutLE(&central, r.data.size(), 8);
      PutLE(&central, offset, 8);
    }
  }
  const uint64_t cd_offset = out.size();
  out += central;
  if (zip64) {
    const uint64_t z = out.size();
    PutLE(&out, 0x06064b50, 4);
    PutLE(&out, 44, 8);
    PutLE(&out, 45, 2);
    PutLE(&out, 45, 2);
    PutLE(&out, 0, 4);
    PutLE(&out, 0, 4);
    PutLE(&out, records.size(), 8);
    PutLE(&out, records.size(), 8);
    PutLE(&out, central.size(), 8);
    PutLE(&out, cd_offset, 8);
    PutLE(&out, 0x07064b50, 4);
    PutLE(&out, 0, 4);
    PutLE(&out, z, 8);
    PutLE(&out, 1, 4);
  }
  PutLE(&out, 0x06054b50, 4);
  PutLE(&out, 0, 4);
  PutLE(&out, zip64 ? 0xFFFF : records.size(), 2);
  PutLE(&out, zip64 ? 0xFFFF : records.size(), 2);
  PutLE(&out, zip64 ? 0xFFFFFFFFu : central.size(), 4);
  PutLE(&out, zip64 ? 0xFFFFFFFFu : cd_offset, 4);
  PutLE(&out, 0, 2);
  return out;
}

}  // namespace pmpd::testing
