// One generation loop behind both engines (inference::Engine): PMPD generation on the CUDA engine
// equals the CPU engine's, static 4 -> 3 -> 2, the learned scheduler (the reference-format golden
// classifier fits stories260K) and no scheduler at all, token for token, precision for precision
// and stop reason for stop reason; and pmpd-generate --device cuda prints what --device cpu prints.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "inference/cuda_engine.h"
#include "inference/llama_model.h"
#include "inference/load_engine.h"
#include "models/tokenizer.h"
#include "scheduler_runtime/kv_classifier.h"
#include "scheduler_runtime/scheduled_generation.h"
#include "tests/kernels/gpu_test_util.h"
#include "tests/test_util.h"

namespace pmpd::scheduler {
namespace {

// stories260K quantized to any-precision 2..4 bits, shared by the tests below.
std::string QuantizedStories() {
  static const std::string dir =
      testing::QuantizeForTest("cuda_sched", testing::SharedPath("models/stories260K"), 2, 4);
  return dir;
}

TEST(CudaScheduledGenerationTest, MatchesTheCpuEngineUnderStaticAndLearnedSchedules) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const std::string dir = QuantizedStories();
  auto cpu = inference::LlamaModel::Load(dir);
  auto gpu = inference::CudaEngine::Load(dir);
  auto tok = models::Tokenizer::Load(dir);
  ASSERT_TRUE(cpu.ok() && gpu.ok() && tok.ok()) << gpu.status();
  ScheduledGenerationOptions o;
  o.generation.max_new_tokens = 48;
  for (const std::string prompt : {"Once upon a time", "The little dog wanted to"}) {
    const std::vector<int> ids = (*tok)->Encode(prompt, true);
    for (int which = 0; which < 2; ++which) {
      std::unique_ptr<PrecisionScheduler> a, b;
      if (which == 0) {
        a = *MakeStaticScheduler({4, 3, 2}, {8, 20});
        b = *MakeStaticScheduler({4, 3, 2}, {8, 20});
      } else {
        LearnedSchedulerOptions lo{
            testing::SourcePath("tests/golden/reference_classifier"), {4, 3}, 4, 8, 32};
        a = *MakeLearnedScheduler(lo);
        lo.device =
            "cuda";  // on the GPU engine the classifier runs on the GPU, on its cache in place
        auto learned_gpu = MakeLearnedScheduler(lo);
        ASSERT_TRUE(learned_gpu.ok()) << learned_gpu.status();
        b = std::move(*learned_gpu);
      }
      auto rc = GenerateScheduled(**cpu, ids, o, a.get());
      auto rg = GenerateScheduled(**gpu, ids, o, b.get());
      ASSERT_TRUE(rc.ok() && rg.ok()) << rg.status();
      EXPECT_EQ(rc->generation.new_ids, rg->generation.new_ids) << prompt << " scheduler " << which;
      EXPECT_EQ(rc->token_precisions, rg->token_precisions) << prompt << " scheduler " << which;
      EXPECT_EQ(rc->generation.finish_reason, rg->generation.finish_reason);
      EXPECT_EQ(a->Describe(), b->Describe());  // the learned one names its predicted steps
      std::fprintf(stderr, "%s | %s: %.2f bits\n", prompt.c_str(), b->Describe().c_str(),
                   rg->avg_bits);
    }
  }
}

// The classifier on CUDA: the same logits as on the CPU (golden reference-format file), from host
// spans and from a strided device view like the CUDA engine's cache.
TEST(CudaScheduledGenerationTest, ClassifierOnCudaGivesTheCpuLogits) {
  PMPD_REQUIRE_GPU();
  auto state = ReadReferenceClassifierPt(
      testing::SourcePath("tests/golden/reference_classifier/classifier_4_3.pt"));
  ASSERT_TRUE(state.ok()) << state.status();
  auto cpu = KvClassifier::FromState(*state, "golden", "cpu");
  auto gpu = KvClassifier::FromState(*state, "golden", "cuda");
  ASSERT_TRUE(cpu.ok() && gpu.ok()) << gpu.status();
  EXPECT_TRUE((*gpu)->on_cuda());
  const int H = static_cast<int>((*cpu)->spec().kv_heads),
            D = static_cast<int>((*cpu)->spec().head_dim);
  for (int T : {1, 5, 33}) {
    std::vector<float> k(static_cast<size_t>(H) * T * D), v(k.size());
    for (size_t i = 0; i < k.size(); ++i) k[i] = std::sin(0.37 * i), v[i] = std::cos(0.11 * i + T);
    auto lc = (*cpu)->Logits(inference::HostKvView(k, v, H, T, D));
    auto lg = (*gpu)->Logits(inference::HostKvView(k, v, H, T, D));
    ASSERT_TRUE(lc.ok() && lg.ok()) << lg.status();
    // The device view: heads `stride` floats apart (a cache of 40 positions), T of them valid.
    const int64_t stride = 40 * D;
    std::vector<float> kc(H * stride, NAN), vc(H * stride, NAN);
    for (int h = 0; h < H; ++h) {
      std::copy_n(k.begin() + static_cast<size_t>(h) * T * D, T * D, kc.begin() + h * stride);
      std::copy_n(v.begin() + static_cast<size_t>(h) * T * D, T * D, vc.begin() + h * stride);
    }
    float *dk = nullptr, *dv = nullptr;
    ASSERT_EQ(cudaMalloc(&dk, kc.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dv, vc.size() * 4), cudaSuccess);
    cudaMemcpy(dk, kc.data(), kc.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dv, vc.data(), vc.size() * 4, cudaMemcpyHostToDevice);
    inference::KvView view;
    view.device = inference::Device::kCuda;
    view.k = dk, view.v = dv, view.kv_heads = H, view.length = T, view.head_dim = D;
    view.head_stride = stride, view.position_stride = D;
    auto ld = (*gpu)->Logits(view);
    cudaFree(dk);
    cudaFree(dv);
    ASSERT_TRUE(ld.ok()) << ld.status();
    ASSERT_EQ(lc->size(), lg->size());
    for (size_t i = 0; i < lc->size(); ++i) {
      EXPECT_NEAR((*lg)[i], (*lc)[i], 1e-4 * (1 + std::fabs((*lc)[i])))
          << "T " << T << " class " << i;
      EXPECT_NEAR((*ld)[i], (*lc)[i], 1e-4 * (1 + std::fabs((*lc)[i])))
          << "device view, T " << T << " class " << i;
    }
  }
}

// Without a scheduler (plain greedy at the engine's precision), through LoadEngine: the same
// tokens, precisions (recorded the same way) and stop reasons; and a "context" stop when the GPU
// cache is full.
TEST(CudaScheduledGenerationTest, UnscheduledAndContextStopsMatchThroughLoadEngine) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const std::string dir = QuantizedStories();
  inference::LoadEngineOptions lo;
  lo.verbose = false;
  lo.cuda_max_context = 40;
  auto cpu = inference::LoadEngine(dir, inference::Device::kCpu, lo);
  auto gpu = inference::LoadEngine(dir, inference::Device::kCuda, lo);
  ASSERT_TRUE(cpu.ok() && gpu.ok()) << gpu.status();
  EXPECT_EQ((*gpu)->device(), inference::Device::kCuda);
  auto tok = models::Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok());
  const std::vector<int> ids = (*tok)->Encode("Once upon a time", true);
  for (int bits : {4, 3}) {
    ASSERT_TRUE((*cpu)->SetPrecision(bits).ok() && (*gpu)->SetPrecision(bits).ok());
    ScheduledGenerationOptions o;
    o.generation.max_new_tokens = 24;
    auto rc = GenerateScheduled(**cpu, ids, o, nullptr);
    auto rg = GenerateScheduled(**gpu, ids, o, nullptr);
    ASSERT_TRUE(rc.ok() && rg.ok()) << rg.status();
    EXPECT_EQ(rc->generation.new_ids, rg->generation.new_ids) << bits;
    EXPECT_EQ(rc->token_precisions, std::vector<int>(rc->generation.new_ids.size(), bits));
    EXPECT_EQ(rc->token_precisions, rg->token_precisions);
    EXPECT_EQ(rc->generation.finish_reason, rg->generation.finish_reason);
  }
  // The GPU cache holds 40 positions: with the stop token ignored generation ends at "context".
  ScheduledGenerationOptions o;
  o.generation.max_new_tokens = 100;
  o.generation.stop_at_eos = false;
  auto rg = GenerateScheduled(**gpu, ids, o, nullptr);
  ASSERT_TRUE(rg.ok()) << rg.status();
  EXPECT_EQ(rg->generation.finish_reason, "context");
  EXPECT_EQ(static_cast<int>(ids.size() + rg->generation.new_ids.size()),
            41);  // the last is not cached
}

// The KvView consumer on both engines: after the same prefill the classifier reads the CPU engine's
// host cache and the CUDA engine's device cache (another capacity, so other strides) through their
// views only and gives the same logits.
TEST(CudaScheduledGenerationTest, ClassifierReadsBothEnginesThroughKvView) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const std::string dir = QuantizedStories();
  auto cpu = inference::LlamaModel::Load(dir);
  auto gpu = inference::CudaEngine::Load(dir);
  ASSERT_TRUE(cpu.ok() && gpu.ok()) << gpu.status();
  auto state = ReadReferenceClassifierPt(
      testing::SourcePath("tests/golden/reference_classifier/classifier_4_3.pt"));
  ASSERT_TRUE(state.ok());
  auto on_cpu = KvClassifier::FromState(*state, "golden", "cpu");
  auto on_gpu = KvClassifier::FromState(*state, "golden", "cuda");
  ASSERT_TRUE(on_cpu.ok() && on_gpu.ok());
  const std::vector<int> prompt = {1, 403, 407, 261, 378, 20, 11, 87, 292, 8};
  ASSERT_TRUE((*cpu)->Prefill(prompt, nullptr, nullptr).ok());
  ASSERT_TRUE((*gpu)->Prefill(prompt, nullptr, nullptr).ok());
  const inference::KvView vc = (*cpu)->LastLayerKv(), vg = (*gpu)->LastLayerKv();
  EXPECT_EQ(vg.device, inference::Device::kCuda);
  EXPECT_NE(vc.head_stride, vg.head_stride);
  for (auto* c : {&*on_cpu, &*on_gpu}) {
    auto a = (*c)->Logits(vc);
    auto b = (*c)->Logits(vg);
    ASSERT_TRUE(a.ok() && b.ok()) << b.status();
    for (size_t i = 0; i < a->size(); ++i) {
      // Two engines' fp32 caches of the same prefill differ by accumulation order only.
      EXPECT_NEAR((*a)[i], (*b)[i], 1e-3 * (1 + std::fabs((*a)[i]))) << "class " << i;
    }
  }
}

TEST(CudaScheduledGenerationTest, CliDeviceCudaPrintsWhatCpuPrints) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const std::string dir = QuantizedStories();
  const std::string args = absl::StrCat("--model ", dir,
                                        " --prompt 'Once upon a time' --max-new-tokens 40 "
                                        "--precisions 4,3,2 --switch-steps 10,25 --json --device ");
  const testing::RunResult c = testing::RunBinary("cli/pmpd-generate", args + "cpu");
  const testing::RunResult g = testing::RunBinary("cli/pmpd-generate", args + "cuda");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const auto jc = nlohmann::json::parse(c.out), jg = nlohmann::json::parse(g.out);
  EXPECT_EQ(jc["new_ids"], jg["new_ids"]);
  EXPECT_EQ(jc["precisions"], jg["precisions"]);
  EXPECT_EQ(jg["device"], "cuda");
  std::fprintf(stderr, "cpu %.0f tok/s, cuda %.0f tok/s\n", jc["decode_tokens_per_s"].get<double>(),
               jg["decode_tokens_per_s"].get<double>());
}

// pmpd-eval on the CUDA engine: the same rows (average bits and Rouge-L to the last digit: the same
// tokens) as on the CPU engine, with the reference = the model's own greedy output at its parent
// precision on each device.
TEST(CudaScheduledGenerationTest, EvalDeviceCudaGivesTheCpuRows) {
  PMPD_REQUIRE_GPU();
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const std::string dir = QuantizedStories();
  const std::string args =
      absl::StrCat("--model ", dir,
                   " --task tinystories --num-prompts 6 --max-new-tokens 48 --precisions 4,3,2 "
                   "--methods high,low,static --switch-steps 12,30 --reference model "
                   "--shared-dir ",
                   testing::SharedPath(""), " --json --device ");
  const testing::RunResult c = testing::RunBinary("cli/pmpd-eval", args + "cpu");
  const testing::RunResult g = testing::RunBinary("cli/pmpd-eval", args + "cuda");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const auto jc = nlohmann::json::parse(c.out.substr(c.out.find('{'))),
             jg = nlohmann::json::parse(g.out.substr(g.out.find('{')));
  ASSERT_EQ(jc["rows"].size(), 3u);
  ASSERT_EQ(jg["rows"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(jc["rows"][i]["method"], jg["rows"][i]["method"]);
    EXPECT_EQ(jc["rows"][i]["avg_bits"], jg["rows"][i]["avg_bits"]) << i;
    EXPECT_EQ(jc["rows"][i]["rouge_l"], jg["rows"][i]["rouge_l"]) << i;
    std::fprintf(stderr, "%s: cpu %.0f tok/s, cuda %.0f tok/s\n",
                 jc["rows"][i]["method"].get<std::string>().c_str(),
                 jc["rows"][i]["tokens_per_s"].get<double>(),
                 jg["rows"][i]["tokens_per_s"].get<double>());
  }
  EXPECT_GT(jc["rows"][0]["rouge_l"].get<double>(), 99.0);  // high = the reference itself
}

}  // namespace
}  // namespace pmpd::scheduler
