// GPU test (label `gpu`): pmpd-gen-data --device cuda (the CUDA engine, sequential labelling)
// writes the samples --device cpu writes: same prompts, references, labels and Rouge-L values; K/V
// within fp16 storage rounding (the engines' fp32 sums differ in order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "dataset/kv_dataset.h"
#include "kernels/half.h"
#include "tests/kernels/gpu_test_util.h"
#include "tests/test_util.h"

namespace pmpd::data_gen {
namespace {

TEST(GenDataGpuTest, CudaEngineWritesTheCpuSamples) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  PMPD_REQUIRE_SHARED("data/c4");
  const std::string model =
      testing::QuantizeForTest("gendata_gpu", testing::SharedPath("models/stories260K"), 2, 4);
  const std::string dir = testing::MakeTempDir("gendata_gpu");
  // Reference: the model's own parent precision (an fp16 copy of a float reference model on the GPU
  // would be another reference).
  const std::string flags =
      absl::StrCat("--model ", model, " --c4 ", testing::SharedPath("data/c4"),
                   " --precisions 4,3,2 --num-docs 6 --max-new-tokens 40 --seed 7 --out ");
  const testing::RunResult c = testing::RunBinary(
      "cli/pmpd-gen-data", flags + dir + "/cpu.h5 --device cpu --branches sequential");
  const testing::RunResult g =
      testing::RunBinary("cli/pmpd-gen-data", flags + dir + "/cuda.h5 --device cuda");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ASSERT_EQ(g.exit_code, 0) << g.err;
  auto a = dataset::KvDatasetReader::Open(dir + "/cpu.h5");
  auto b = dataset::KvDatasetReader::Open(dir + "/cuda.h5");
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  EXPECT_EQ((*a)->header().Diff((*b)->header()), "");
  ASSERT_EQ((*a)->num_samples(), 6);
  ASSERT_EQ((*b)->num_samples(), 6);
  for (int64_t i = 0; i < 6; ++i) {
    auto x = (*a)->ReadSample(i);
    auto y = (*b)->ReadSample(i);
    ASSERT_TRUE(x.ok() && y.ok());
    EXPECT_EQ(x->prompt_ids, y->prompt_ids) << i;
    EXPECT_EQ(x->reference_ids, y->reference_ids) << i;
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

}  // namespace
}  // namespace pmpd::data_gen
