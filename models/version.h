// The pmpd release, recorded in every file we write (datasets, classifier manifests) so a reader
// knows which code produced it. Bump when an output changes.
#pragma once

namespace pmpd {
inline constexpr char kPmpdVersion[] = "0.2.0";
}  // namespace pmpd
