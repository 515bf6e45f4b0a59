// GPU tests (label `gpu`) of quantization on the GPU: the k-means (QuantizeAnyprecCuda) equals the
// CPU's bit for bit on 4096- and 11008-wide rows; the streamed Fisher pass on CUDA is within a
// summation-order tolerance of the CPU's; pmpd-quantize --device cuda and --device cpu agree on
// stories260K and on a random model with 4096-wide rows within the tolerance the issue asks to
// state: the same code for >= 99.9 % of the weights, perplexity within 0.5 % at every precision.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "inference/anyprec_quantize_cuda.h"
#include "inference/fisher_stream.h"
#include "kernels/ref/anyprec_ref.h"
#include "models/anyprec_checkpoint.h"
#include "models/random_llama.h"
#include "tests/kernels/gpu_test_util.h"
#include "tests/test_util.h"

namespace pmpd::inference {
namespace {

using pmpd::testing::MakeTempDir;
using pmpd::testing::RunBinary;
using pmpd::testing::RunResult;
using pmpd::testing::SharedPath;

TEST(QuantizeGpuTest, KmeansEqualsTheCpuBitForBitOnWideRows) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.f, 0.02f);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (auto [N, K, S, P] :
       {std::tuple<int, int, int, int>{512, 4096, 2, 8}, {64, 11008, 2, 8}, {300, 4096, 3, 6}}) {
    SCOPED_TRACE(absl::StrCat(N, "x", K, " S", S, " P", P));
    std::vector<float> w(static_cast<size_t>(N) * K), f(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] = g(rng);
      f[i] = u(rng) * u(rng) * u(rng);
    }
    models::AnyprecQuantizeOptions o;
    o.seed_bits = S;
    o.parent_bits = P;
    o.threads = 16;
    o.seed = 3;
    const models::AnyprecMatrix cpu = models::QuantizeAnyprec(w.data(), f.data(), N, K, o);
    auto gpu = QuantizeAnyprecCuda(w.data(), f.data(), N, K, o);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    EXPECT_EQ(gpu->qweight, cpu.qweight);
    EXPECT_EQ(gpu->luts, cpu.luts);
  }
}

// Relative Frobenius distance |a - b| / |a|.
double RelativeDistance(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    n += static_cast<double>(a[i]) * a[i];
  }
  return n > 0 ? std::sqrt(d / n) : std::sqrt(d);
}

TEST(QuantizeGpuTest, StreamedFisherOnCudaMatchesTheCpuWithinSummationOrder) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K");
  const std::string dir = SharedPath("models/stories260K");
  std::vector<std::vector<int>> seqs(4);
  for (int s = 0; s < 4; ++s)
    for (int i = 0; i < 64; ++i) seqs[s].push_back((i * 37 + 11 * s + 5) % 512);
  FisherStreamOptions cpu_o, cuda_o;
  cuda_o.device = "cuda";
  auto cpu = FisherStream::Create(dir, seqs, cpu_o);
  auto cuda = FisherStream::Create(dir, seqs, cuda_o);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  double worst = 0;
  for (int l = (*cpu)->num_layers() - 1; l >= 0; --l) {
    auto a = (*cpu)->Layer(l);
    auto b = (*cuda)->Layer(l);
    ASSERT_TRUE(a.ok() && b.ok());
    for (const auto& [name, f] : *a) worst = std::max(worst, RelativeDistance(f, b->at(name)));
  }
  std::printf("streamed Fisher, CUDA vs CPU: worst relative distance %.3g\n", worst);
  EXPECT_LT(worst, 1e-4);
}

// Every projection's P-bit codes in `a` and `b` (same shapes): the fraction equal.
double SameCodeFraction(const std::string& a, const std::string& b) {
  auto ia = models::LoadAnyprecInfo(a);
  auto wa = models::OpenWeights(a), wb = models::OpenWeights(b);
  EXPECT_TRUE(ia.ok() && ia->has_value() && wa.ok() && wb.ok());
  auto config = models::LoadLlamaConfig(a);
  EXPECT_TRUE(config.ok());
  int64_t same = 0, total = 0;
  for (int l = 0; l < config->num_hidden_layers; ++l) {
    for (const models::ProjectionShape& ms : models::LlamaProjections(*config)) {
      const std::string prefix = absl::StrCat("model.layers.", l, ".", ms.module);
      const int n = static_cast<int>(ms.out_features), k = static_cast<int>(ms.in_features);
      auto ma = models::LoadAnyprecMatrix(**wa, prefix, **ia, n, k);
      auto mb = models::LoadAnyprecMatrix(**wb, prefix, **ia, n, k);
      EXPECT_TRUE(ma.ok() && mb.ok());
      const int P = (*ia)->parent_bits;
      std::vector<uint8_t> ca(static_cast<size_t>(n) * k), cb(ca.size());
      kernels::AnyprecUnpackRef(ma->qweight.data(), n, k, P, P, ca.data());
      kernels::AnyprecUnpackRef(mb->qweight.data(), n, k, P, P, cb.data());
      for (size_t i = 0; i < ca.size(); ++i) same += ca[i] == cb[i];
      total += static_cast<int64_t>(ca.size());
    }
  }
  return total > 0 ? static_cast<double>(same) / total : 0;
}

double Perplexity(const std::string& model, int p, const std::string& data, int docs, int seq_len) {
  const RunResult r = RunBinary(
      "cli/pmpd-perplexity", absl::StrCat("--model ", model, " --precision ", p, " --data ", data,
                                          " --num-docs ", docs, " --seq-len ", seq_len, " --json"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out).at("perplexity").get<double>();
}

// pmpd-quantize on both devices from `src` with C4 calibration; checks the stated tolerance
// (perplexity on the first `docs` wikitext-2 documents: the CPU engine dequantizes a matrix per
// chunk, seconds each on 4096-wide rows).
void QuantizeOnBothDevices(const std::string& tag, const std::string& src, int docs, int seq_len) {
  const std::string out = MakeTempDir(tag);
  const std::string common =
      absl::StrCat("--model ", src, " --seed-precision 2 --parent-precision 8 --calib ",
                   SharedPath("data/c4/c4-validation.00000-of-00008.first800.json.gz"),
                   " --num-calib-seqs 8 --seq-len ", seq_len, " --json");
  const RunResult cpu =
      RunBinary("cli/pmpd-quantize", absl::StrCat(common, " --out ", out, "/cpu --device cpu"));
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  const RunResult cuda =
      RunBinary("cli/pmpd-quantize", absl::StrCat(common, " --out ", out, "/cuda --device cuda"));
  ASSERT_EQ(cuda.exit_code, 0) << cuda.err;
  const auto j = nlohmann::json::parse(cuda.out);
  EXPECT_EQ(j.at("device"), "cuda");
  EXPECT_GT(j.at("peak_gpu_bytes").get<int64_t>(), 0);
  const double same = SameCodeFraction(out + "/cpu", out + "/cuda");
  std::printf("%s: %.5f %% of the 8-bit codes equal\n", tag.c_str(), 100 * same);
  EXPECT_GE(same, 0.999);
  const std::string data = SharedPath("data/text/wikitext2-raw-test.jsonl");
  for (int p : {2, 3, 4, 8}) {
    const double a = Perplexity(out + "/cpu", p, data, docs, seq_len);
    const double b = Perplexity(out + "/cuda", p, data, docs, seq_len);
    std::printf("%s: perplexity at %d bits: cpu %.4f, cuda %.4f\n", tag.c_str(), p, a, b);
    EXPECT_LE(std::fabs(a - b) / a, 0.005) << p << " bits";
  }
}

TEST(QuantizeGpuTest, CudaQuantizationMatchesTheCpuOnStories260K) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K");
  PMPD_REQUIRE_SHARED("data/text/wikitext2-raw-test.jsonl");
  QuantizeOnBothDevices("q_gpu_s260k", SharedPath("models/stories260K"), 40, 128);
}

TEST(QuantizeGpuTest, CudaQuantizationMatchesTheCpuOn4096WideRows) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("data/text/wikitext2-raw-test.jsonl");
  const std::string src = MakeTempDir("q_gpu_wide_src");
  int vocab = 0;
  ASSERT_TRUE(models::WriteTinyTokenizer(src, &vocab).ok());
  models::LlamaConfig c = models::TinyDemoConfig(vocab);
  c.hidden_size = 4096;
  c.intermediate_size = 2048;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  ASSERT_TRUE(models::WriteRandomLlama(src, c, 21).ok());
  QuantizeOnBothDevices("q_gpu_wide", src, 2, 64);
}

}  // namespace
}  // namespace pmpd::inference
