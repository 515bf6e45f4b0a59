// GPU tests (label `gpu`): pmpd-gen-data --device cuda (the CUDA engine, sequential labelling or
// several prompts at once on its sequence slots) writes the samples --device cpu writes: same
// prompts, references, labels and Rouge-L values; K/V within fp16 storage rounding (the engines'
// fp32 sums differ in order); teacher-forced costs within a stated tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "dataset/kv_dataset.h"
#include "kernels/half.h"
#include "tests/kernels/gpu_test_util.h"
#include "tests/test_util.h"

namespace pmpd::data_gen {
namespace {

// pmpd-gen-data on 6 C4 documents of stories260K (any-precision 2..4, reference = its own parent
// precision: an fp16 copy of a float reference model on the GPU would be another reference), once
// with --device cpu (plus `cpu_flags`) and once with --device cuda, `flags` added to both; the two
// files opened into `cpu` and `cuda`, their headers, prompts and references checked equal.
void RunOnBothDevices(const std::string& tag, const std::string& flags,
                      const std::string& cpu_flags, const std::string& cuda_flags,
                      std::unique_ptr<dataset::KvDatasetReader>* cpu,
                      std::unique_ptr<dataset::KvDatasetReader>* cuda) {
  const std::string model =
      testing::QuantizeForTest(tag, testing::SharedPath("models/stories260K"), 2, 4);
  const std::string dir = testing::MakeTempDir(tag);
  const std::string common =
      absl::StrCat("--model ", model, " --c4 ", testing::SharedPath("data/c4"),
                   " --precisions 4,3,2 --num-docs 6 --max-new-tokens 40 --seed 7 ", flags);
  const testing::RunResult c =
      testing::RunBinary("cli/pmpd-gen-data",
                         absl::StrCat(common, " --out ", dir, "/cpu.h5 --device cpu ", cpu_flags));
  const testing::RunResult g = testing::RunBinary(
      "cli/pmpd-gen-data",
      absl::StrCat(common, " --out ", dir, "/cuda.h5 --device cuda ", cuda_flags));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ASSERT_EQ(g.exit_code, 0) << g.err;
  auto a = dataset::KvDatasetReader::Open(dir + "/cpu.h5");
  auto b = dataset::KvDatasetReader::Open(dir + "/cuda.h5");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*a)->header().Diff((*b)->header()), "");
  ASSERT_EQ((*a)->num_samples(), 6);
  ASSERT_EQ((*b)->num_samples(), 6);
  for (int64_t i = 0; i < 6; ++i) {
    auto x = (*a)->ReadSample(i);
    auto y = (*b)->ReadSample(i);
    ASSERT_TRUE(x.ok() && y.ok());
    EXPECT_EQ(x->prompt_ids, y->prompt_ids) << i;
    EXPECT_EQ(x->reference_ids, y->reference_ids) << i;
  }
  *cpu = std::move(*a);
  *cuda = std::move(*b);
}

void ExpectSameLabels(const std::string& tag, const std::string& cuda_flags) {
  std::unique_ptr<dataset::KvDatasetReader> a, b;
  ASSERT_NO_FATAL_FAILURE(RunOnBothDevices(tag, "", "--branches sequential", cuda_flags, &a, &b));
  for (int64_t i = 0; i < 6; ++i) {
    auto x = a->ReadSample(i);
    auto y = b->ReadSample(i);
    ASSERT_TRUE(x.ok() && y.ok());
    ASSERT_EQ(x->pairs.size(), 2u);
    for (size_t p = 0; p < 2; ++p) {
      EXPECT_EQ(x->pairs[p].label, y->pairs[p].label) << "sample " << i << " pair " << p;
      EXPECT_EQ(x->pairs[p].rouge_l, y->pairs[p].rouge_l) << "sample " << i << " pair " << p;
      ASSERT_EQ(x->pairs[p].k.size(), y->pairs[p].k.size());
      double worst = 0;
      for (size_t j = 0; j < x->pairs[p].k.size(); ++j) {
        const double kx = kernels::F16ToF32(x->pairs[p].k[j]),
                     ky = kernels::F16ToF32(y->pairs[p].k[j]);
        const double vx = kernels::F16ToF32(x->pairs[p].v[j]),
                     vy = kernels::F16ToF32(y->pairs[p].v[j]);
        worst = std::max({worst, std::fabs(kx - ky) / (1 + std::fabs(kx)),
                          std::fabs(vx - vy) / (1 + std::fabs(vx))});
      }
      EXPECT_LE(worst, 2e-3) << "K/V beyond fp16 rounding: sample " << i << " pair " << p;
    }
  }
}

TEST(GenDataGpuTest, CudaEngineWritesTheCpuSamples) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  PMPD_REQUIRE_SHARED("data/c4");
  ExpectSameLabels("gendata_gpu", "--batch 1");
}

// The 6 prompts labelled together on 8 slots (one window): every reference, all-high and branch
// run of all of them shares the batched steps; the CPU's labels still.
TEST(GenDataGpuTest, CudaSlotLabellingWritesTheCpuSamples) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  PMPD_REQUIRE_SHARED("data/c4");
  ExpectSameLabels("gendata_gpu_slots", "--batch 8 --flush-every 6");
}

// --label-metric excess_nll on the CUDA engine: the CPU engine's costs within what the engines'
// float sums allow (the CUDA engine decodes in fp16 activations: 2e-2 nats per token, against
// costs of 0.1-1 on this model).
TEST(GenDataGpuTest, CudaTeacherForcedCostsMatchTheCpu) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  PMPD_REQUIRE_SHARED("data/c4");
  std::unique_ptr<dataset::KvDatasetReader> a, b;
  ASSERT_NO_FATAL_FAILURE(
      RunOnBothDevices("gendata_gpu_nll", "--label-metric excess_nll", "", "", &a, &b));
  double worst = 0, largest = 0;
  for (const auto& [hi, lo] : a->pairs()) {
    auto x = a->ReadPair(hi, lo);
    auto y = b->ReadPair(hi, lo);
    ASSERT_TRUE(x.ok() && y.ok());
    ASSERT_EQ(x->excess_nll.size(), 18u);
    ASSERT_EQ(y->excess_nll.size(), 18u);
    for (size_t j = 0; j < 18; ++j) {
      worst = std::max(worst, std::fabs(x->excess_nll[j] - y->excess_nll[j]));
      largest = std::max(largest, std::fabs(x->excess_nll[j]));
    }
    for (size_t i = 0; i < 6; ++i) {
      EXPECT_NEAR(x->nll_high[i], y->nll_high[i], 2e-2 * (1 + x->nll_high[i])) << i;
    }
  }
  std::printf("largest |cpu - cuda| excess NLL %.2e nats/token (largest cost %.3f)\n", worst,
              largest);
  EXPECT_LE(worst, 2e-2);
  EXPECT_GT(largest, 0.05);  // costs to compare, not zeros
}

}  // namespace
}  // namespace pmpd::data_gen
