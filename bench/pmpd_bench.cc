// pmpd-bench --mode kernel: any-precision GEMV time (the automatic kernel choice, and each kernel
// side by side), GB/s and fraction of the measured HBM
// bandwidth per shape and precision, next to cuBLAS fp16 on the same shape (the faster of
// cublasGemmEx's default and the best cuBLASLt algorithm, each timed). Weights are rotated
// through copies totalling > 2x the L2 so every run reads from memory, not cache.
// pmpd-bench --mode e2e: batch-1 greedy decode tokens/s of the CUDA engine on a Llama-2-7B-shaped
// model with random weights (fp16, any-precision 2..4 bits at 4, 3, 2 and a 4 -> 3 -> 2 schedule),
// next to the bandwidth-bound rate: bytes read per token / measured copy bandwidth. The prompt
// (--context random tokens) is prefilled first, then --new-tokens are generated: token 0 comes from
// the prefill, tokens 1.. from single-token decode steps at positions context, context + 1, ...
// Compare with bench/hf_generate_7b_shape.py on the same device. With --batch B > 1, B sequences
// (each its own random prompt of --context tokens) decode together through DecodeBatch: the rate is
// tokens of all sequences per second, the bound counts the weights once and every sequence's K/V.
// pmpd-bench --mode label: switch-point labelling samples/s on the same random 7B-shaped model
// (any-precision 2..4, pairs 4->3 and 3->2, reference at 4 bits, --samples random prompts of
// --context tokens, --new-tokens per run, candidate steps 0, n/3, 2n/3): the sequential path
// (LabelPairSequential: every branch its own generation, as pmpd-gen-data --batch 1) against
// LabelOnSlots on --batch slots (all prompts' runs as shared batched steps), on one engine, with
// how many labels and branch outputs agree.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/cli_common.h"
#include "data_gen/gen_data_job.h"
#include "data_gen/switch_labeler.h"
#include "inference/cuda_engine.h"
#include "kernels/anyprec_gemv.cuh"
#include "kernels/check.h"
#include "kernels/cuda_check.cuh"
#include "kernels/dense_f16_gemv.cuh"
#include "models/tokenizer.h"
#include "scheduler_runtime/scheduled_generation.h"

ABSL_FLAG(std::string, mode, "kernel",
          "kernel: per-matrix GEMV benchmark; e2e: decode tokens/s of the CUDA engine on a "
          "Llama-2-7B shape; label: switch-point labelling samples/s, sequential vs slots.");
ABSL_FLAG(std::string, shapes, "4096x4096,12288x4096,22016x4096,11008x4096,4096x11008",
          "Comma-separated NxK shapes (N = out features).");
ABSL_FLAG(std::string, bits, "2,3,4,5,6,7,8", "Precisions to time.");
ABSL_FLAG(int, tokens, 1, "Tokens per GEMV (1..8).");
ABSL_FLAG(int, iters, 50, "Timed launches per repeat (the median of 5 repeats is reported).");
ABSL_FLAG(std::string, json_out, "", "Also write the rows as JSON to this file.");
ABSL_FLAG(int, context, 512,
          "e2e: prompt tokens prefilled before decoding (decoding starts at this position).");
ABSL_FLAG(int, new_tokens, 128,
          "e2e: tokens generated per run (token 0 from the prefill, the rest decode steps).");
ABSL_FLAG(int, repeats, 3, "e2e: runs per configuration (the median decode rate is reported).");
ABSL_FLAG(int, batch, 1,
          "e2e: sequences decoded together (1..8; CudaEngineOptions::max_batch, DecodeBatch); "
          "label: the engine's slots (2..8).");
ABSL_FLAG(bool, kv_fp16, false,
          "e2e: the KV cache in fp16 (CudaEngineOptions::kv_cache_fp16; the bound counts 2 bytes "
          "per K/V element).");
ABSL_FLAG(int, layers, 32, "e2e: decoder layers of the 7B shape (fewer for a quick smoke run).");
ABSL_FLAG(bool, graphs, true, "e2e: run decode steps as CUDA graphs (false: kernel by kernel).");
ABSL_FLAG(bool, fp16_prefill, false,
          "e2e: any-precision prefill on fp16 tensor cores (CudaEngineOptions::fp16_prefill) "
          "instead of fp32 SGEMM.");
ABSL_FLAG(int, samples, 4, "label: prompts labelled by each path.");
ABSL_FLAG(std::string, tokenizer, "",
          "label: tokenizer directory for Rouge-L (default: $PMPD_SHARED_DIR, else ../shared, "
          "/models/llama2-tokenizer; the 7B shape's 32000 ids).");
ABSL_FLAG(std::string, gemv, "auto",
          "e2e and label: the any-precision GEMV for several rows: auto, code-word (v7, whose rows "
          "equal single-row steps bit for bit) or tensor-core (CudaEngineOptions::gemv).");
ABSL_FLAG(bool, overlap, true,
          "e2e: launch the any-precision GEMVs as programmatic dependent launches "
          "(CudaEngineOptions::overlap_launches).");

namespace {

#define CUBLAS_CHECK(expr)                                                           \
  do {                                                                               \
    cublasStatus_t s_ = (expr);                                                      \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                               \
      std::fprintf(stderr, "%s:%d: cuBLAS error %d\n", __FILE__, __LINE__, int(s_)); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

#define CUBLASLT_CHECK(expr) CUBLAS_CHECK(expr)

// Median over 5 repeats of the mean time (us) of `iters` launches of fn(i).
double TimeUs(const std::function<void(int)>& fn, int iters) {
  cudaEvent_t a, b;
  PMPD_CUDA_CHECK(cudaEventCreate(&a));
  PMPD_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 20; ++i) fn(i);  // warm-up (cuBLAS picks its kernel on the first calls)
  PMPD_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> t;
  for (int r = 0; r < 5; ++r) {
    PMPD_CUDA_CHECK(cudaEventRecord(a));
    for (int i = 0; i < iters; ++i) fn(r * iters + i);
    PMPD_CUDA_CHECK(cudaEventRecord(b));
    PMPD_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    PMPD_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(1000.0 * ms / iters);
  }
  std::sort(t.begin(), t.end());
  PMPD_CUDA_CHECK(cudaEventDestroy(a));
  PMPD_CUDA_CHECK(cudaEventDestroy(b));
  return t[2];
}

// Device-to-device copy bandwidth (bytes read + written per second), 1 GiB buffers.
double MeasureBandwidthGBs() {
  const size_t bytes = size_t{1} << 30;
  void *src, *dst;
  PMPD_CUDA_CHECK(cudaMalloc(&src, bytes));
  PMPD_CUDA_CHECK(cudaMalloc(&dst, bytes));
  PMPD_CUDA_CHECK(cudaMemset(src, 1, bytes));
  const double us = TimeUs(
      [&](int) { PMPD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice)); }, 5);
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * bytes / (us * 1e-6) / 1e9;
}

void FillRandom(void* dev, size_t bytes, uint32_t seed, bool halfs) {
  std::vector<uint16_t> h(bytes / 2);
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 0.02f);
  for (auto& v : h) {
    if (halfs) {
      const __half x = __float2half(g(rng));
      std::memcpy(&v, &x, 2);
    } else {
      v = static_cast<uint16_t>(rng());
    }
  }
  PMPD_CUDA_CHECK(cudaMemcpy(dev, h.data(), bytes, cudaMemcpyHostToDevice));
}

// The fp16 baseline at its best: y[M, N] = x[M, K] W[N, K]^T in fp16 (fp32 accumulation), the
// cuBLASLt algorithms its heuristic offers for this shape (up to 16, with a 64 MiB workspace so
// split-K variants are among them) each timed on the rotated weights, the fastest kept. Plain
// cublasGemmEx with CUBLAS_GEMM_DEFAULT (the baseline this bench used to report) picks one without
// timing and measured 23 us on 4096x4096 on the H200 where PyTorch's F.linear took 12.5.
struct LtResult {
  double us = 0;
  int algorithms = 0;  // offered by the heuristic and run successfully
};
LtResult BestCublasLt(const __half* W, int wcopies, size_t welems, const __half* x, __half* y,
                      int N, int K, int M, int iters) {
  cublasLtHandle_t lt;
  CUBLASLT_CHECK(cublasLtCreate(&lt));
  cublasLtMatmulDesc_t op;
  CUBLASLT_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  CUBLASLT_CHECK(
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
  CUBLASLT_CHECK(
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
  // Column-major views: A = W as K x N (ld K), used transposed; B = x as K x M; C = y as N x M.
  cublasLtMatrixLayout_t a, b, c;
  CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_16F, K, N, K));
  CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_16F, K, M, K));
  CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&c, CUDA_R_16F, N, M, N));
  size_t workspace_bytes = size_t{64} << 20;
  void* workspace = nullptr;
  PMPD_CUDA_CHECK(cudaMalloc(&workspace, workspace_bytes));
  cublasLtMatmulPreference_t pref;
  CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes, sizeof(workspace_bytes)));
  cublasLtMatmulHeuristicResult_t results[16];
  int returned = 0;
  CUBLASLT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, a, b, c, c, pref, 16, results, &returned));
  const float one = 1.f, zero = 0.f;
  LtResult best;
  for (int r = 0; r < returned; ++r) {
    // An algorithm that fails to launch is skipped (the heuristic may offer one this shape
    // rejects).
    if (cublasLtMatmul(lt, op, &one, W, a, x, b, &zero, y, c, y, c, &results[r].algo, workspace,
                       workspace_bytes, nullptr) != CUBLAS_STATUS_SUCCESS) {
      continue;
    }
    const double us = TimeUs(
        [&](int i) {
          CUBLASLT_CHECK(cublasLtMatmul(lt, op, &one, W + (i % wcopies) * welems, a, x, b, &zero, y,
                                        c, y, c, &results[r].algo, workspace, workspace_bytes,
                                        nullptr));
        },
        iters);
    ++best.algorithms;
    if (best.us == 0 || us < best.us) best.us = us;
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(a);
  cublasLtMatrixLayoutDestroy(b);
  cublasLtMatrixLayoutDestroy(c);
  cublasLtMatmulDescDestroy(op);
  cublasLtDestroy(lt);
  cudaFree(workspace);
  return best;
}

// --- e2e ---

pmpd::models::LlamaConfig Llama2_7BShape(int layers) {
  pmpd::models::LlamaConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 32;
  c.head_dim = 128;
  c.vocab_size = 32000;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  return c;
}

struct E2eRow {
  std::string model, schedule;
  double avg_bits = 0, prefill_ms = 0, tok_s = 0, bytes_per_token = 0, bound_tok_s = 0;
};

// Greedy runs of `engine` with precision bits[k] for the pass producing token k (bits[0]: prefill;
// all 0 for the fp16 model). Median decode rate over the repeats.
// One prompt per sequence (prompts.size() = the batch; more than one: DecodeBatch over all).
E2eRow TimeSchedule(pmpd::inference::CudaEngine& engine,
                    const std::vector<std::vector<int>>& prompts, const std::vector<int>& bits,
                    double bw_gbs) {
  using Clock = std::chrono::steady_clock;
  const int n = static_cast<int>(bits.size());
  const int batch = static_cast<int>(prompts.size());
  std::vector<int> slots(batch);
  for (int s = 0; s < batch; ++s) slots[s] = s;
  std::vector<double> rates, prefill;
  // Batches: one untimed run first, which captures the decode graph of every precision used.
  for (int r = batch > 1 ? -1 : 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
    if (bits[0] != 0) PMPD_CHECK(engine.SetPrecision(bits[0]).ok());
    std::vector<int> toks(batch, 0), next(batch, 0);
    const auto t0 = Clock::now();
    for (int s = 0; s < batch; ++s) {
      PMPD_CHECK(engine.SelectSequence(s).ok());
      engine.Reset();
      PMPD_CHECK(engine.Prefill(prompts[s], nullptr, &toks[s]).ok());
    }
    const auto t1 = Clock::now();
    for (int k = 1; k < n; ++k) {
      if (bits[k] != engine.precision()) PMPD_CHECK(engine.SetPrecision(bits[k]).ok());
      if (batch == 1) {
        PMPD_CHECK(engine.DecodeStep(toks[0], nullptr, &toks[0]).ok());
      } else {
        PMPD_CHECK(engine.DecodeBatch(slots, toks, nullptr, &next).ok());
        toks.swap(next);
      }
    }
    const auto t2 = Clock::now();
    if (r < 0) continue;
    prefill.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    rates.push_back(static_cast<double>(batch) * (n - 1) /
                    std::chrono::duration<double>(t2 - t1).count());
  }
  std::sort(rates.begin(), rates.end());
  std::sort(prefill.begin(), prefill.end());
  E2eRow row;
  row.prefill_ms = prefill[prefill.size() / 2];
  row.tok_s = rates[rates.size() / 2];
  // Step k reads the weights at bits[k] once and every sequence's context + k positions.
  double bytes = 0, sum_bits = 0;
  for (int k = 1; k < n; ++k) {
    std::vector<int> lens;
    for (const auto& p : prompts) lens.push_back(static_cast<int>(p.size()) + k);
    bytes += static_cast<double>(engine.DecodeBatchBytes(bits[k], lens));
    sum_bits += bits[k];
  }
  row.bytes_per_token = bytes / (n - 1) / batch;
  row.avg_bits = sum_bits / (n - 1);
  row.bound_tok_s = bw_gbs * 1e9 / row.bytes_per_token;
  return row;
}

// The e2e flags, checked before any GPU work.
absl::Status CheckE2eFlags() {
  const int ctx = absl::GetFlag(FLAGS_context), n = absl::GetFlag(FLAGS_new_tokens);
  const int batch = absl::GetFlag(FLAGS_batch);
  if (ctx < 1 || n < 2 || absl::GetFlag(FLAGS_repeats) < 1 || absl::GetFlag(FLAGS_layers) < 1 ||
      batch < 1 || batch > 8) {
    return absl::InvalidArgumentError(
        "--context >= 1, --new-tokens >= 2, --repeats >= 1, --layers >= 1 and --batch in 1..8");
  }
  const int positions = Llama2_7BShape(1).max_position_embeddings;
  if (ctx + n > positions) {
    return absl::InvalidArgumentError(absl::StrCat("--context + --new-tokens = ", ctx + n,
                                                   " exceeds the 7B shape's ", positions,
                                                   " positions (max_position_embeddings)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<pmpd::inference::GemvKernel> GemvFlag() {
  const std::string g = absl::GetFlag(FLAGS_gemv);
  if (g == "auto") return pmpd::inference::GemvKernel::kAuto;
  if (g == "code-word") return pmpd::inference::GemvKernel::kCodeWord;
  if (g == "tensor-core") return pmpd::inference::GemvKernel::kTensorCore;
  return absl::InvalidArgumentError(
      absl::StrCat("--gemv must be auto, code-word or tensor-core, got \"", g, "\""));
}

// Labelling throughput, sequential against slots, on one random 7B-shaped engine.
int RunLabel(const char* device_name) {
  using namespace pmpd;
  const int ctx = absl::GetFlag(FLAGS_context), n = absl::GetFlag(FLAGS_new_tokens);
  const int batch = absl::GetFlag(FLAGS_batch), samples = absl::GetFlag(FLAGS_samples);
  if (batch < 2 || samples < 1) {
    return cli::Fail("pmpd-bench", absl::InvalidArgumentError(
                                       "--mode label needs --batch in 2..8 and --samples >= 1"));
  }
  std::string tok_dir = absl::GetFlag(FLAGS_tokenizer);
  if (tok_dir.empty()) {
    const char* shared = std::getenv("PMPD_SHARED_DIR");
    tok_dir = std::string(shared != nullptr ? shared : "../shared") + "/models/llama2-tokenizer";
  }
  auto tok = models::Tokenizer::Load(tok_dir);
  if (!tok.ok()) return cli::Fail("pmpd-bench", tok.status());
  const models::LlamaConfig config = Llama2_7BShape(absl::GetFlag(FLAGS_layers));
  inference::CudaEngineOptions options;
  options.max_context = ctx + n;
  options.fp16_lm_head = true;
  options.max_batch = batch;
  options.kv_cache_fp16 = absl::GetFlag(FLAGS_kv_fp16);
  options.gemv = *GemvFlag();
  auto e = inference::CudaEngine::CreateRandom(config, 2, 4, 2, options);
  if (!e.ok()) return cli::Fail("pmpd-bench", e.status());
  inference::Engine& engine = **e;
  std::mt19937 rng(17);
  std::vector<data_gen::SlotLabelRequest> requests(samples);
  for (auto& r : requests) {
    r.prompt.resize(ctx);
    for (int& t : r.prompt) t = 3 + static_cast<int>(rng() % (config.vocab_size - 3));
  }
  data_gen::SlotLabelOptions so;
  so.precisions = {4, 3, 2};
  so.candidate_steps = data_gen::DefaultCandidateSteps(n);
  so.max_new_tokens = n;
  so.reference_precision = 4;
  std::printf(
      "label: Llama-2-7B shape (%d layers), random any-precision 2..4 weights, %d prompts of %d "
      "random tokens, %d new tokens, pairs 4->3 and 3->2, candidate steps %s, reference at 4 "
      "bits; KV cache %s, GEMV %s; slots: %d\n",
      config.num_hidden_layers, samples, ctx, n, absl::StrJoin(so.candidate_steps, ",").c_str(),
      options.kv_cache_fp16 ? "fp16" : "fp32", absl::GetFlag(FLAGS_gemv).c_str(), batch);
  std::fflush(stdout);
  // Sequential, as pmpd-gen-data --batch 1 on CUDA: the reference generation, then per pair the
  // all-high run and one generation per candidate.
  std::vector<data_gen::SlotLabelResult> seq(samples);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < samples; ++i) {
    auto ref = scheduler::GreedyGeneration(engine, requests[i].prompt, n, 4);
    if (!ref.ok()) return cli::Fail("pmpd-bench", ref.status());
    seq[i].reference_ids = ref->new_ids;
    const std::string ref_text = data_gen::DecodeWithoutEos(**tok, ref->new_ids);
    for (int p = 0; p + 1 < 3; ++p) {
      auto label =
          data_gen::LabelPairSequential(engine, **tok, requests[i].prompt, ref_text, so.Pair(p));
      if (!label.ok()) return cli::Fail("pmpd-bench", label.status());
      seq[i].pairs.push_back(std::move(*label));
    }
  }
  const double t_seq = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto t1 = std::chrono::steady_clock::now();
  auto slots = data_gen::LabelOnSlots(engine, **tok, requests, so);
  if (!slots.ok()) return cli::Fail("pmpd-bench", slots.status());
  const double t_slots =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  int labels = 0, labels_same = 0, outputs = 0, outputs_same = 0, refs_same = 0;
  for (int i = 0; i < samples; ++i) {
    refs_same += seq[i].reference_ids == (*slots)[i].reference_ids;
    for (int p = 0; p < 2; ++p) {
      const data_gen::PairLabel& a = seq[i].pairs[p];
      const data_gen::PairLabel& b = (*slots)[i].pairs[p];
      ++labels;
      labels_same += a.label == b.label;
      ++outputs;
      outputs_same += a.high_ids == b.high_ids;
      for (size_t c = 0; c < a.branch_ids.size(); ++c) {
        ++outputs;
        outputs_same += a.branch_ids[c] == b.branch_ids[c];
      }
    }
  }
  std::printf(
      "\n| path | seconds | samples/s | speedup |\n|---|---|---|---|\n"
      "| sequential (one generation per branch) | %.1f | %.3f | 1.00x |\n"
      "| slots (%d, LabelOnSlots) | %.1f | %.3f | %.2fx |\n"
      "agreement: labels %d/%d, outputs (all-high and branches) %d/%d, references %d/%d\n",
      t_seq, samples / t_seq, batch, t_slots, samples / t_slots, t_seq / t_slots, labels_same,
      labels, outputs_same, outputs, refs_same, samples);
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_json_out)) << nlohmann::json{
        {"device", device_name},
        {"context", ctx},
        {"new_tokens", n},
        {"layers", config.num_hidden_layers},
        {"samples", samples},
        {"slots", batch},
        {"kv_cache", options.kv_cache_fp16 ? "float16" : "float32"},
        {"gemv", absl::GetFlag(FLAGS_gemv)},
        {"candidate_steps", so.candidate_steps},
        {"sequential_s", t_seq},
        {"slots_s", t_slots},
        {"labels", labels},
        {"labels_same", labels_same},
        {"outputs", outputs},
        {"outputs_same", outputs_same},
        {"references_same", refs_same}}.dump(1);
  }
  return 0;
}

int RunE2e(double bw_gbs, const char* device_name) {
  using pmpd::inference::CudaEngine;
  const int ctx = absl::GetFlag(FLAGS_context), n = absl::GetFlag(FLAGS_new_tokens);
  const int batch = absl::GetFlag(FLAGS_batch);
  const pmpd::models::LlamaConfig config = Llama2_7BShape(absl::GetFlag(FLAGS_layers));
  pmpd::inference::CudaEngineOptions options;
  options.max_context = ctx + n;
  options.fp16_lm_head = true;  // as the fp16 baseline (and Hugging Face) holds it
  options.use_graphs = absl::GetFlag(FLAGS_graphs);
  options.overlap_launches = absl::GetFlag(FLAGS_overlap);
  options.fp16_prefill = absl::GetFlag(FLAGS_fp16_prefill);
  options.max_batch = batch;
  options.kv_cache_fp16 = absl::GetFlag(FLAGS_kv_fp16);
  options.gemv = *GemvFlag();
  std::mt19937 rng(11);
  std::vector<std::vector<int>> prompts(batch, std::vector<int>(ctx));
  for (auto& prompt : prompts) {
    for (int& t : prompt) t = 3 + static_cast<int>(rng() % (config.vocab_size - 3));
  }
  std::printf(
      "e2e: Llama-2-7B shape (hidden 4096, %d layers, FFN 11008, vocab 32000, 32 heads / 32 KV "
      "heads), random "
      "weights; prefill %d tokens, then %d generated (decode steps at positions %d..%d); KV cache "
      "%s, "
      "lm_head fp16; CUDA graphs %s, overlapped GEMV launches %s, any-precision prefill in %s; "
      "median of %d runs; %d %s decoded together\n",
      config.num_hidden_layers, ctx, n, ctx, ctx + n - 2,
      options.kv_cache_fp16 ? "float16" : "float32", options.use_graphs ? "on" : "off",
      options.overlap_launches ? "on" : "off", options.fp16_prefill ? "fp16" : "fp32",
      absl::GetFlag(FLAGS_repeats), batch, batch == 1 ? "sequence" : "sequences");
  std::vector<E2eRow> rows;
  {
    auto e = CudaEngine::CreateRandom(config, 0, 0, 1, options);
    if (!e.ok()) return pmpd::cli::Fail("pmpd-bench", e.status());
    std::printf("fp16 model: %.2f GB on the GPU\n", (*e)->device_bytes() / 1e9);
    E2eRow r = TimeSchedule(**e, prompts, std::vector<int>(n, 0), bw_gbs);
    r.model = "fp16 (DenseF16Gemv)";
    r.schedule = "-";
    r.avg_bits = 16;
    rows.push_back(r);
  }
  {
    auto e = CudaEngine::CreateRandom(config, 2, 4, 2, options);
    if (!e.ok()) return pmpd::cli::Fail("pmpd-bench", e.status());
    std::printf("any-precision 2..4-bit model: %.2f GB on the GPU\n", (*e)->device_bytes() / 1e9);
    for (int b : {4, 3, 2}) {
      E2eRow r = TimeSchedule(**e, prompts, std::vector<int>(n, b), bw_gbs);
      r.model = "any-precision 2..4";
      r.schedule = absl::StrCat(b, " bits");
      rows.push_back(r);
    }
    // 4 -> 3 -> 2, switching at 1/3 and 2/3 of the generated tokens (token 0 from the 4-bit
    // prefill).
    std::vector<int> bits(n);
    for (int k = 0; k < n; ++k) bits[k] = 3 * k < n ? 4 : 3 * k < 2 * n ? 3 : 2;
    E2eRow r = TimeSchedule(**e, prompts, bits, bw_gbs);
    r.model = "any-precision 2..4";
    r.schedule = absl::StrCat("4->3->2 at ", (n + 2) / 3, ",", (2 * n + 2) / 3);
    rows.push_back(r);
  }
  std::printf(
      "\n| model | precision | avg bits | prefill ms | decode tok/s | ms/token | MB read/token | "
      "bandwidth-bound tok/s | %% of bound |\n|---|---|---|---|---|---|---|---|---|\n");
  nlohmann::json out = nlohmann::json::array();
  for (const E2eRow& r : rows) {
    std::printf("| %s | %s | %.2f | %.1f | %.1f | %.2f | %.0f | %.1f | %.1f |\n", r.model.c_str(),
                r.schedule.c_str(), r.avg_bits, r.prefill_ms, r.tok_s, 1000.0 / r.tok_s,
                r.bytes_per_token / 1e6, r.bound_tok_s, 100 * r.tok_s / r.bound_tok_s);
    out.push_back({{"model", r.model},
                   {"precision", r.schedule},
                   {"avg_bits", r.avg_bits},
                   {"prefill_ms", r.prefill_ms},
                   {"decode_tokens_per_s", r.tok_s},
                   {"bytes_per_token", r.bytes_per_token},
                   {"bound_tokens_per_s", r.bound_tok_s}});
  }
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_json_out)) << nlohmann::json{
        {"device", device_name},
        {"bandwidth_gbs", bw_gbs},
        {"context", ctx},
        {"new_tokens", n},
        {"layers", config.num_hidden_layers},
        {"batch", batch},
        {"kv_cache", options.kv_cache_fp16 ? "float16" : "float32"},
        {"graphs", options.use_graphs},
        {"rows", out}}.dump(1);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  pmpd::cli::InitUsage(
      "GPU benchmarks. --mode kernel: any-precision GEMV vs cuBLAS fp16, with bandwidth fractions. "
      "--mode e2e: "
      "decode tokens/s of the CUDA engine on a Llama-2-7B shape (fp16; 4, 3, 2 bits; 4->3->2) vs "
      "the bandwidth bound. --mode label: labelling samples/s, sequential vs sequence slots.");
  pmpd::cli::ParseFlags(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "kernel" && mode != "e2e" && mode != "label") {
    return pmpd::cli::Fail(
        "pmpd-bench",
        absl::InvalidArgumentError("--mode must be kernel, e2e or label, got \"" + mode + "\""));
  }
  if (mode == "e2e" || mode == "label") {
    if (auto st = CheckE2eFlags(); !st.ok()) return pmpd::cli::Fail("pmpd-bench", st);
    if (auto g = GemvFlag(); !g.ok()) return pmpd::cli::Fail("pmpd-bench", g.status());
  }
  int dev = 0, count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || count == 0) {
    return pmpd::cli::Fail(
        "pmpd-bench", absl::FailedPreconditionError(absl::StrCat(
                          "no CUDA device",
                          e != cudaSuccess ? absl::StrCat(" (", cudaGetErrorString(e), ")") : "",
                          ": the benchmarks need an NVIDIA GPU")));
  }
  cudaDeviceProp prop;
  PMPD_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  const double bw = MeasureBandwidthGBs();
  if (mode == "label") {
    std::printf("device %s\n", prop.name);
    return RunLabel(prop.name);
  }
  if (mode == "e2e") {
    std::printf("device %s, measured copy bandwidth %.0f GB/s\n", prop.name, bw);
    return RunE2e(bw, prop.name);
  }
  const size_t rotate_bytes =
      std::max<size_t>(4 * static_cast<size_t>(prop.l2CacheSize), size_t{200} << 20);
  std::printf(
      "device %s, L2 %d MB, measured copy bandwidth %.0f GB/s; weights rotated over >= %zu MB\n",
      prop.name, prop.l2CacheSize >> 20, bw, rotate_bytes >> 20);
  const int M = absl::GetFlag(FLAGS_tokens), iters = absl::GetFlag(FLAGS_iters);
  std::vector<int> bits;
  for (auto b : absl::StrSplit(absl::GetFlag(FLAGS_bits), ',')) {
    int v;
    if (absl::SimpleAtoi(b, &v)) bits.push_back(v);
  }
  cublasHandle_t handle;
  CUBLAS_CHECK(cublasCreate(&handle));
  nlohmann::json rows = nlohmann::json::array();
  std::printf(
      "| N x K | tokens | bits | us | GB/s | %% of BW | code-word / tensor-core us | generic "
      "kernel "
      "us | cuBLAS fp16 us (GemmEx default / cuBLASLt best) | cuBLAS %% of BW | speedup vs cuBLAS "
      "| our fp16 GEMV us (%% of BW) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (auto shape : absl::StrSplit(absl::GetFlag(FLAGS_shapes), ',')) {
    std::vector<std::string> nk = absl::StrSplit(shape, 'x');
    int N = 0, K = 0;
    if (nk.size() != 2 || !absl::SimpleAtoi(nk[0], &N) || !absl::SimpleAtoi(nk[1], &K)) continue;
    const int kw = (K + 31) / 32;
    // cuBLAS fp16 baseline, rotated copies.
    const size_t wbytes = static_cast<size_t>(N) * K * 2;
    const int wcopies = static_cast<int>(std::max<size_t>(2, rotate_bytes / wbytes + 1));
    __half *W, *xh, *yh;
    PMPD_CUDA_CHECK(cudaMalloc(&W, wbytes * wcopies));
    FillRandom(W, wbytes * wcopies, 1, true);
    PMPD_CUDA_CHECK(cudaMalloc(&xh, static_cast<size_t>(K) * M * 2));
    FillRandom(xh, static_cast<size_t>(K) * M * 2, 2, true);
    PMPD_CUDA_CHECK(cudaMalloc(&yh, static_cast<size_t>(N) * M * 2));
    const float one = 1.f, zero = 0.f;
    const double cublas_us = TimeUs(
        [&](int i) {
          CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one,
                                    W + (i % wcopies) * (wbytes / 2), CUDA_R_16F, K, xh, CUDA_R_16F,
                                    K, &zero, yh, CUDA_R_16F, N, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
        },
        iters);
    const LtResult lt = BestCublasLt(W, wcopies, wbytes / 2, xh, yh, N, K, M, iters);
    // The baseline is the faster of the two: cuBLASLt's best algorithm, or GemmEx's default.
    const double fp16_us = lt.algorithms > 0 ? std::min(lt.us, cublas_us) : cublas_us;
    const double cublas_bytes = wbytes + 2.0 * M * (K + N);
    // Our fp16 GEMV (the fp16 model's decode products) on the same rotated weights, fp32 x and y.
    float *x32, *y32;
    PMPD_CUDA_CHECK(cudaMalloc(&x32, static_cast<size_t>(K) * M * 4));
    PMPD_CUDA_CHECK(cudaMemset(x32, 0, static_cast<size_t>(K) * M * 4));
    PMPD_CUDA_CHECK(cudaMalloc(&y32, static_cast<size_t>(N) * M * 4));
    const double dense_us = TimeUs(
        [&](int i) {
          pmpd::kernels::DenseF16Gemv(x32, M, W + (i % wcopies) * (wbytes / 2), N, K, y32, nullptr);
        },
        iters);
    cudaFree(x32);
    cudaFree(y32);
    cudaFree(W);
    // Any-precision: planes for P = 8 (the parent) and LUTs of every precision.
    const size_t qbytes = static_cast<size_t>(8) * N * kw * 4;
    const int qcopies = static_cast<int>(std::max<size_t>(2, rotate_bytes / qbytes + 1));
    uint32_t* Q;
    __half* L;
    float *x, *y;
    PMPD_CUDA_CHECK(cudaMalloc(&Q, qbytes * qcopies));
    FillRandom(Q, qbytes * qcopies, 3, false);
    PMPD_CUDA_CHECK(cudaMalloc(&L, static_cast<size_t>(N) * 256 * 2));
    FillRandom(L, static_cast<size_t>(N) * 256 * 2, 4, true);
    PMPD_CUDA_CHECK(cudaMalloc(&x, static_cast<size_t>(K) * M * 4));
    FillRandom(x, static_cast<size_t>(K) * M * 4, 5, true);
    PMPD_CUDA_CHECK(cudaMalloc(&y, static_cast<size_t>(N) * M * 4));
    void* workspace = nullptr;  // the tensor-core kernel's
    const size_t workspace_bytes = pmpd::kernels::AnyprecGemvWorkspaceBytes(M, K);
    PMPD_CUDA_CHECK(cudaMalloc(&workspace, workspace_bytes));
    for (int p : bits) {
      auto time_path = [&](pmpd::kernels::AnyprecGemvPath path) {
        return TimeUs(
            [&](int i) {
              pmpd::kernels::AnyprecGemv(x, M, Q + (i % qcopies) * (qbytes / 4), L, N, K, 8, p, y,
                                         nullptr, path, false, workspace, workspace_bytes);
            },
            iters);
      };
      const double us = time_path(pmpd::kernels::AnyprecGemvPath::kAuto);
      // Side by side: the generic per-weight LUT kernel (the only one for p >= 5), and at p <= 4
      // the code-word and tensor-core kernels the automatic choice picks between.
      using pmpd::kernels::AnyprecGemvPath;
      const double generic_us = p <= 4 ? time_path(AnyprecGemvPath::kGeneric) : us;
      const double codeword_us = p <= 4 ? time_path(AnyprecGemvPath::kCodeWord) : NAN;
      const double tensor_us = p <= 4 ? time_path(AnyprecGemvPath::kTensorCore) : NAN;
      // Bytes the kernel must move: p of the 8 planes, the p-bit LUTs, x and y.
      const double bytes =
          static_cast<double>(p) * N * kw * 4 + 2.0 * N * (1 << p) + 4.0 * M * (K + N);
      const double gbs = bytes / (us * 1e-6) / 1e9;
      std::printf(
          "| %dx%d | %d | %d | %.1f | %.0f | %.1f | %.1f / %.1f | %.1f | %.1f / %.1f | %.1f | "
          "%.2fx | %.1f (%.1f %%) |\n",
          N, K, M, p, us, gbs, 100 * gbs / bw, codeword_us, tensor_us, generic_us, cublas_us, lt.us,
          100 * cublas_bytes / (fp16_us * 1e-6) / 1e9 / bw, fp16_us / us, dense_us,
          100 * cublas_bytes / (dense_us * 1e-6) / 1e9 / bw);
      rows.push_back({{"n", N},
                      {"k", K},
                      {"tokens", M},
                      {"bits", p},
                      {"us", us},
                      {"gbs", gbs},
                      {"bw_fraction", gbs / bw},
                      {"generic_us", generic_us},
                      {"codeword_us", p <= 4 ? nlohmann::json(codeword_us) : nlohmann::json()},
                      {"tensor_core_us", p <= 4 ? nlohmann::json(tensor_us) : nlohmann::json()},
                      {"cublas_gemmex_default_us", cublas_us},
                      {"cublaslt_best_us", lt.us},
                      {"cublaslt_algorithms", lt.algorithms},
                      {"cublas_fp16_us", fp16_us},
                      {"speedup", fp16_us / us},
                      {"dense_f16_gemv_us", dense_us}});
    }
    cudaFree(workspace);
    cudaFree(Q);
    cudaFree(L);
    cudaFree(x);
    cudaFree(y);
    cudaFree(xh);
    cudaFree(yh);
  }
  cublasDestroy(handle);
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_json_out))
        << nlohmann::json{{"device", prop.name}, {"bandwidth_gbs", bw}, {"rows", rows}}.dump(1);
  }
  return 0;
}
