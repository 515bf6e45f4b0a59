// GPU tests (label `gpu`): the CUDA engine against the CPU reference engine (LlamaModel) on
// stories260K: greedy tokens at every precision of a 2..4-bit any-precision copy and under a
// 4 -> 3 -> 2 static schedule, logits and the last layer's K/V; the fp16 path on the float model;
// graphs against eager launches, a 65536-position context, and the random-weight constructor. (The
// decode-step kernels are tested against their references in tests/kernels/decode_ops_gpu_test.cc.)
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "inference/cuda_engine.h"
#include "inference/llama_model.h"
#include "kernels/half.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "tests/kernels/gpu_test_util.h"
#include "tests/test_util.h"

namespace pmpd::inference {
namespace {

constexpr char kModel[] = "models/stories260K";
const std::vector<int> kPrompt = {1, 403, 407, 261, 378};  // "Once upon a time"
constexpr int kNewTokens = 64;
constexpr double kEps32 = 1.1920928955078125e-07;
constexpr double kEps16 = 9.765625e-04;  // 2^-10: fp16 spacing at 1 (rounding error <= half of it)

// stories260K quantized to any-precision 2..4 bits, once per test binary.
const std::string& QuantizedDir() {
  static const std::string dir =
      testing::QuantizeForTest("cuda_engine", testing::SharedPath(kModel), 2, 4);
  return dir;
}

int Argmax(const std::vector<float>& x) {
  return static_cast<int>(std::max_element(x.begin(), x.end()) - x.begin());
}

// One greedy run: tokens, the logits that chose each, and the precision of each pass.
struct GreedyRun {
  std::vector<int> tokens;
  std::vector<std::vector<float>> logits;
  std::vector<int> precisions;
};

// Greedy decoding with the PMPD timeline (precision_scheduler.h): the prompt at the scheduler's
// highest precision gives token 0; the pass producing token k >= 1 runs at NextPrecision(k, ...).
// `schedule` null: the model's current precision throughout. Written once for both engines.
template <typename Engine, typename Prefill, typename Step>
GreedyRun Greedy(Engine& e, scheduler::PrecisionScheduler* schedule, Prefill prefill, Step step) {
  GreedyRun r;
  e.Reset();
  if (schedule != nullptr) {
    schedule->Reset();
    EXPECT_TRUE(e.SetPrecision(schedule->precisions().front()).ok());
  }
  std::vector<float> logits;
  int tok = -1;
  EXPECT_TRUE(prefill(&logits, &tok).ok());
  for (int k = 0; k < kNewTokens; ++k) {
    if (k > 0) {
      if (schedule != nullptr) {
        const int bits = schedule->NextPrecision(k, e.precision(), logits);
        if (bits != e.precision()) {
          EXPECT_TRUE(e.SetPrecision(bits).ok());
        }
      }
      EXPECT_TRUE(step(r.tokens.back(), &logits, &tok).ok());
    }
    r.tokens.push_back(tok);
    r.logits.push_back(logits);
    r.precisions.push_back(e.precision());
  }
  return r;
}

GreedyRun CpuGreedy(LlamaModel& m, scheduler::PrecisionScheduler* schedule,
                    const std::vector<int>& prompt = kPrompt) {
  return Greedy(
      m, schedule,
      [&](std::vector<float>* logits, int* tok) {
        auto st = m.Forward(prompt, false, logits);
        *tok = Argmax(*logits);
        return st;
      },
      [&](int token, std::vector<float>* logits, int* tok) {
        const int one[1] = {token};
        auto st = m.Forward(one, false, logits);
        *tok = Argmax(*logits);
        return st;
      });
}

GreedyRun GpuGreedy(CudaEngine& g, scheduler::PrecisionScheduler* schedule) {
  return Greedy(
      g, schedule,
      [&](std::vector<float>* logits, int* tok) { return g.Prefill(kPrompt, logits, tok); },
      [&](int token, std::vector<float>* logits, int* tok) {
        return g.DecodeStep(token, logits, tok);
      });
}

// Tolerance of a float32 engine against another: c * eps * sqrt(K) per dot product, compounded over
// the layers, relative to the largest magnitude (the logits and K/V are O(1..10) here).
double Fp32Tolerance(const models::LlamaConfig& c, double max_abs) {
  const double k = std::max(c.hidden_size, c.intermediate_size);
  return 16 * kEps32 * std::sqrt(k) * c.num_hidden_layers * std::max(1.0, max_abs);
}

double MaxAbs(const std::vector<float>& x) {
  double m = 0;
  for (float v : x) m = std::max(m, static_cast<double>(std::fabs(v)));
  return m;
}

// Largest |got - want|, with the worst index printed.
double ExpectClose(const std::vector<float>& got, const std::vector<float>& want, double tol,
                   const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(d <= worst)) worst = d, at = i;  // NaN counts as worst
  }
  EXPECT_LE(worst, tol) << what << ": worst index " << at << " expected " << want[at] << " got "
                        << got[at];
  std::printf("%s: max |diff| %.3g at %zu (tolerance %.3g)\n", what.c_str(), worst, at, tol);
  return worst;
}

// Strict token equality, with the first mismatch explained (the CPU's margin there).
void ExpectSameTokens(const GreedyRun& gpu, const GreedyRun& cpu, const std::string& what) {
  ASSERT_EQ(gpu.tokens.size(), cpu.tokens.size()) << what;
  for (size_t k = 0; k < cpu.tokens.size(); ++k) {
    if (gpu.tokens[k] != cpu.tokens[k]) {
      const auto& l = cpu.logits[k];
      ADD_FAILURE() << what << ": first different token at step " << k << ": cpu " << cpu.tokens[k]
                    << " (logit " << l[cpu.tokens[k]] << "), gpu " << gpu.tokens[k]
                    << " (cpu logit " << l[gpu.tokens[k]] << ")";
      return;
    }
  }
  EXPECT_EQ(gpu.precisions, cpu.precisions) << what;
}

class CudaEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PMPD_REQUIRE_GPU();
    PMPD_REQUIRE_SHARED(kModel);
  }
};

TEST_F(CudaEngineTest, GreedyMatchesCpuAtEveryPrecision) {
  auto cpu = LlamaModel::Load(QuantizedDir());
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  auto gpu = CudaEngine::Load(QuantizedDir());
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ((*gpu)->min_precision(), 2);
  EXPECT_EQ((*gpu)->max_precision(), 4);
  for (int bits : {4, 3, 2}) {
    ASSERT_TRUE((*cpu)->SetPrecision(bits).ok());
    ASSERT_TRUE((*gpu)->SetPrecision(bits).ok());
    const GreedyRun want = CpuGreedy(**cpu, nullptr);
    const GreedyRun got = GpuGreedy(**gpu, nullptr);
    ExpectSameTokens(got, want, "uniform " + std::to_string(bits) + " bits");
    // The GPU argmax is the argmax of the logits it returns.
    for (size_t k = 0; k < got.tokens.size(); ++k)
      ASSERT_EQ(got.tokens[k], Argmax(got.logits[k])) << k;
    const auto& c = (*cpu)->config();
    ExpectClose(got.logits[0], want.logits[0], Fp32Tolerance(c, MaxAbs(want.logits[0])),
                "prefill logits at " + std::to_string(bits) + " bits");
    ExpectClose(got.logits[10], want.logits[10], Fp32Tolerance(c, MaxAbs(want.logits[10])),
                "step-10 logits at " + std::to_string(bits) + " bits");
  }
}

TEST_F(CudaEngineTest, ScheduleMatchesCpu) {
  auto cpu = LlamaModel::Load(QuantizedDir());
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  auto gpu = CudaEngine::Load(QuantizedDir());
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  auto s_cpu = scheduler::MakeStaticScheduler({4, 3, 2}, {8, 20});
  auto s_gpu = scheduler::MakeStaticScheduler({4, 3, 2}, {8, 20});
  ASSERT_TRUE(s_cpu.ok() && s_gpu.ok());
  const GreedyRun want = CpuGreedy(**cpu, s_cpu->get());
  const GreedyRun got = GpuGreedy(**gpu, s_gpu->get());
  ExpectSameTokens(got, want, "schedule 4,3,2 at 8,20");
  ASSERT_EQ(got.precisions.size(), static_cast<size_t>(kNewTokens));
  EXPECT_EQ(got.precisions[7], 4);
  EXPECT_EQ(got.precisions[8], 3);
  EXPECT_EQ(got.precisions[20], 2);
}

// Prefill passes: 256 (one pass through dequantize + SGEMM and the batched causal attention), 12
// (a 12-token SGEMM pass, then a 7-token GEMV pass starting at position 12), 8 (GEMV passes only).
class CudaEnginePrefillTest : public CudaEngineTest, public ::testing::WithParamInterface<int> {};

// Both engines on the quantized model, and the last-position logits of a 19-token prompt from each.
struct PrefillPair {
  std::unique_ptr<LlamaModel> cpu;
  std::unique_ptr<CudaEngine> gpu;
  std::vector<float> cpu_logits, gpu_logits;
};
void PrefillBoth(const CudaEngineOptions& options, PrefillPair* p) {
  auto cpu = LlamaModel::Load(QuantizedDir());
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  auto gpu = CudaEngine::Load(QuantizedDir(), options);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  p->cpu = std::move(*cpu);
  p->gpu = std::move(*gpu);
  std::vector<int> prompt;
  for (int i = 0; i < 19; ++i) prompt.push_back(1 + (i * 37) % 500);
  ASSERT_TRUE(p->cpu->Forward(prompt, false, &p->cpu_logits).ok());
  ASSERT_TRUE(p->gpu->Prefill(prompt, &p->gpu_logits, nullptr).ok());
}

TEST_P(CudaEnginePrefillTest, LastLayerKvMatchesCpu) {
  CudaEngineOptions options;
  options.prefill_chunk = GetParam();
  PrefillPair both;
  PrefillBoth(options, &both);
  if (HasFatalFailure()) return;
  // The 19-token prompt, then two decode steps.
  LlamaModel* cpu = both.cpu.get();
  CudaEngine* gpu = both.gpu.get();
  std::vector<float>& lc = both.cpu_logits;
  std::vector<float>& lg = both.gpu_logits;
  const auto& c = cpu->config();
  ExpectClose(lg, lc, Fp32Tolerance(c, MaxAbs(lc)), "logits after a 19-token prefill");
  for (int t : {7, 300}) {
    const int one[1] = {t};
    ASSERT_TRUE(cpu->Forward(one, false, &lc).ok());
    int am = -1;
    ASSERT_TRUE(gpu->DecodeStep(t, &lg, &am).ok());
  }
  EXPECT_EQ(gpu->cache_len(), 21);
  std::vector<float> kc, vc, kg, vg;
  cpu->CopyLastLayerKv(&kc, &vc);
  gpu->CopyLastLayerKv(&kg, &vg);
  ASSERT_EQ(kg.size(), static_cast<size_t>(c.num_key_value_heads) * 21 * c.head_dim);
  ExpectClose(kg, kc, Fp32Tolerance(c, MaxAbs(kc)), "last-layer K");
  ExpectClose(vg, vc, Fp32Tolerance(c, MaxAbs(vc)), "last-layer V");
}

INSTANTIATE_TEST_SUITE_P(PrefillChunks, CudaEnginePrefillTest, ::testing::Values(256, 12, 8));

// Batched decoding: four prompts of different lengths prefilled into four slots, then decoded
// together by DecodeBatch. Each sequence's greedy tokens equal the CPU engine's for that prompt
// alone, at 4, 3 and 2 bits with irregular batches (the slot sets and their order change from step
// to step, so sequences sit at different lengths and several graphs are captured) and under a
// 4 -> 3 -> 2 schedule in lockstep; logits and the last layer's K/V of every slot within fp32
// tolerance of the CPU's.
const std::vector<std::vector<int>>& BatchPrompts() {
  static const std::vector<std::vector<int>> prompts = {
      kPrompt, {1, 403}, {1, 378, 261, 403, 407, 261, 378, 500, 12, 77, 301}, {1, 261, 299}};
  return prompts;
}

void BatchedDecodeMatchesCpu(GemvKernel gemv) {
  using ::testing::Test;
  auto cpu = LlamaModel::Load(QuantizedDir());
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  CudaEngineOptions options;
  options.gemv = gemv;
  options.max_batch = 4;
  options.max_context = 256;
  auto gpu = CudaEngine::Load(QuantizedDir(), options);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  CudaEngine& g = **gpu;
  const auto& c = (*cpu)->config();
  const auto& prompts = BatchPrompts();
  const int B = static_cast<int>(prompts.size());
  ASSERT_EQ(g.max_batch(), B);

  // Prefills every slot at the current precision; token 0 of each run.
  auto prefill_all = [&](std::vector<GreedyRun>* runs) {
    runs->assign(B, {});
    for (int s = 0; s < B; ++s) {
      ASSERT_TRUE(g.SelectSequence(s).ok());
      g.Reset();
      std::vector<float> logits;
      int tok = -1;
      ASSERT_TRUE(g.Prefill(prompts[s], &logits, &tok).ok());
      (*runs)[s].tokens.push_back(tok);
      (*runs)[s].logits.push_back(logits);
      (*runs)[s].precisions.push_back(g.precision());
    }
    ASSERT_TRUE(g.SelectSequence(0).ok());
  };
  // One DecodeBatch over `slots`, appending to each slot's run.
  auto step = [&](const std::vector<int>& slots, std::vector<GreedyRun>* runs) {
    std::vector<int> tokens;
    for (int s : slots) tokens.push_back((*runs)[s].tokens.back());
    std::vector<float> logits;
    std::vector<int> argmax;
    ASSERT_TRUE(g.DecodeBatch(slots, tokens, &logits, &argmax).ok());
    ASSERT_EQ(argmax.size(), slots.size());
    ASSERT_EQ(logits.size(), slots.size() * c.vocab_size);
    for (size_t i = 0; i < slots.size(); ++i) {
      GreedyRun& r = (*runs)[slots[i]];
      r.tokens.push_back(argmax[i]);
      r.logits.emplace_back(logits.begin() + i * c.vocab_size,
                            logits.begin() + (i + 1) * c.vocab_size);
      r.precisions.push_back(g.precision());
      ASSERT_EQ(argmax[i], Argmax(r.logits.back())) << "slot " << slots[i];
    }
  };
  auto compare = [&](const std::vector<GreedyRun>& runs, scheduler::PrecisionScheduler* schedule,
                     const std::string& what) {
    for (int s = 0; s < B; ++s) {
      if (schedule != nullptr) {
        ASSERT_TRUE((*cpu)->SetPrecision(schedule->precisions().front()).ok());
      }
      const GreedyRun want = CpuGreedy(**cpu, schedule, prompts[s]);
      const std::string name = what + ", slot " + std::to_string(s);
      ExpectSameTokens(runs[s], want, name);
      ExpectClose(runs[s].logits[10], want.logits[10], Fp32Tolerance(c, MaxAbs(want.logits[10])),
                  name + ": step-10 logits");
      // The slot's cache: the prompt and every fed token, as the CPU's after the same run.
      ASSERT_TRUE(g.SelectSequence(s).ok());
      EXPECT_EQ(g.cache_len(), static_cast<int>(prompts[s].size()) + kNewTokens - 1) << name;
      std::vector<float> kc, vc, kg, vg;
      (*cpu)->CopyLastLayerKv(&kc, &vc);
      g.CopyLastLayerKv(&kg, &vg);
      ExpectClose(kg, kc, Fp32Tolerance(c, MaxAbs(kc)), name + ": last-layer K");
      ExpectClose(vg, vc, Fp32Tolerance(c, MaxAbs(vc)), name + ": last-layer V");
    }
    ASSERT_TRUE(g.SelectSequence(0).ok());
  };

  for (int bits : {4, 3, 2}) {
    ASSERT_TRUE((*cpu)->SetPrecision(bits).ok());
    ASSERT_TRUE(g.SetPrecision(bits).ok());
    std::vector<GreedyRun> runs;
    prefill_all(&runs);
    if (Test::HasFatalFailure()) return;
    // Irregular batches until every slot has kNewTokens tokens.
    const std::vector<std::vector<int>> patterns = {{0, 1, 2, 3}, {3, 1}, {2, 0, 1}, {1}, {3, 2}};
    for (int k = 0;; ++k) {
      std::vector<int> slots;
      for (int s : patterns[k % patterns.size()]) {
        if (static_cast<int>(runs[s].tokens.size()) < kNewTokens) slots.push_back(s);
      }
      if (slots.empty()) {
        bool done = true;
        for (const GreedyRun& r : runs)
          done = done && static_cast<int>(r.tokens.size()) == kNewTokens;
        if (done) break;
        continue;
      }
      step(slots, &runs);
      if (Test::HasFatalFailure()) return;
    }
    compare(runs, nullptr, "batched at " + std::to_string(bits) + " bits");
  }

  // A 4 -> 3 -> 2 schedule, all four in lockstep (the step index decides the precision).
  auto schedule = scheduler::MakeStaticScheduler({4, 3, 2}, {8, 20});
  ASSERT_TRUE(schedule.ok());
  ASSERT_TRUE(g.SetPrecision(4).ok());
  std::vector<GreedyRun> runs;
  prefill_all(&runs);
  if (Test::HasFatalFailure()) return;
  (*schedule)->Reset();
  for (int k = 1; k < kNewTokens; ++k) {
    const int bits = (*schedule)->NextPrecision(k, g.precision(), runs[0].logits.back());
    if (bits != g.precision()) ASSERT_TRUE(g.SetPrecision(bits).ok());
    step({0, 1, 2, 3}, &runs);
    if (Test::HasFatalFailure()) return;
  }
  auto cpu_schedule = scheduler::MakeStaticScheduler({4, 3, 2}, {8, 20});
  ASSERT_TRUE(cpu_schedule.ok());
  compare(runs, cpu_schedule->get(), "batched under 4,3,2 at 8,20");
}

TEST_F(CudaEngineTest, BatchedDecodeMatchesCpuPerSequence) {
  BatchedDecodeMatchesCpu(GemvKernel::kAuto);
}

// The same with every any-precision product on the tensor-core GEMV (1..4 rows; kAuto picks it only
// from 5 rows or on wide matrices, which stories260K does not have).
TEST_F(CudaEngineTest, BatchedDecodeOnTensorCoresMatchesCpuPerSequence) {
  BatchedDecodeMatchesCpu(GemvKernel::kTensorCore);
}

// The fp16 KV cache against the fp32 one (same engine otherwise) at 2 bits and under 4 -> 3 -> 2:
// logits and the last layer's K/V within fp16 rounding compounded over the layers, greedy tokens
// equal up to the first near-tie of the fp32 run (a margin inside that tolerance), the view typed
// fp16, and the rounding visible (the path was taken).
TEST_F(CudaEngineTest, Fp16KvCacheWithinFp16RoundingOfFp32Cache) {
  CudaEngineOptions half;
  half.kv_cache_fp16 = true;
  auto a = CudaEngine::Load(QuantizedDir());
  auto b = CudaEngine::Load(QuantizedDir(), half);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  CudaEngine& f32 = **a;
  CudaEngine& f16 = **b;
  const auto& c = f32.config();
  auto tol = [&](double max_abs) { return kEps16 * c.num_hidden_layers * std::max(1.0, max_abs); };
  double seen = 0;
  for (int pass = 0; pass < 2; ++pass) {
    auto s32 = scheduler::MakeStaticScheduler({4, 3, 2}, {8, 20});
    auto s16 = scheduler::MakeStaticScheduler({4, 3, 2}, {8, 20});
    ASSERT_TRUE(s32.ok() && s16.ok());
    if (pass == 0) {
      ASSERT_TRUE(f32.SetPrecision(2).ok());
      ASSERT_TRUE(f16.SetPrecision(2).ok());
    }
    const std::string what = pass == 0 ? "fp16 KV at 2 bits" : "fp16 KV under 4,3,2";
    const GreedyRun want = GpuGreedy(f32, pass == 0 ? nullptr : s32->get());
    const GreedyRun got = GpuGreedy(f16, pass == 0 ? nullptr : s16->get());
    size_t same = 0;
    while (same < want.tokens.size() && got.tokens[same] == want.tokens[same]) ++same;
    if (same < want.tokens.size()) {
      const auto& l = want.logits[same];
      const double margin = std::fabs(l[want.tokens[same]] - l[got.tokens[same]]);
      EXPECT_LE(margin, tol(MaxAbs(l))) << what << ": tokens differ at step " << same
                                        << " where the fp32 cache's margin is " << margin;
    }
    std::printf("%s: %zu of %zu tokens equal\n", what.c_str(), same, want.tokens.size());
    for (size_t k : {size_t{0}, size_t{10}}) {
      if (k >= same) break;
      seen = std::max(seen, ExpectClose(got.logits[k], want.logits[k], tol(MaxAbs(want.logits[k])),
                                        what + ": logits of step " + std::to_string(k)));
    }
    if (same == want.tokens.size()) {
      EXPECT_EQ(f16.LastLayerKv().dtype, KvDtype::kFloat16);
      EXPECT_EQ(f32.LastLayerKv().dtype, KvDtype::kFloat32);
      std::vector<float> k32, v32, k16, v16;
      f32.CopyLastLayerKv(&k32, &v32);
      f16.CopyLastLayerKv(&k16, &v16);
      ExpectClose(k16, k32, tol(MaxAbs(k32)), what + ": last-layer K");
      ExpectClose(v16, v32, tol(MaxAbs(v32)), what + ": last-layer V");
      for (size_t i = 0; i < k16.size(); ++i) {
        ASSERT_EQ(k16[i], kernels::F16ToF32(kernels::F32ToF16(k16[i]))) << "not fp16 at " << i;
      }
    }
  }
  EXPECT_GT(seen, 0.0) << "no fp16 rounding visible: fp16 cache not used?";
}

// DecodeBatch's refusals leave every slot as it was; Reset and Prefill act on the selected slot
// only.
TEST_F(CudaEngineTest, BatchedDecodeErrorsAreClean) {
  CudaEngineOptions options;
  options.max_batch = 3;
  options.max_context = 16;
  auto gpu = CudaEngine::Load(QuantizedDir(), options);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  CudaEngine& g = **gpu;
  for (int s = 0; s < 3; ++s) {
    ASSERT_TRUE(g.SelectSequence(s).ok());
    ASSERT_TRUE(g.Prefill(std::vector<int>(s + 2, 5), nullptr, nullptr).ok());
  }
  EXPECT_EQ(g.SelectSequence(3).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(g.sequence(), 2);
  auto lens = [&] {
    std::vector<int> out;
    for (int s = 0; s < 3; ++s) {
      EXPECT_TRUE(g.SelectSequence(s).ok());
      out.push_back(g.cache_len());
    }
    return out;
  };
  const std::vector<int> before = lens();
  EXPECT_EQ(before, (std::vector<int>{2, 3, 4}));
  std::vector<int> argmax;
  EXPECT_EQ(g.DecodeBatch({0, 0}, {1, 1}, nullptr, &argmax).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.DecodeBatch({0, 3}, {1, 1}, nullptr, &argmax).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(g.DecodeBatch({0, 1}, {1}, nullptr, &argmax).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.DecodeBatch({}, {}, nullptr, &argmax).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.DecodeBatch({1, 2}, {1, g.config().vocab_size}, nullptr, &argmax).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lens(), before);
  // Fill slot 2 to the context; a batch holding it is refused whole.
  ASSERT_TRUE(g.SelectSequence(2).ok());
  ASSERT_TRUE(g.Prefill(std::vector<int>(16 - 4, 5), nullptr, nullptr).ok());
  EXPECT_EQ(g.DecodeBatch({0, 2}, {1, 1}, nullptr, &argmax).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(lens(), (std::vector<int>{2, 3, 16}));
  ASSERT_TRUE(g.DecodeBatch({1, 0}, {1, 1}, nullptr, &argmax).ok());
  EXPECT_EQ(lens(), (std::vector<int>{3, 4, 16}));
  ASSERT_TRUE(g.SelectSequence(1).ok());
  g.Reset();
  EXPECT_EQ(lens(), (std::vector<int>{3, 0, 16}));
  options.max_batch = 9;
  EXPECT_EQ(CudaEngine::Load(QuantizedDir(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// CopySequence: a copied prefix continues exactly as its source did (same kernels, same cache
// bytes), with an fp32 and an fp16 cache; refusals change nothing.
TEST_F(CudaEngineTest, CopySequenceContinuesAsTheSource) {
  for (bool fp16 : {false, true}) {
    CudaEngineOptions options;
    options.max_batch = 3;
    options.max_context = 48;
    options.kv_cache_fp16 = fp16;
    auto gpu = CudaEngine::Load(QuantizedDir(), options);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    CudaEngine& g = **gpu;
    ASSERT_TRUE(g.SetPrecision(3).ok());
    const std::vector<int> prompt = {1, 403, 12, 77, 5, 9, 200};
    std::vector<int> fed;
    std::vector<std::vector<float>> logits_at;
    int tok = -1;
    ASSERT_TRUE(g.Prefill(prompt, nullptr, &tok).ok());
    for (int k = 0; k < 10; ++k) {
      std::vector<float> logits;
      fed.push_back(tok);
      ASSERT_TRUE(g.DecodeStep(tok, &logits, &tok).ok());
      logits_at.push_back(logits);
    }
    // Slot 2 takes the prompt + 4 decoded positions, then decodes steps 4.. as slot 0 did.
    ASSERT_TRUE(g.CopySequence(0, 2, 7 + 4).ok());
    EXPECT_EQ(g.sequence(), 0);
    ASSERT_TRUE(g.SelectSequence(2).ok());
    EXPECT_EQ(g.cache_len(), 11);
    for (int k = 4; k < 10; ++k) {
      std::vector<float> logits;
      ASSERT_TRUE(g.DecodeStep(fed[k], &logits, nullptr).ok());
      EXPECT_EQ(logits, logits_at[k]) << "fp16 cache " << fp16 << " step " << k;
    }
    EXPECT_EQ(g.CopySequence(2, 2, 3).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(g.CopySequence(2, 3, 3).code(), absl::StatusCode::kOutOfRange);
    EXPECT_EQ(g.CopySequence(1, 2, 1).code(), absl::StatusCode::kOutOfRange);  // slot 1 is empty
    EXPECT_EQ(g.cache_len(), 17);
    ASSERT_TRUE(g.CopySequence(1, 2, 0).ok());  // an empty copy empties the target
    EXPECT_EQ(g.cache_len(), 0);
  }
}

// The float model through the fp16 path (fp16 projections, fp32 lm_head): logits within fp16
// rounding, greedy equal up to the first near-tie.
TEST_F(CudaEngineTest, Fp16PathOnFloatModel) {
  auto cpu = LlamaModel::Load(testing::SharedPath(kModel));
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  auto gpu = CudaEngine::Load(testing::SharedPath(kModel));
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ((*gpu)->precision(), 0);
  EXPECT_FALSE((*gpu)->SetPrecision(4).ok());
  const GreedyRun want = CpuGreedy(**cpu, nullptr);
  const GreedyRun got = GpuGreedy(**gpu, nullptr);
  const auto& c = (*cpu)->config();
  // Weights and activations rounded to fp16 (relative eps16 / 2 each) in every product: relative
  // error ~ eps16 per layer, compounded over the layers, on logits of magnitude max_abs.
  auto tol = [&](const std::vector<float>& ref) {
    return 4 * kEps16 * c.num_hidden_layers * std::max(1.0, MaxAbs(ref));
  };
  ExpectClose(got.logits[0], want.logits[0], tol(want.logits[0]), "fp16 prefill logits");
  size_t same = 0;
  while (same < want.tokens.size() && got.tokens[same] == want.tokens[same]) ++same;
  std::printf("fp16 path: greedy equal for the first %zu of %d tokens\n", same, kNewTokens);
  if (same < want.tokens.size()) {
    // Allowed only at a near-tie of the reference: its margin between the two choices within
    // tolerance.
    const auto& l = want.logits[same];
    const double margin = l[want.tokens[same]] - l[got.tokens[same]];
    std::printf("first difference at step %zu: cpu %d, gpu %d, cpu margin %.4g (tolerance %.4g)\n",
                same, want.tokens[same], got.tokens[same], margin, 2 * tol(l));
    EXPECT_LE(margin, 2 * tol(l)) << "tokens differ at step " << same
                                  << " where the reference has no near-tie";
    EXPECT_GE(same, 8u) << "the fp16 path leaves the reference within the first 8 tokens";
    ExpectClose(got.logits[same], want.logits[same], tol(l), "fp16 logits at the first difference");
  }
}

// fp16 prefill (tensor cores): W_p is exact in fp16, the activations are rounded to fp16; the
// logits after a 19-token prompt stay within that rounding of the CPU engine's.
TEST_F(CudaEngineTest, Fp16PrefillWithinFp16RoundingOfCpu) {
  CudaEngineOptions options;
  options.fp16_prefill = true;
  PrefillPair both;
  PrefillBoth(options, &both);
  if (HasFatalFailure()) return;
  const std::vector<float>& lc = both.cpu_logits;
  const std::vector<float>& lg = both.gpu_logits;
  const auto& c = both.cpu->config();
  const double tol = 4 * kEps16 * c.num_hidden_layers * std::max(1.0, MaxAbs(lc));
  const double worst = ExpectClose(lg, lc, tol, "fp16 prefill logits");
  EXPECT_GT(worst, Fp32Tolerance(c, MaxAbs(lc)) / 100)
      << "no fp16 rounding visible: fp16 path not taken?";
}

TEST_F(CudaEngineTest, GraphsMatchEagerLaunchesAndErrorsAreClean) {
  CudaEngineOptions eager;
  eager.use_graphs = false;
  auto a = CudaEngine::Load(QuantizedDir());
  auto b = CudaEngine::Load(QuantizedDir(), eager);
  ASSERT_TRUE(a.ok() && b.ok());
  auto s_a = scheduler::MakeStaticScheduler({4, 3, 2}, {8, 20});
  auto s_b = scheduler::MakeStaticScheduler({4, 3, 2}, {8, 20});
  const GreedyRun ga = GpuGreedy(**a, s_a->get());
  const GreedyRun gb = GpuGreedy(**b, s_b->get());
  EXPECT_EQ(ga.tokens, gb.tokens);
  for (size_t k = 0; k < ga.logits.size(); ++k)
    ASSERT_EQ(ga.logits[k], gb.logits[k]) << "step " << k;

  CudaEngine& e = **a;
  EXPECT_EQ(e.SetPrecision(5).code(), absl::StatusCode::kInvalidArgument);
  const int bad[1] = {e.config().vocab_size};
  e.Reset();
  EXPECT_EQ(e.Prefill(bad, nullptr, nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.cache_len(), 0);
  std::vector<int> too_long(e.max_context() + 1, 1);
  EXPECT_EQ(e.Prefill(too_long, nullptr, nullptr).code(), absl::StatusCode::kOutOfRange);
  int tok = -1;
  ASSERT_TRUE(e.Prefill(std::vector<int>(e.max_context(), 1), nullptr, &tok).ok());
  EXPECT_EQ(e.DecodeStep(tok, nullptr, &tok).code(), absl::StatusCode::kOutOfRange);
}

// A context past the 51200 positions the retired single-block attention kernel allowed: stories260K
// (any-precision) with max_position_embeddings raised to 65536 in a copy of its config. No CPU
// reference is affordable at this length, so the two GPU attention paths check each other (each is
// checked against its CPU reference in tests/kernels/): the last logits of one chunked prefill of
// 65535 tokens (cuBLAS scores + causal softmax over up to 65535 positions) equal those of a prefill
// of 65519 tokens followed by 16 teacher-forced decode steps (split-K decode attention over
// 2048 chunks). Then the cache fills to exactly 65536 and one more step is a clean error.
TEST_F(CudaEngineTest, ContextOf65536Positions) {
  constexpr int kLen = 65536;
  namespace fs = std::filesystem;
  const fs::path dir = testing::MakeTempDir("cuda_engine_long");
  for (const auto& f : fs::directory_iterator(QuantizedDir())) {
    if (f.path().filename() != "config.json") fs::copy(f.path(), dir / f.path().filename());
  }
  const std::string config = testing::ReadFile(QuantizedDir() + "/config.json");
  const std::regex max_pos(R"("max_position_embeddings"\s*:\s*[0-9]+)");
  ASSERT_TRUE(std::regex_search(config, max_pos));
  testing::WriteFile(
      (dir / "config.json").string(),
      std::regex_replace(config, max_pos, "\"max_position_embeddings\": " + std::to_string(kLen)));
  CudaEngineOptions o;
  o.max_context = 0;  // the config's
  auto a = CudaEngine::Load(dir.string(), o);
  auto b = CudaEngine::Load(dir.string(), o);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ((*a)->max_context(), kLen);
  const models::LlamaConfig& c = (*a)->config();
  std::vector<int> tokens(kLen - 1);
  uint32_t x = 12345;
  for (int& t : tokens) t = static_cast<int>((x = x * 1664525u + 1013904223u) >> 8) % c.vocab_size;
  std::vector<float> la, lb;
  int ta = -1, tb = -1;
  ASSERT_TRUE((*b)->Prefill(tokens, &lb, &tb).ok());
  const int split = kLen - 1 - 16;
  ASSERT_TRUE((*a)->Prefill(absl::MakeConstSpan(tokens).subspan(0, split), nullptr, nullptr).ok());
  for (int i = split; i < kLen - 1; ++i)
    ASSERT_TRUE((*a)->DecodeStep(tokens[i], &la, &ta).ok()) << i;
  EXPECT_EQ((*a)->cache_len(), kLen - 1);
  // fp32 sums over 65535 positions and the layers: eps * sqrt(len) per layer, relative.
  const double tol = 16 * kEps32 * std::sqrt(static_cast<double>(kLen)) * c.num_hidden_layers *
                     std::max(1.0, MaxAbs(lb));
  ExpectClose(la, lb, tol, "65535 positions: decode steps vs one prefill");
  EXPECT_EQ(ta, tb);
  ASSERT_TRUE((*a)->DecodeStep(ta, nullptr, &ta).ok());
  EXPECT_EQ((*a)->cache_len(), kLen);
  EXPECT_EQ((*a)->DecodeStep(ta, nullptr, &ta).code(), absl::StatusCode::kOutOfRange);
}

// Random weights on the GPU (the benchmark's constructor) on a small odd shape: GQA, head_dim 48
// != hidden / heads, K = 200 (not a multiple of 32), untied; any-precision and fp16 both decode,
// graphs equal eager launches, and decoding token by token equals prefilling the same tokens.
TEST(CudaEngineRandomTest, SmallShapeDecodes) {
  PMPD_REQUIRE_GPU();
  models::LlamaConfig c;
  c.hidden_size = 128;
  c.intermediate_size = 200;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 48;
  c.vocab_size = 1000;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-5;
  for (int parent : {0, 4}) {
    const int seed_bits = parent == 0 ? 0 : 2;
    CudaEngineOptions eager;
    eager.use_graphs = false;
    auto a = CudaEngine::CreateRandom(c, seed_bits, parent, 7);
    auto b = CudaEngine::CreateRandom(c, seed_bits, parent, 7, eager);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ((*a)->max_context(), 256);
    std::vector<int> prompt = {5, 17, 900, 3, 44, 61, 2, 8, 9, 10, 11};
    std::vector<float> la, lb;
    int ta = -1, tb = -1;
    ASSERT_TRUE((*a)->Prefill(prompt, &la, &ta).ok());
    ASSERT_TRUE((*b)->Prefill(prompt, &lb, &tb).ok());
    EXPECT_EQ(la, lb);
    for (int k = 0; k < 12; ++k) {
      if (parent != 0 && k == 6) {  // the second graph
        ASSERT_TRUE((*a)->SetPrecision(2).ok());
        ASSERT_TRUE((*b)->SetPrecision(2).ok());
      }
      ASSERT_TRUE((*a)->DecodeStep(ta, &la, &ta).ok());
      ASSERT_TRUE((*b)->DecodeStep(tb, &lb, &tb).ok());
      ASSERT_EQ(la, lb) << "graph vs eager, step " << k;
      ASSERT_EQ(ta, tb);
    }
    // Token-by-token decoding (a) vs one chunked prefill of the same tokens (b), same precision.
    (*a)->Reset();
    ASSERT_TRUE((*a)->Prefill(prompt, &la, &ta).ok());
    std::vector<int> seq = prompt;
    for (int k = 0; k < 12; ++k) {
      seq.push_back(ta);
      ASSERT_TRUE((*a)->DecodeStep(ta, &la, &ta).ok());
    }
    (*b)->Reset();
    ASSERT_TRUE((*b)->Prefill(seq, &lb, nullptr).ok());
    EXPECT_EQ((*b)->cache_len(), static_cast<int>(seq.size()));
    // The fp16 model's prefill rounds activations to fp16 (tensor-core GEMM), its decode GEMV reads
    // them in fp32: fp16 rounding between the two. The 2-bit model is fp32 on both paths.
    const double tol = parent == 0 ? 4 * kEps16 * c.num_hidden_layers * std::max(1.0, MaxAbs(lb))
                                   : Fp32Tolerance(c, MaxAbs(lb));
    ExpectClose(la, lb, tol,
                parent == 0 ? "fp16 random: decode vs prefill" : "2-bit random: decode vs prefill");
    EXPECT_GT((*a)->DecodeBytes(parent == 0 ? 0 : 2, 100), 0);
    if (parent != 0) {
      EXPECT_LT((*a)->DecodeBytes(2, 100), (*a)->DecodeBytes(4, 100));
    }
  }
}

// Where there is no GPU (this test runs only there): a clean error at the boundary, no abort.
TEST(CudaEngineNoGpuTest, LoadAndCreateRandomFailCleanly) {
  if (testing::HaveGpu())
    GTEST_SKIP() << "a CUDA device is present; this checks the error without one";
  models::LlamaConfig c;
  c.hidden_size = 64, c.intermediate_size = 128, c.num_hidden_layers = 1, c.num_attention_heads = 4;
  c.num_key_value_heads = 4, c.head_dim = 16, c.vocab_size = 100;
  auto e = CudaEngine::CreateRandom(c, 2, 4, 1);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(e.status().message().find("no CUDA device"), std::string::npos) << e.status();
  std::printf("%s\n", e.status().ToString().c_str());
}

}  // namespace
}  // namespace pmpd::inference
