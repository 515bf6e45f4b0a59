// The streamed, layer-by-layer Fisher sensitivities (inference/fisher_stream.h) against the
// whole-model backward of LlamaModel::FisherSensitivity on stories260K: the same numbers for every
// segment length, with layers skipped, within the stated activation memory; and its errors.
#include "inference/fisher_stream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>

#include "inference/anyprec_quantize_cuda.h"
#include "inference/llama_model.h"
#include "tests/test_util.h"

namespace pmpd::inference {
namespace {

using pmpd::testing::SharedPath;

// Three sequences of different lengths (one too short to predict anything: skipped by both).
std::vector<std::vector<int>> Sequences(int vocab) {
  std::vector<std::vector<int>> seqs(3);
  for (int i = 0; i < 17; ++i) seqs[0].push_back((i * 37 + 5) % vocab);
  for (int i = 0; i < 9; ++i) seqs[1].push_back((i * 11 + 90) % vocab);
  seqs[2] = {7};
  return seqs;
}

// Largest |a - b| relative to the largest |a| of the layer's reference.
double RelativeDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(a[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// stories260K, the sequences, and the whole-model reference Fisher.
struct Reference {
  std::string dir = SharedPath("models/stories260K");
  std::unique_ptr<LlamaModel> model;
  std::vector<std::vector<int>> seqs;
  std::map<std::string, std::vector<float>> fisher;
};

void MakeReference(Reference* r) {
  auto model = LlamaModel::Load(r->dir);
  ASSERT_TRUE(model.ok()) << model.status();
  r->model = std::move(*model);
  r->seqs = Sequences(r->model->config().vocab_size);
  auto f = r->model->FisherSensitivity(r->seqs);
  ASSERT_TRUE(f.ok()) << f.status();
  r->fisher = std::move(*f);
}

TEST(FisherStreamTest, EqualsWholeModelBackwardForEverySegmentLength) {
  PMPD_REQUIRE_SHARED("models/stories260K");
  Reference r;
  ASSERT_NO_FATAL_FAILURE(MakeReference(&r));
  const std::string& dir = r.dir;
  const auto& seqs = r.seqs;
  const auto* ref = &r.fisher;
  const int L = r.model->config().num_hidden_layers;
  const int64_t H = r.model->config().hidden_size, tokens = 17 + 9;
  for (int every : {0, 1, 2, L}) {
    SCOPED_TRACE(every);
    FisherStreamOptions o;
    o.checkpoint_every = every;
    auto stream = FisherStream::Create(dir, seqs, o);
    ASSERT_TRUE(stream.ok()) << stream.status();
    ASSERT_EQ((*stream)->num_layers(), L);
    double total = 0;
    for (int l = L - 1; l >= 0; --l) {
      auto got = (*stream)->Layer(l);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->size(), 7u);
      for (const auto& [name, f] : *got) {
        ASSERT_TRUE(ref->count(name)) << name;
        ASSERT_EQ(f.size(), ref->at(name).size()) << name;
        // The same ops on the same device: equal (the bound only allows for a BLAS that would
        // block a product differently by shape).
        EXPECT_LE(RelativeDiff(ref->at(name), f), 1e-6) << name;
        total += std::accumulate(f.begin(), f.end(), 0.0);
      }
    }
    EXPECT_GT(total, 0);
    // The stated bound: (segments + segment length + 1) x tokens x hidden x 4 bytes.
    const int s = every > 0 ? every : static_cast<int>(std::ceil(std::sqrt(L)));
    const int64_t bound = ((L + s - 1) / s + s + 1) * tokens * H * 4;
    EXPECT_GT((*stream)->peak_activation_bytes(), 0);
    EXPECT_LE((*stream)->peak_activation_bytes(), bound);
  }
}

TEST(FisherStreamTest, SkippedLayersStillCarryTheGradientAndOrderIsEnforced) {
  PMPD_REQUIRE_SHARED("models/stories260K");
  Reference r;
  ASSERT_NO_FATAL_FAILURE(MakeReference(&r));
  const auto* ref = &r.fisher;
  auto stream = FisherStream::Create(r.dir, r.seqs, {});
  ASSERT_TRUE(stream.ok()) << stream.status();
  auto layer1 = (*stream)->Layer(1);  // layers L-1 .. 2 walked without their Fisher
  ASSERT_TRUE(layer1.ok()) << layer1.status();
  for (const auto& [name, f] : *layer1) EXPECT_LE(RelativeDiff(ref->at(name), f), 1e-6) << name;
  auto again = (*stream)->Layer(1);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(std::string(again.status().message()).find("decreasing order"), std::string::npos)
      << again.status();
  EXPECT_TRUE((*stream)->Layer(0).ok());
}

TEST(FisherStreamTest, RefusesBadInputWithClearErrors) {
  PMPD_REQUIRE_SHARED("models/stories260K");
  const std::string dir = SharedPath("models/stories260K");
  auto bad_id = FisherStream::Create(dir, {{1, 2, 1 << 20}}, {});
  ASSERT_FALSE(bad_id.ok());
  EXPECT_NE(std::string(bad_id.status().message()).find("outside the vocabulary"),
            std::string::npos);
  auto too_long = FisherStream::Create(dir, {std::vector<int>(100000, 1)}, {});
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(std::string(too_long.status().message()).find("context"), std::string::npos);
  auto empty = FisherStream::Create(dir, {{1, 2}, {}}, {});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(std::string(empty.status().message()).find("sequence 1 is empty"), std::string::npos);
  FisherStreamOptions gpu;
  gpu.device = "gpu";
  auto bad_device = FisherStream::Create(dir, {{1, 2}}, gpu);
  ASSERT_FALSE(bad_device.ok());
  EXPECT_NE(std::string(bad_device.status().message()).find("expected cpu or cuda"),
            std::string::npos);
  if (CudaDeviceCount() == 0) {
    FisherStreamOptions cuda;
    cuda.device = "cuda";
    auto no_gpu = FisherStream::Create(dir, {{1, 2}}, cuda);
    ASSERT_FALSE(no_gpu.ok());
    EXPECT_NE(std::string(no_gpu.status().message()).find("no CUDA device"), std::string::npos);
  }
  const std::string quantized = pmpd::testing::QuantizeForTest("fisher_ap", dir, 2, 4);
  auto anyprec = FisherStream::Create(quantized, {{1, 2}}, {});
  ASSERT_FALSE(anyprec.ok());
  EXPECT_NE(std::string(anyprec.status().message()).find("full-precision"), std::string::npos);
  EXPECT_NE(std::string(anyprec.status().message()).find(quantized), std::string::npos);
}

}  // namespace
}  // namespace pmpd::inference
