// The build's identity for --version. Defined in build_info.cc, which cli/build_info.cmake writes
// into the build tree on every build and rewrites only when the commit or dirty state changes, so
// a new commit recompiles that one file and relinks the tools, nothing else.
#pragma once

namespace pmpd::cli {

extern const char kVersion[];    // the CMake project VERSION, e.g. "0.4.0"
extern const char kBuildType[];  // CMAKE_BUILD_TYPE (or the configuration), e.g. "Release"
extern const char kGitCommit[];  // short hash, "-dirty" when tracked files differ; or "unknown"

}  // namespace pmpd::cli
