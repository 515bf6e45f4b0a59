#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "models/quantize_checkpoint.h"
#include "models/random_llama.h"

namespace pmpd::testing {

std::string SharedDir() {
  const char* env = std::getenv("PMPD_SHARED_DIR");
  return env != nullptr && *env != '\0' ? env : PMPD_DEFAULT_SHARED_DIR;
}

std::string SharedPath(const std::string& relative) {
  return absl::StrCat(SharedDir(), "/", relative);
}

std::string MakeTempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  std::string base = ::testing::TempDir();
  if (!base.empty() && base.back() == '/') base.pop_back();
  const std::string dir = absl::StrCat(base, "/pmpd_", tag, "_", getpid(), "_", counter++);
  std::string cmd = absl::StrCat("rm -rf '", dir, "'");
  if (std::system(cmd.c_str()) != 0 || ::mkdir(dir.c_str(), 0755) != 0) {
    ADD_FAILURE() << "cannot create " << dir;
  }
  return dir;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string SourcePath(const std::string& relative) {
  return absl::StrCat(PMPD_SOURCE_DIR, "/", relative);
}
std::string BinaryPath(const std::string& relative) {
  return absl::StrCat(PMPD_BINARY_DIR, "/", relative);
}

namespace {

// Runs `env` (assignments or empty) + build/<binary> + `args` through the shell, capturing stdout
// and stderr; `status` gets system()'s status.
RunResult RunWithEnv(const std::string& env, const std::string& binary, const std::string& args,
                     int* status) {
  static std::atomic<int> n{0};
  const std::string dir = MakeTempDir(absl::StrCat("run", n++));
  const std::string cmd =
      absl::StrCat(env, BinaryPath(binary), " ", args, " >", dir, "/out 2>", dir, "/err");
  *status = std::system(cmd.c_str());
  RunResult r;
  r.crashed = WIFSIGNALED(*status) || (WIFEXITED(*status) && WEXITSTATUS(*status) > 128);
  r.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  r.out = ReadFile(dir + "/out");
  r.err = ReadFile(dir + "/err");
  return r;
}

}  // namespace

RunResult RunBinary(const std::string& binary, const std::string& args) {
  int status = 0;
  return RunWithEnv("", binary, args, &status);
}

RunResult RunBinaryWithEnv(const std::string& env, const std::string& binary,
                           const std::string& args) {
  int status = 0;
  return RunWithEnv(env.empty() ? "" : env + " ", binary, args, &status);
}

RunResult RunBinaryKilledAt(const std::string& crash_at, const std::string& binary,
                            const std::string& args) {
  int status = 0;
  RunResult r = RunWithEnv(absl::StrCat("PMPD_CRASH_AT='", crash_at, "' "), binary, args, &status);
  // sh reports a child killed by SIGKILL as 128 + 9 (or is itself replaced by it and killed).
  const bool killed =
      r.exit_code == 128 + SIGKILL || (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(killed) << binary << " with PMPD_CRASH_AT=" << crash_at
                      << " was not killed there (status " << status << "); stderr: " << r.err;
  return r;
}

void ExpectCleanFailure(const RunResult& r, const std::string& program, const std::string& needle) {
  EXPECT_FALSE(r.crashed) << r.err;
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(program + ": error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
}

std::string QuantizedRandomModel(const std::string& tag, int vocab, uint64_t seed, int seed_bits,
                                 int parent_bits) {
  const std::string src = MakeTempDir(tag + "_src");
  EXPECT_TRUE(models::WriteRandomLlama(src, models::TinyDemoConfig(vocab), seed).ok());
  return QuantizeForTest(tag, src, seed_bits, parent_bits);
}

std::string QuantizeForTest(const std::string& tag, const std::string& src, int seed_bits,
                            int parent_bits) {
  const std::string out = MakeTempDir(tag + "_ap");
  models::QuantizeCheckpointOptions o;
  o.quant.seed_bits = seed_bits;
  o.quant.parent_bits = parent_bits;
  models::QuantizeReport report;
  EXPECT_TRUE(models::QuantizeCheckpoint(src, out, o, {}, {}, &report).ok());
  return out;
}

bool FileExistsForTest(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace pmpd::testing

namespace pmpd::testing {
double LogitTolerance(int k_max, int stages, double max_abs_logit, double rounding) {
  constexpr double kEps32 = 1.1920929e-7;
  return 8.0 * kEps32 * std::sqrt(static_cast<double>(k_max)) * stages * max_abs_logit + rounding;
}

std::string SmolLM2Path() {
  if (const char* p = std::getenv("PMPD_SMOLLM2_GGUF"); p != nullptr && *p != '\0') return p;
  std::string cache;
  if (const char* c = std::getenv("PMPD_CACHE"); c != nullptr && *c != '\0') {
    cache = c;
  } else {
    const char* home = std::getenv("HOME");
    cache = std::string(home != nullptr ? home : "/root") + "/.cache/pmpd";
  }
  return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

bool SharedAssetsRequired() {
  const char* env = std::getenv("PMPD_REQUIRE_SHARED_ASSETS");
  return env != nullptr && std::string(env) == "1";
}
}  // namespace pmpd::testing
