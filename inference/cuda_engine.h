// The GPU Llama engine for decoding up to 8 sequences at once: our kernels (kernels/) for the
// decode step's projections (AnyprecGemv straight from the bitplanes, DenseF16Gemv for fp16
// weights) and its per-token operations; cuBLAS for prefill passes of more than 8 tokens
// (dequantize once, then one GEMM), the prefill attention, and the fp32 lm_head. The decode step
// runs as one CUDA graph per precision and list of sequence slots. Header free of CUDA and LibTorch
// (pimpl), so CPU-only code can include it; the library pmpd_cuda_engine exists only when CMake
// finds CUDA.
//
// Numbers: activations, norms, embeddings, rotary tables, attention and the KV cache are float32
// (the cache optionally fp16, CudaEngineOptions::kv_cache_fp16);
// any-precision weights are the checkpoint's fp16 LUT values (exact), dense projections fp16 with
// fp32 accumulation, the lm_head fp32 (or fp16, see CudaEngineOptions::fp16_lm_head).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "inference/engine.h"
#include "models/llama_config.h"

namespace pmpd::inference {

// The any-precision decode GEMV at p <= 4 (kernels/anyprec_gemv.cuh): kAuto picks by token count
// and shape; the others force one kernel (comparisons, tests).
enum class GemvKernel { kAuto, kCodeWord, kTensorCore };

struct CudaEngineOptions {
  int device = 0;  // CUDA device ordinal
  // Capture the decode step in one CUDA graph per precision and list of slots (positions and cache
  // lengths are read from device memory, so one graph serves every step). Off: the same kernels
  // launched one by one.
  bool use_graphs = true;
  // Positions the KV cache of each sequence slot holds (preallocated at load: 2 x layers x kv_dim x
  // 4 bytes (2 with kv_cache_fp16) per position and slot, plus with fp16 one layer's K/V in fp32
  // for the prefill; the prefill scores grow with it, see prefill_chunk), capped at
  // max_position_embeddings; 0 = max_position_embeddings. A cache that does not fit in GPU memory
  // fails the load with the allocation's error.
  int max_context = 4096;
  // lm_head in fp16 (half its bytes per token; logits then carry fp16 rounding of its weights).
  bool fp16_lm_head = false;
  // Launch the decode GEMVs (any-precision p <= 4, and fp16) as programmatic dependent launches:
  // the any-precision ones read their planes and LUTs while the kernel before them finishes, all of
  // them are scheduled before it ends (kernels/pdl.cuh). Same results either way.
  bool overlap_launches = true;
  // Prompt tokens per prefill pass. Passes of more than 8 tokens dequantize each any-precision
  // matrix to fp32 once per pass and multiply with cuBLAS SGEMM (fp32, the CPU engine's numerics);
  // attention is two strided-batched SGEMMs around a causal softmax. Costs GPU memory: activations
  // of this many rows, heads x rows x max_context scores, and one fp32 copy of the largest
  // projection.
  int prefill_chunk = 256;
  // Prefill passes of more than 8 tokens in fp16 on tensor cores (W_p dequantized to fp16, which is
  // exact, activations rounded to fp16, fp32 accumulation) instead of fp32 SGEMM: ~5-10x faster
  // prefill, logits within fp16 activation rounding of the CPU engine instead of fp32 rounding.
  bool fp16_prefill = false;
  // Sequence slots (1..8), each with its own KV cache of max_context positions (so the cache's
  // memory grows with it), decoded together by DecodeBatch with one read of the weights per step.
  int max_batch = 1;
  // The KV cache in fp16 instead of fp32: half its memory and of the bytes attention reads per
  // step (what limits batched and long-context decoding). K and V are rounded to fp16 when
  // stored; attention math stays fp32. LastLayerKv then views fp16 (KvDtype::kFloat16).
  bool kv_cache_fp16 = false;
  GemvKernel gemv = GemvKernel::kAuto;
};

// One model on one GPU plus the KV caches of max_batch sequences, an Engine. Not thread-safe. Every
// call is synchronous (returns when the GPU is done); nothing allocates on the GPU after
// Load/CreateRandom but the instantiation of a CUDA graph for each new list of slots in DecodeBatch
// (at most 64).
class CudaEngine : public Engine {
 public:
  // Loads a model directory as LlamaModel::Load does (config.json, safetensors or shards or
  // pytorch_model.bin, any-precision checkpoints included) and uploads it: bitplanes and the LUTs
  // of every precision seed..parent once; plain checkpoints' projections as fp16. Errors: no CUDA
  // device, out of GPU memory (naming the bytes asked), bad files (as the CPU loader reports them).
  static absl::StatusOr<std::unique_ptr<CudaEngine>> Load(const std::string& model_dir,
                                                          const CudaEngineOptions& options = {});
  // A model of `config`'s shape with random weights generated on the GPU (for benchmarks: no file,
  // no CPU quantization). seed_bits = parent_bits = 0: fp16 projections; otherwise any-precision
  // seed..parent bits (2 <= seed <= parent <= 8) with uniform random codes and per-row LUTs on a
  // nested grid (each LUT entry is the mean of its two children, as incremental upscaling makes
  // them).
  static absl::StatusOr<std::unique_ptr<CudaEngine>> CreateRandom(
      const models::LlamaConfig& config, int seed_bits, int parent_bits, uint64_t seed,
      const CudaEngineOptions& options = {});
  ~CudaEngine() override;
  // CUDA devices the runtime sees (0 when there is no driver or no GPU).
  static int DeviceCount();
  CudaEngine(const CudaEngine&) = delete;
  CudaEngine& operator=(const CudaEngine&) = delete;

  // Engine (engine.h), with what is particular to this engine:
  const models::LlamaConfig& config() const override;
  Device device() const override { return Device::kCuda; }
  // Positions the KV cache holds (see CudaEngineOptions::max_context).
  int max_context() const override;
  int cache_len() const override;
  void Reset() override;
  // Plain checkpoints run fp16 projections: precision 0.
  int precision() const override;
  int min_precision() const override;
  int max_precision() const override;
  // Selects the LUTs and plane count (and the CUDA graph) of the next steps: no GPU work.
  absl::Status SetPrecision(int bits) override;

  // Passes of up to prefill_chunk tokens (more than 8: dequantize + SGEMM; up to 8: AnyprecGemv).
  // Cost: about ceil(n / prefill_chunk) reads of the weights and writes of their fp32 copies.
  absl::Status Prefill(absl::Span<const int> tokens, std::vector<float>* last_logits,
                       int* argmax) override;
  // One graph launch; the argmax is computed on the GPU, so greedy decoding copies back 4 bytes
  // (plus the logits when `logits` is not null).
  absl::Status DecodeStep(int token, std::vector<float>* logits, int* argmax) override;

  int max_batch() const override;
  int sequence() const override;
  absl::Status SelectSequence(int slot) override;
  // Every projection as one GEMV of slots.size() tokens (weights read once), rotary + cache append
  // and attention per row over its slot; one graph per precision and slot list (captured right
  // after its first, eager step; replayed from the second). Greedy: copies back 4 bytes per row.
  absl::Status DecodeBatch(absl::Span<const int> slots, absl::Span<const int> tokens,
                           std::vector<float>* logits, std::vector<int>* argmax) override;
  // One 2-D device copy per layer and K/V (kv_heads rows of length * head_dim elements).
  absl::Status CopySequence(int from, int to, int length) override;

  // The last layer's cache where it lies on the GPU (no copy): float32 (or float16), K and V each
  // [kv_heads, max_context, head_dim]. Consumers read it through the view's strides and dtype.
  KvView LastLayerKv() const override;
  // Host copies, each [kv_heads, cache_len, head_dim] row-major (an fp16 cache converted,
  // exactly). Cost: 2 * kv_dim * cache_len elements over PCIe.
  void CopyLastLayerKv(std::vector<float>* k, std::vector<float>* v) const override;

  // Bytes one decode step must read from GPU memory at `bits` (0 for plain models) with `len`
  // positions attended: projection weights (p of the P planes and the p-bit LUTs, or fp16),
  // lm_head, norms, one embedding row and the K/V of `len` positions in every layer. Activations
  // excluded. The bandwidth-bound time of a step is this divided by the copy bandwidth.
  int64_t DecodeBytes(int bits, int len) const;
  // The same for one DecodeBatch step of sequences attending over lens[i] positions: the weights
  // once, the K/V of every sequence.
  int64_t DecodeBatchBytes(int bits, absl::Span<const int> lens) const;
  // GPU memory this engine holds (weights, KV cache, buffers).
  int64_t device_bytes() const override;

 private:
  struct Impl;
  explicit CudaEngine(std::unique_ptr<Impl> impl);
  absl::Status CheckTokens(absl::Span<const int> tokens) const;
  // One step of decode rows (checked by the caller); argmax, when not null, gets slots.size() ids.
  absl::Status DecodeRows(absl::Span<const int> slots, absl::Span<const int> tokens,
                          std::vector<float>* logits, int* argmax);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pmpd::inference
