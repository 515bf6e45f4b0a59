// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) of the journal's records. Written out here because
// hpo depends on nothing but Abseil 20220623 (which has no CRC) and nlohmann_json.
#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace pmpd::hpo {

// crc32("123456789") == 0xcbf43926. O(n), table-driven.
uint32_t Crc32(absl::string_view bytes);

}  // namespace pmpd::hpo
