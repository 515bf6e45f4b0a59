// Benchmark: any-precision quantization throughput (rows/s, and per thread) on a random matrix with
// random sensitivities; by default the Llama-2-7B MLP shape 11008 x 4096 with S = 3, P = 8.
// Reference point: the Any-Precision LLM quantizer does Llama-2-7B (~1.36 M rows) in under 2
// minutes on a 24-thread desktop, i.e. >= ~470 rows/s per thread.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "cli/cli_common.h"
#include "models/anyprec_quantizer.h"

ABSL_FLAG(int, rows, 11008, "Rows (out_features).");
ABSL_FLAG(int, cols, 4096, "Columns (in_features).");
ABSL_FLAG(int, seed_precision, 3, "S.");
ABSL_FLAG(int, parent_precision, 8, "P.");
ABSL_FLAG(std::string, threads, "1,2", "Comma-separated thread counts to time.");

int main(int argc, char** argv) {
  pmpd::cli::InitUsage("Any-precision quantization rows/s on a random matrix.");
  pmpd::cli::ParseFlags(argc, argv);
  const int N = absl::GetFlag(FLAGS_rows), K = absl::GetFlag(FLAGS_cols);
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0.f, 0.02f);
  std::vector<float> w(static_cast<size_t>(N) * K), f(w.size());
  for (auto& x : w) x = g(rng);
  for (auto& x : f) x = std::exp(4 * g(rng) / 0.02f);  // log-normal sensitivities
  pmpd::models::AnyprecQuantizeOptions o;
  o.seed_bits = absl::GetFlag(FLAGS_seed_precision);
  o.parent_bits = absl::GetFlag(FLAGS_parent_precision);
  std::printf("matrix %d x %d, S=%d, P=%d, %u hardware threads\n", N, K, o.seed_bits, o.parent_bits,
              std::thread::hardware_concurrency());
  std::printf(
      "| threads | seconds | rows/s | rows/s per thread | vs reference 472 rows/s/thread "
      "|\n|---|---|---|---|---|\n");
  for (const char* p = absl::GetFlag(FLAGS_threads).c_str(); *p;) {
    o.threads = std::atoi(p);
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
    const auto t0 = std::chrono::steady_clock::now();
    const auto m = pmpd::models::QuantizeAnyprec(w.data(), f.data(), N, K, o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("| %d | %.2f | %.0f | %.0f | %.2fx |\n", o.threads, s, N / s, N / s / o.threads,
                N / s / o.threads / 472.0);
    if (m.qweight.empty()) return 1;
  }
  return 0;
}
