// Helpers shared by the tests: where the shared assets are, temporary directories, tolerances.
#pragma once

#include <cstdint>
#include <string>

namespace pmpd::testing {

// $PMPD_SHARED_DIR, else the build-time default (<repo>/../shared).
std::string SharedDir();
// SharedDir()/relative.
std::string SharedPath(const std::string& relative);
// A fresh empty directory under the test temp dir; removed by nobody (ctest's temp is scratch).
std::string MakeTempDir(const std::string& tag);
// Writes bytes to a file; CHECK-fails on error (test set-up only).
void WriteFile(const std::string& path, const std::string& bytes);
std::string ReadFile(const std::string& path);
std::string SourcePath(const std::string& relative);

// Tolerance for logits computed in float32 by two implementations that order their sums
// differently (BLAS blocking, fused attention): each length-K dot product carries a relative error
// of about sqrt(K) * eps (random-walk rounding), the residual stream passes it through `stages`
// blocks (layers + the head), and logits scale it by their magnitude. A safety factor of 8 covers
// the constant; `rounding` is the precision the golden values were stored with.
double LogitTolerance(int k_max, int stages, double max_abs_logit, double rounding = 0);

// Runs build/<binary> with shell-quoted `args`; captures stdout and stderr.
struct RunResult {
  int exit_code = -1;
  bool crashed = false;  // ended by a signal (or a shell exit code above 128)
  std::string out, err;
};
RunResult RunBinary(const std::string& binary, const std::string& args);
// RunBinary with `env` (shell assignments such as "NO_COLOR=1 TERM=xterm") before the command.
RunResult RunBinaryWithEnv(const std::string& env, const std::string& binary,
                           const std::string& args);
// RunBinary with PMPD_CRASH_AT=`crash_at` (base/atomic_file.h): the tool SIGKILLs itself inside
// that commit of its crash-safe writer. Expects that it did (a tool that finished, or failed
// otherwise, fails the test).
RunResult RunBinaryKilledAt(const std::string& crash_at, const std::string& binary,
                            const std::string& args);

// A clean failure of a tool: non-zero exit, no crash, "<program>: error: " and `needle` on stderr.
void ExpectCleanFailure(const RunResult& r, const std::string& program, const std::string& needle);

// A random TinyDemoConfig(vocab) Llama from `seed`, quantized to any-precision (S..P bits, uniform
// weights) in a fresh temp directory; returns that directory.
std::string QuantizedRandomModel(const std::string& tag, int vocab, uint64_t seed, int seed_bits,
                                 int parent_bits);
std::string BinaryPath(const std::string& relative);
// `src_dir` (a float Hugging Face checkpoint) quantized to any-precision S..P bits (uniform
// weights) in a fresh temp directory; returns that directory.
std::string QuantizeForTest(const std::string& tag, const std::string& src_dir, int seed_bits,
                            int parent_bits);

}  // namespace pmpd::testing

// Skips the current test with a message when a shared asset is missing; fails instead when
// PMPD_REQUIRE_SHARED_ASSETS=1 (CI sets it, so a missing asset cannot pass silently).
#define PMPD_REQUIRE_SHARED(relative)                                                   \
  do {                                                                                  \
    if (!::pmpd::testing::FileExistsForTest(::pmpd::testing::SharedPath(relative))) {   \
      if (::pmpd::testing::SharedAssetsRequired()) {                                    \
        FAIL() << "shared asset missing: " << ::pmpd::testing::SharedPath(relative);    \
      }                                                                                 \
      GTEST_SKIP() << "shared asset missing: " << ::pmpd::testing::SharedPath(relative) \
                   << " (set PMPD_SHARED_DIR)";                                         \
    }                                                                                   \
  } while (0)

// The same for the SmolLM2-135M-Instruct GGUF that scripts/install-deps.sh unpacks (not a shared
// asset: it comes from PyPI into the cache). Path: $PMPD_SMOLLM2_GGUF, else
// ${PMPD_CACHE:-$HOME/.cache/pmpd}/models/SmolLM2-135M-Instruct.Q4_1.gguf.
#define PMPD_REQUIRE_SMOLLM2()                                                   \
  do {                                                                           \
    if (!::pmpd::testing::FileExistsForTest(::pmpd::testing::SmolLM2Path())) {   \
      if (::pmpd::testing::SharedAssetsRequired()) {                             \
        FAIL() << "SmolLM2 GGUF missing: " << ::pmpd::testing::SmolLM2Path()     \
               << " (scripts/install-deps.sh fetches it)";                       \
      }                                                                          \
      GTEST_SKIP() << "SmolLM2 GGUF missing: " << ::pmpd::testing::SmolLM2Path() \
                   << " (scripts/install-deps.sh fetches it)";                   \
    }                                                                            \
  } while (0)

namespace pmpd::testing {
bool FileExistsForTest(const std::string& path);
bool SharedAssetsRequired();
std::string SmolLM2Path();
}  // namespace pmpd::testing
