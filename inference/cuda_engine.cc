// CudaEngine: host side (loading, buffers, the step loop, CUDA graphs). The forward pass follows
// LlamaModel (inference/llama_model.cc) op for op:
//
//   x = embed[ids]
//   per layer:  h = rmsnorm(x) -> q, k, v = h W^T -> rotary(q, k) -> K/V cache at the positions
//               -> attention over positions [0, pos] (GQA: head h reads kv head h / (heads /
//               kv_heads))
//               -> x += attn W_o^T -> h = rmsnorm(x) -> x += (silu(h W_gate^T) * h W_up^T) W_down^T
//   logits = rmsnorm(x_last) W_lm^T, argmax on the GPU
//
// Decode reads tokens, positions and attended lengths from a small device array (`step`), so the
// kernel sequence of one step is position-free: one CUDA graph per precision and list of sequence
// slots serves every step (captured at load for slot 0; for other lists right after their first,
// eager step).
//
// Batched decoding: sequence slot s has its own K/V cache (layer l's K of slot s at
// k_cache + s * slot_stride); a step of n rows runs every projection once as an n-token GEMV
// (the weights are read once), then the rotary + cache append and the attention per row over its
// own slot and length.
#include "inference/cuda_engine.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/anyprec_gemv.cuh"
#include "kernels/argmax.cuh"
#include "kernels/causal_softmax.cuh"
#include "kernels/check.h"
#include "kernels/cuda_check.cuh"
#include "kernels/decode_attention.cuh"
#include "kernels/dense_f16_gemv.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/half.h"
#include "kernels/random_fill.cuh"
#include "kernels/ref/anyprec_ref.h"
#include "kernels/rmsnorm.cuh"
#include "kernels/rotary_kv.cuh"
#include "models/anyprec_checkpoint.h"
#include "models/safetensors.h"

#define PMPD_CUBLAS_CHECK(expr)                                                            \
  do {                                                                                     \
    cublasStatus_t pmpd_st_ = (expr);                                                      \
    if (pmpd_st_ != CUBLAS_STATUS_SUCCESS) {                                               \
      std::fprintf(stderr, "%s:%d: cuBLAS error %d\n", __FILE__, __LINE__, int(pmpd_st_)); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

namespace pmpd::inference {
namespace {

// Tokens the any-precision GEMV takes; longer prefill passes go through dequantize + SGEMM.
constexpr int kGemvTokens = kernels::kAnyprecGemvMaxTokens;
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

absl::Status CudaError(cudaError_t e, absl::string_view what) {
  cudaGetLastError();  // clear a non-sticky error so that later calls do not report it again
  return absl::InternalError(
      absl::StrCat(what, ": CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")"));
}

// A projection y = x W^T: any-precision planes + LUTs, fp16 dense, or fp32 dense (lm_head only).
struct DeviceLinear {
  int n = 0, k = 0;
  const uint32_t* qweight = nullptr;   // [P, n, ceil(k / 32)]
  std::array<const __half*, 9> lut{};  // lut[b]: [n, 2^b] for b = S..P
  int parent_bits = 0;
  const __half* w16 = nullptr;  // [n, k]
  const float* w32 = nullptr;   // [n, k]

  // Bytes one product at `bits` reads (batch 1).
  int64_t Bytes(int bits) const {
    if (qweight != nullptr) {
      return static_cast<int64_t>(bits) * n * ((k + 31) / 32) * 4 +
             static_cast<int64_t>(n) * (int64_t{1} << bits) * 2;
    }
    return static_cast<int64_t>(n) * k * (w32 != nullptr ? 4 : 2);
  }
};

struct DeviceLayer {
  const float* input_norm = nullptr;
  const float* post_norm = nullptr;
  DeviceLinear q, k, v, o, gate, up, down;
  // Decode-step fusions (rows of q|k|v and of gate|up concatenated): one GEMV launch over 12288 /
  // 22016 rows runs faster than three / two over 4096 / 11008 (kernels/NOTES.md). Prefill chunks
  // keep the separate products. Costs a second copy of those weights.
  DeviceLinear qkv, gate_up;
  // [max_batch][kv_heads, max_ctx, head_dim] of float, or __half with kv_cache_fp16.
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  // In the order of models::LlamaProjections.
  std::array<DeviceLinear*, 7> Projections() { return {&q, &k, &v, &o, &gate, &up, &down}; }
  std::array<const DeviceLinear*, 7> Projections() const {
    return {&q, &k, &v, &o, &gate, &up, &down};
  }
};

// Rotary inverse frequencies, float32 as LlamaModel's InvFrequencies computes them with ATen
// (default, linear and llama3 scaling; transformers' rope init functions).
std::vector<float> InvFrequencies(const models::LlamaConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<float> inv(half);
  const auto& s = c.rope_scaling;
  for (int i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    float f = 1.0f / std::pow(static_cast<float>(c.rope_theta), e);
    if (s.type == models::RopeScalingType::kLinear) {
      f = f / static_cast<float>(s.factor);
    } else if (s.type == models::RopeScalingType::kLlama3) {
      const float factor = static_cast<float>(s.factor);
      const float lo = static_cast<float>(s.low_freq_factor),
                  hi = static_cast<float>(s.high_freq_factor);
      const float old_len = static_cast<float>(s.original_max_position_embeddings);
      const float low_wavelen = old_len / lo, high_wavelen = old_len / hi;
      const float wavelen = static_cast<float>(2 * M_PI) / f;
      const float scaled = wavelen > low_wavelen ? f / factor : f;
      const float smooth = (old_len / wavelen - lo) / (hi - lo);
      const float smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      f = medium ? smoothed : scaled;
    }
    inv[i] = f;
  }
  return inv;
}

}  // namespace

struct CudaEngine::Impl {
  models::LlamaConfig config;
  CudaEngineOptions options;
  int max_ctx = 0;
  int seed_bits = 0, parent_bits = 0, precision = 0;  // all 0 for plain models
  int max_batch = 1;
  std::vector<int> cache_lens;  // per sequence slot
  int selected = 0;             // the slot of the single-sequence calls
  int& cache_len() { return cache_lens[selected]; }
  int cache_len() const { return cache_lens[selected]; }
  bool kv16 = false;       // fp16 KV cache (CudaEngineOptions::kv_cache_fp16)
  size_t kv_elem = 4;      // bytes per cache element
  size_t slot_stride = 0;  // elements between two slots' caches of one layer
  void* KCache(const DeviceLayer& L, int slot) const {
    return static_cast<char*>(L.k_cache) + slot * slot_stride * kv_elem;
  }
  void* VCache(const DeviceLayer& L, int slot) const {
    return static_cast<char*>(L.v_cache) + slot * slot_stride * kv_elem;
  }
  // f(k, v) with a slot's caches as typed pointers (float* or __half*).
  template <typename F>
  void WithCache(const DeviceLayer& L, int slot, F&& f) {
    if (kv16) {
      f(static_cast<__half*>(KCache(L, slot)), static_cast<__half*>(VCache(L, slot)));
    } else {
      f(static_cast<float*>(KCache(L, slot)), static_cast<float*>(VCache(L, slot)));
    }
  }

  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  std::vector<void*> allocations;
  int64_t allocated = 0;
  // Decode rows (one per sequence of a step): `step` on the device and its pinned staging, each
  // kRows tokens, then kRows positions, then kRows attended lengths (position + 1); the argmax of
  // every row comes back to host_pinned + kArgmaxAt.
  static constexpr int kRows = kGemvTokens;
  static constexpr int kArgmaxAt = 3 * kRows;
  int32_t* host_pinned = nullptr;  // 4 * kRows

  const float* embed = nullptr;       // [vocab, hidden]
  const float* final_norm = nullptr;  // [hidden]
  DeviceLinear lm_head;
  const float* rope_cos = nullptr;  // [max_ctx, head_dim]
  const float* rope_sin = nullptr;
  std::vector<DeviceLayer> layers;

  int chunk = 0;  // rows of the activation buffers: max(prefill_chunk, kGemvTokens)
  // Activations, [chunk, width] each; x16 holds fp16 inputs of dense products.
  float *x = nullptr, *h = nullptr, *q = nullptr, *kbuf = nullptr, *vbuf = nullptr, *attn = nullptr,
        *proj = nullptr, *gate = nullptr, *up = nullptr, *logits = nullptr;
  __half* x16 = nullptr;
  float* attn_ws = nullptr;  // split-K decode attention partials (DecodeAttentionWorkspaceFloats)
  float* scores = nullptr;   // prefill attention: [heads, chunk, max_ctx]
  float* w32 = nullptr;      // prefill: one projection dequantized to fp32 (any-precision models)
  float* kv32 = nullptr;     // prefill over an fp16 cache: one slot's K then V as fp32
  void* gemv_ws = nullptr;   // the tensor-core GEMV's workspace (kRows tokens, the widest K)
  size_t gemv_ws_bytes = 0;
  int32_t* prompt_ids = nullptr;  // [max_ctx]: the token ids of one Prefill
  int32_t* prompt_pos = nullptr;  // [max_ctx]: their positions
  int32_t* step = nullptr;        // decode: see kRows
  int32_t* argmax = nullptr;      // [kRows]
  // Decode graphs by (precision, slots of the rows); precision 0: plain model.
  std::map<std::pair<int, std::vector<int>>, cudaGraphExec_t> graphs;
  static constexpr size_t kMaxGraphs = 64;  // beyond: further slot sets run eagerly

  ~Impl();
  // Device, stream, cuBLAS, activation buffers, KV cache, rotary tables; layers sized, no weights.
  absl::Status Init(const models::LlamaConfig& c, const CudaEngineOptions& o);
  absl::StatusOr<void*> Alloc(size_t bytes, absl::string_view what);
  template <typename T>
  absl::StatusOr<T*> AllocArray(size_t count, absl::string_view what) {
    auto p = Alloc(count * sizeof(T), what);
    if (!p.ok()) return p.status();
    return static_cast<T*>(*p);
  }
  template <typename T>
  absl::StatusOr<T*> Upload(const void* host, size_t count, absl::string_view what) {
    auto p = AllocArray<T>(count, what);
    if (!p.ok()) return p.status();
    const cudaError_t e = cudaMemcpy(*p, host, count * sizeof(T), cudaMemcpyHostToDevice);
    if (e != cudaSuccess) return CudaError(e, absl::StrCat("uploading ", what));
    return *p;
  }
  absl::StatusOr<const __half*> UploadF16(const std::vector<float>& host, absl::string_view what);

  void Linear(const DeviceLinear& lin, const float* in, int m, float* out, int bits);
  // Causal attention of n prompt tokens at positions first_pos.. over one slot's cache (which
  // already holds their K/V): per head S = Q K^T / sqrt(hd), CausalSoftmaxRows, O = P V; SGEMMs
  // (an fp16 cache is read as fp32 through kv32 first).
  void PrefillAttention(const float* k_cache, const float* v_cache, int n, int first_pos);
  void PrefillAttention(const __half* k_cache, const __half* v_cache, int n, int first_pos);
  // After the weights are in place: fused decode products, the prefill scratch, the graphs.
  absl::Status Finish();
  // Runs n tokens (ids, positions on the device) through every layer, appending their K/V.
  // Prefill: n tokens of the sequence in slots[0], token t attending over first_pos + t + 1
  // positions; with `head`, the last token's logits and argmax land in `logits` / `argmax`.
  // Decode: row i is one token of the sequence in slots[i] (n <= kRows), attending over the
  // length at step + 2 * kRows + i read on the device; with `head`, every row's logits and argmax.
  void Forward(int n, const int32_t* ids, const int32_t* positions, int first_pos, bool decode,
               bool head, int bits, absl::Span<const int> slots);
  // One eager warm-up and one captured graph per precision, for slot 0.
  absl::Status CaptureGraphs();
  // Captures the decode step of `slots` at `bits` (the kernels must have run once eagerly).
  absl::Status CaptureGraph(int bits, const std::vector<int>& slots);
  // Builds every layer's qkv and gate_up from its parts (device-to-device copies).
  absl::Status FuseLayers();
  absl::Status Fuse(const std::vector<const DeviceLinear*>& parts, DeviceLinear* out,
                    absl::string_view what);
  std::vector<int> Precisions() const {
    std::vector<int> p;
    if (parent_bits == 0) return {0};
    for (int b = seed_bits; b <= parent_bits; ++b) p.push_back(b);
    return p;
  }
};

CudaEngine::Impl::~Impl() {
  cudaSetDevice(options.device);
  if (stream != nullptr) cudaStreamSynchronize(stream);
  for (auto& [key, g] : graphs) {
    if (g != nullptr) cudaGraphExecDestroy(g);
  }
  for (void* p : allocations) cudaFree(p);
  if (host_pinned != nullptr) cudaFreeHost(host_pinned);
  if (cublas != nullptr) cublasDestroy(cublas);
  if (stream != nullptr) cudaStreamDestroy(stream);
}

absl::StatusOr<void*> CudaEngine::Impl::Alloc(size_t bytes, absl::string_view what) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    return absl::ResourceExhaustedError(absl::StrCat(
        "out of GPU memory: cudaMalloc of ", bytes, " bytes for ", what, " failed (",
        cudaGetErrorString(e), "); ", free_bytes, " of ", total_bytes, " bytes free on device ",
        options.device, ", ", allocated, " held by this engine"));
  }
  allocations.push_back(p);
  allocated += static_cast<int64_t>(bytes);
  return p;
}

absl::StatusOr<const __half*> CudaEngine::Impl::UploadF16(const std::vector<float>& host,
                                                          absl::string_view what) {
  std::vector<uint16_t> bits(host.size());
  for (size_t i = 0; i < host.size(); ++i) bits[i] = kernels::F32ToF16(host[i]);
  auto p = Upload<__half>(bits.data(), bits.size(), what);
  if (!p.ok()) return p.status();
  return static_cast<const __half*>(*p);
}

absl::Status CudaEngine::Impl::Init(const models::LlamaConfig& c, const CudaEngineOptions& o) {
  config = c;
  options = o;
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    return absl::FailedPreconditionError(absl::StrCat(
        "no CUDA device",
        e != cudaSuccess ? absl::StrCat(" (", cudaGetErrorString(e), ")") : std::string(),
        ": the CUDA engine needs an NVIDIA GPU; the CPU engine (LlamaModel) runs anywhere"));
  }
  if (o.device < 0 || o.device >= count) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA device ", o.device,
                                                   " does not exist: this machine has ", count,
                                                   " (0..", count - 1, ")"));
  }
  if (cudaError_t se = cudaSetDevice(o.device); se != cudaSuccess)
    return CudaError(se, "cudaSetDevice");
  if (c.hidden_size <= 0 || c.intermediate_size <= 0 || c.num_hidden_layers <= 0 ||
      c.num_attention_heads <= 0 || c.num_key_value_heads <= 0 || c.vocab_size <= 0 ||
      c.head_dim <= 0 || c.max_position_embeddings <= 0) {
    return absl::InvalidArgumentError("CUDA engine: the config has a size <= 0");
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0 || c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CUDA engine: need heads (", c.num_attention_heads, ") a multiple of kv heads (",
        c.num_key_value_heads, ") and an even head_dim (", c.head_dim, ")"));
  }
  max_ctx = o.max_context > 0 ? std::min(o.max_context, c.max_position_embeddings)
                              : c.max_position_embeddings;
  if (max_ctx > kernels::kDecodeAttentionMaxLen) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CUDA engine: a context of ", max_ctx, " positions exceeds the decode attention's grid (",
        kernels::kDecodeAttentionMaxLen, "); set CudaEngineOptions::max_context lower"));
  }
  if (cudaError_t se = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
      se != cudaSuccess) {
    return CudaError(se, "cudaStreamCreate");
  }
  if (cublasStatus_t bs = cublasCreate(&cublas); bs != CUBLAS_STATUS_SUCCESS) {
    cublas = nullptr;
    return absl::InternalError(
        absl::StrCat("cublasCreate failed with status ", static_cast<int>(bs)));
  }
  PMPD_CUBLAS_CHECK(cublasSetStream(cublas, stream));
  // A fixed workspace: cuBLAS allocates nothing while a graph is captured or replayed.
  auto ws = Alloc(kCublasWorkspaceBytes, "the cuBLAS workspace");
  if (!ws.ok()) return ws.status();
  PMPD_CUBLAS_CHECK(cublasSetWorkspace(cublas, *ws, kCublasWorkspaceBytes));
  if (cudaError_t he = cudaMallocHost(&host_pinned, 4 * kRows * sizeof(int32_t));
      he != cudaSuccess) {
    host_pinned = nullptr;
    return CudaError(he, "cudaMallocHost of the step arguments");
  }
  if (o.max_batch < 1 || o.max_batch > kRows) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA engine: max_batch must be in [1, ", kRows, "], got ", o.max_batch));
  }
  max_batch = o.max_batch;
  cache_lens.assign(max_batch, 0);

  if (o.prefill_chunk < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA engine: prefill_chunk must be >= 1, got ", o.prefill_chunk));
  }
  chunk = std::max(o.prefill_chunk, kGemvTokens);
  const size_t H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim(),
               V = c.vocab_size;
  absl::Status st;
  // `chunk` rows of `width` floats, at least `at_least` floats: decode rows write fused q|k|v
  // ([kRows, q_dim + 2 kv_dim]) into q's buffer and gate|up ([kRows, 2 I]) into gate's.
  auto buffer = [&](float** p, size_t width, const char* what, size_t at_least = 0) {
    if (!st.ok()) return;
    auto r = AllocArray<float>(std::max(static_cast<size_t>(chunk) * width, at_least), what);
    if (r.ok())
      *p = *r;
    else
      st = r.status();
  };
  buffer(&x, H, "activations");
  buffer(&h, H, "activations");
  buffer(&q, Q, "activations", kRows * (Q + 2 * KV));
  buffer(&kbuf, KV, "activations");
  buffer(&vbuf, KV, "activations");
  buffer(&attn, Q, "activations");
  buffer(&proj, H, "activations");
  buffer(&gate, I, "activations", kRows * 2 * I);
  buffer(&up, I, "activations");
  if (!st.ok()) return st;
  auto lg = AllocArray<float>(kRows * V, "logits");
  if (!lg.ok()) return lg.status();
  logits = *lg;
  auto sc = AllocArray<float>(static_cast<size_t>(c.num_attention_heads) * chunk * max_ctx,
                              "prefill attention scores");
  if (!sc.ok()) return sc.status();
  scores = *sc;
  auto aws = AllocArray<float>(
      kernels::DecodeAttentionWorkspaceFloats(c.num_attention_heads, c.head_dim, max_ctx),
      "attention workspace");
  if (!aws.ok()) return aws.status();
  attn_ws = *aws;
  auto xh = AllocArray<__half>(chunk * std::max({H, I, Q}), "fp16 activations");
  if (!xh.ok()) return xh.status();
  x16 = *xh;
  auto ints =
      AllocArray<int32_t>(2 * static_cast<size_t>(max_ctx) + 4 * kRows, "token ids and positions");
  if (!ints.ok()) return ints.status();
  prompt_ids = *ints;
  prompt_pos = prompt_ids + max_ctx;
  step = prompt_pos + max_ctx;
  argmax = step + 3 * kRows;
  for (int i = 0; i < kRows; ++i) {  // valid steps for the warm-up: token 0 at position 0
    host_pinned[i] = 0, host_pinned[kRows + i] = 0, host_pinned[2 * kRows + i] = 1;
  }
  if (cudaError_t ce =
          cudaMemcpy(step, host_pinned, 3 * kRows * sizeof(int32_t), cudaMemcpyHostToDevice);
      ce != cudaSuccess) {
    return CudaError(ce, "initialising the step arguments");
  }

  // KV cache: every layer's K and V for every slot, preallocated for max_ctx positions.
  kv16 = o.kv_cache_fp16;
  kv_elem = kv16 ? 2 : 4;
  slot_stride = static_cast<size_t>(c.num_key_value_heads) * max_ctx * c.head_dim;
  const size_t per = slot_stride * max_batch * kv_elem;  // bytes of one layer's K
  const size_t kv_bytes = 2 * per * c.num_hidden_layers;
  auto kv = AllocArray<char>(
      kv_bytes,
      absl::StrCat("the KV cache (", max_batch, max_batch == 1 ? " sequence" : " sequences", " of ",
                   max_ctx, " positions, ", kv16 ? "float16" : "float32", ")"));
  if (!kv.ok()) return kv.status();
  if (cudaError_t me = cudaMemset(*kv, 0, kv_bytes); me != cudaSuccess)
    return CudaError(me, "clearing the KV cache");
  layers.resize(c.num_hidden_layers);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    layers[l].k_cache = *kv + (2 * l) * per;
    layers[l].v_cache = *kv + (2 * l + 1) * per;
  }
  gemv_ws_bytes = kernels::AnyprecGemvWorkspaceBytes(
      kRows, std::max({c.hidden_size, c.intermediate_size, c.q_dim()}));
  auto gws = Alloc(gemv_ws_bytes, "the tensor-core GEMV's workspace");
  if (!gws.ok()) return gws.status();
  gemv_ws = *gws;
  if (kv16) {
    auto k32 = AllocArray<float>(2 * slot_stride, "the prefill's fp32 copy of one layer's K/V");
    if (!k32.ok()) return k32.status();
    kv32 = *k32;
  }

  // Rotary tables [max_ctx, head_dim]: cos/sin of cat(freqs, freqs), freqs = position * inv_freq.
  const std::vector<float> inv = InvFrequencies(c);
  const int hd = c.head_dim, half = hd / 2;
  std::vector<float> cs(static_cast<size_t>(max_ctx) * hd), sn(cs.size());
  for (int p = 0; p < max_ctx; ++p) {
    for (int i = 0; i < half; ++i) {
      const float f = static_cast<float>(p) * inv[i];
      const size_t at = static_cast<size_t>(p) * hd + i;
      cs[at] = cs[at + half] = std::cos(f);
      sn[at] = sn[at + half] = std::sin(f);
    }
  }
  auto dc = Upload<float>(cs.data(), cs.size(), "rotary cos table");
  if (!dc.ok()) return dc.status();
  auto ds = Upload<float>(sn.data(), sn.size(), "rotary sin table");
  if (!ds.ok()) return ds.status();
  rope_cos = *dc;
  rope_sin = *ds;
  return absl::OkStatus();
}

void CudaEngine::Impl::Linear(const DeviceLinear& lin, const float* in, int m, float* out,
                              int bits) {
  if (m <= kGemvTokens && lin.qweight != nullptr) {  // decode: our GEMVs on fp32 activations
    kernels::AnyprecGemvPath path = kernels::AnyprecGemvPath::kAuto;
    if (options.gemv == GemvKernel::kCodeWord) path = kernels::AnyprecGemvPath::kCodeWord;
    if (options.gemv == GemvKernel::kTensorCore && bits <= 4) {
      path = kernels::AnyprecGemvPath::kTensorCore;
    }
    kernels::AnyprecGemv(in, m, lin.qweight, lin.lut[bits], lin.n, lin.k, lin.parent_bits, bits,
                         out, stream, path, options.overlap_launches, gemv_ws, gemv_ws_bytes);
    return;
  }
  if (m <= kGemvTokens && lin.w16 != nullptr) {
    kernels::DenseF16Gemv(in, m, lin.w16, lin.n, lin.k, out, stream, options.overlap_launches);
    return;
  }
  // Row-major W [n, k] is column-major [k, n]: out^T [n, m] = W x^T, column-major with ld n.
  const float one = 1.f, zero = 0.f;
  const float* w = lin.w32;
  const __half* w16 = lin.w16;
  if (lin.qweight != nullptr && options.fp16_prefill) {  // a prefill pass: W_p once in fp16 (exact)
    __half* scratch = reinterpret_cast<__half*>(w32);
    kernels::AnyprecDequant(lin.qweight, lin.lut[bits], lin.n, lin.k, lin.parent_bits, bits,
                            scratch, stream);
    w16 = scratch;
  } else if (lin.qweight != nullptr) {  // a prefill pass: W_p once in fp32 (exact), then one SGEMM
    kernels::AnyprecDequantF32(lin.qweight, lin.lut[bits], lin.n, lin.k, lin.parent_bits, bits, w32,
                               stream);
    w = w32;
  }
  if (w != nullptr) {
    PMPD_CUBLAS_CHECK(cublasSgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, lin.n, m, lin.k, &one, w, lin.k,
                                  in, lin.k, &zero, out, lin.n));
    return;
  }
  kernels::ConvertF32ToF16(in, x16, static_cast<int64_t>(m) * lin.k, stream);
  PMPD_CUBLAS_CHECK(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, lin.n, m, lin.k, &one, w16,
                                 CUDA_R_16F, lin.k, x16, CUDA_R_16F, lin.k, &zero, out, CUDA_R_32F,
                                 lin.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaEngine::Impl::Forward(int n, const int32_t* ids, const int32_t* positions, int first_pos,
                               bool decode, bool head, int bits, absl::Span<const int> slots) {
  PMPD_CHECK(decode ? static_cast<int>(slots.size()) == n && n <= kRows : slots.size() == 1,
             "Forward: one slot per decode row (at most kRows), one for a prefill");
  const models::LlamaConfig& c = config;
  const int H = c.hidden_size, I = c.intermediate_size, nh = c.num_attention_heads,
            kvh = c.num_key_value_heads, hd = c.head_dim, qd = c.q_dim();
  const float eps = static_cast<float>(c.rms_norm_eps);
  kernels::EmbeddingLookup(embed, ids, n, H, x, stream);
  // Residual adds ride along with the following norm (AddRmsNormF32): the input norm of layer 0
  // runs alone, the last layer's add runs alone before the final norm.
  kernels::RmsNormF32(x, layers.front().input_norm, h, n, H, eps, stream);
  for (size_t l = 0; l < layers.size(); ++l) {
    const DeviceLayer& L = layers[l];
    if (decode) {
      // Decode rows: the fused product writes rows of q | k | v into q's buffer (sized for it).
      const bool fused = L.qkv.n > 0;
      const int row = fused ? qd + 2 * c.kv_dim() : qd;  // stride of q's rows
      if (fused) {
        Linear(L.qkv, h, n, q, bits);
      } else {
        Linear(L.q, h, n, q, bits);
        Linear(L.k, h, n, kbuf, bits);
        Linear(L.v, h, n, vbuf, bits);
      }
      for (int i = 0; i < n; ++i) {  // each row over its own sequence's cache and length
        float* qi = q + static_cast<size_t>(i) * row;
        const float* ki = fused ? qi + qd : kbuf + static_cast<size_t>(i) * c.kv_dim();
        const float* vi = fused ? qi + qd + c.kv_dim() : vbuf + static_cast<size_t>(i) * c.kv_dim();
        // Rotary of q and k and the cache append in one launch, then the attention.
        WithCache(L, slots[i], [&](auto* kc, auto* vc) {
          kernels::RotaryKvAppend(qi, ki, vi, positions + i, rope_cos, rope_sin, nh, kvh, hd,
                                  max_ctx, kc, vc, stream);
          kernels::DecodeAttention(qi, kc, vc, nh, kvh, hd, max_ctx, step + 2 * kRows + i, attn_ws,
                                   attn + static_cast<size_t>(i) * qd, stream);
        });
      }
    } else {
      Linear(L.q, h, n, q, bits);
      Linear(L.k, h, n, kbuf, bits);
      Linear(L.v, h, n, vbuf, bits);
      kernels::RotaryInPlace(q, positions, rope_cos, rope_sin, n, nh, hd, stream);
      kernels::RotaryInPlace(kbuf, positions, rope_cos, rope_sin, n, kvh, hd, stream);
      WithCache(L, slots[0], [&](auto* kc, auto* vc) {
        kernels::KvCacheWrite(kbuf, positions, n, kvh, hd, max_ctx, kc, stream);
        kernels::KvCacheWrite(vbuf, positions, n, kvh, hd, max_ctx, vc, stream);
        // Causal: token t sees the cache up to its own position.
        PrefillAttention(kc, vc, n, first_pos);
      });
    }
    Linear(L.o, attn, n, proj, bits);
    kernels::AddRmsNormF32(x, proj, L.post_norm, h, n, H, eps, stream);
    if (decode && L.gate_up.n > 0) {  // rows of gate | up into gate's buffer (sized for it)
      Linear(L.gate_up, h, n, gate, bits);
      // Row i's SwiGLU lands in row i of [n, I]: it overwrites only halves of rows < i, already
      // consumed (launches run in order).
      for (int i = 0; i < n; ++i) {
        float* gi = gate + static_cast<size_t>(2 * i) * I;
        kernels::SwiGlu(gi, gi + I, gate + static_cast<size_t>(i) * I, I, stream);
      }
    } else {
      Linear(L.gate, h, n, gate, bits);
      Linear(L.up, h, n, up, bits);
      kernels::SwiGlu(gate, up, gate, static_cast<int64_t>(n) * I, stream);
    }
    Linear(L.down, gate, n, proj, bits);
    if (l + 1 < layers.size()) {
      kernels::AddRmsNormF32(x, proj, layers[l + 1].input_norm, h, n, H, eps, stream);
    } else {
      kernels::AddInPlace(x, proj, static_cast<int64_t>(n) * H, stream);
    }
  }
  if (!head) return;
  const int rows = decode ? n : 1;  // prefill: the last token only
  kernels::RmsNormF32(x + static_cast<size_t>(n - rows) * H, final_norm, h, rows, H, eps, stream);
  Linear(lm_head, h, rows, logits, bits);
  kernels::ArgmaxRows(logits, rows, c.vocab_size, argmax, stream);
}

void CudaEngine::Impl::PrefillAttention(const __half* k_cache, const __half* v_cache, int n,
                                        int first_pos) {
  const models::LlamaConfig& c = config;
  const int len = first_pos + n;
  kernels::KvCacheToF32(k_cache, c.num_key_value_heads, len, c.head_dim, max_ctx, kv32, stream);
  kernels::KvCacheToF32(v_cache, c.num_key_value_heads, len, c.head_dim, max_ctx,
                        kv32 + slot_stride, stream);
  PrefillAttention(kv32, kv32 + slot_stride, n, first_pos);
}

void CudaEngine::Impl::PrefillAttention(const float* k_cache, const float* v_cache, int n,
                                        int first_pos) {
  const models::LlamaConfig& c = config;
  const int nh = c.num_attention_heads, kvh = c.num_key_value_heads, hd = c.head_dim;
  const int group = nh / kvh, len = first_pos + n;
  const float scale = 1.f / std::sqrt(static_cast<float>(hd)), one = 1.f, zero = 0.f;
  // Column-major views. Head h = b * group + g for kv head b. Scores of head h: row-major
  // [n, len] = column-major S^T [len, n] = K_b [len, hd] Q_h^T, with K_b row-major [len, hd]
  // (ld hd) and Q_h rows of stride nh * hd.
  for (int g = 0; g < group; ++g) {
    PMPD_CUBLAS_CHECK(cublasSgemmStridedBatched(
        cublas, CUBLAS_OP_T, CUBLAS_OP_N, len, n, hd, &scale, k_cache, hd,
        static_cast<long long>(max_ctx) * hd, q + static_cast<size_t>(g) * hd, nh * hd,
        static_cast<long long>(group) * hd, &zero, scores + static_cast<size_t>(g) * n * len, len,
        static_cast<long long>(group) * n * len, kvh));
  }
  kernels::CausalSoftmaxRows(scores, nh, n, first_pos, stream);
  // O_h^T [hd, n] (rows of stride nh * hd in attn) = V_b^T [hd, len] P_h^T [len, n].
  for (int g = 0; g < group; ++g) {
    PMPD_CUBLAS_CHECK(cublasSgemmStridedBatched(
        cublas, CUBLAS_OP_N, CUBLAS_OP_N, hd, n, len, &one, v_cache, hd,
        static_cast<long long>(max_ctx) * hd, scores + static_cast<size_t>(g) * n * len, len,
        static_cast<long long>(group) * n * len, &zero, attn + static_cast<size_t>(g) * hd, nh * hd,
        static_cast<long long>(group) * hd, kvh));
  }
}

absl::Status CudaEngine::Impl::Finish() {
  if (auto st = FuseLayers(); !st.ok()) return st;
  if (parent_bits > 0 && chunk > kGemvTokens) {
    int64_t largest = 0;
    for (const DeviceLayer& L : layers) {
      for (const DeviceLinear* lin : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
        if (lin->qweight != nullptr) largest = std::max<int64_t>(largest, int64_t{lin->n} * lin->k);
      }
    }
    auto w = AllocArray<float>(largest, "the prefill's fp32 copy of one projection");
    if (!w.ok()) return w.status();
    w32 = *w;
  }
  if (options.use_graphs) {
    if (auto st = CaptureGraphs(); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status CudaEngine::Impl::Fuse(const std::vector<const DeviceLinear*>& parts,
                                    DeviceLinear* out, absl::string_view what) {
  const DeviceLinear& first = *parts.front();
  int total = 0;
  for (const DeviceLinear* p : parts) {
    const bool same = p->k == first.k && (p->qweight != nullptr) == (first.qweight != nullptr) &&
                      p->parent_bits == first.parent_bits &&
                      (p->w16 != nullptr) == (first.w16 != nullptr) &&
                      (p->w32 != nullptr) == (first.w32 != nullptr);
    if (!same)
      return absl::OkStatus();  // mixed kinds (e.g. a plain layer in a quantized model): no fusion
    total += p->n;
  }
  auto copy = [&](void* dst, const void* src, size_t bytes) -> absl::Status {
    if (cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
        e != cudaSuccess) {
      return CudaError(e, absl::StrCat("fusing ", what));
    }
    return absl::OkStatus();
  };
  DeviceLinear f;
  f.n = total;
  f.k = first.k;
  f.parent_bits = first.parent_bits;
  if (first.qweight != nullptr) {
    // Planes [P, N, kw]: per plane, the parts' rows one after another.
    const size_t kw = (first.k + 31) / 32;
    auto planes = AllocArray<uint32_t>(static_cast<size_t>(first.parent_bits) * total * kw, what);
    if (!planes.ok()) return planes.status();
    for (int b = 0; b < first.parent_bits; ++b) {
      size_t row = 0;
      for (const DeviceLinear* p : parts) {
        if (auto st = copy(*planes + (static_cast<size_t>(b) * total + row) * kw,
                           p->qweight + static_cast<size_t>(b) * p->n * kw, p->n * kw * 4);
            !st.ok()) {
          return st;
        }
        row += p->n;
      }
    }
    f.qweight = *planes;
    for (int bits = 0; bits < static_cast<int>(first.lut.size()); ++bits) {
      if (first.lut[bits] == nullptr) continue;
      auto lut = AllocArray<__half>(static_cast<size_t>(total) << bits, what);
      if (!lut.ok()) return lut.status();
      size_t row = 0;
      for (const DeviceLinear* p : parts) {
        if (auto st =
                copy(*lut + (row << bits), p->lut[bits], (static_cast<size_t>(p->n) << bits) * 2);
            !st.ok()) {
          return st;
        }
        row += p->n;
      }
      f.lut[bits] = *lut;
    }
  } else {
    const size_t elem = first.w32 != nullptr ? 4 : 2;
    auto w = Alloc(static_cast<size_t>(total) * first.k * elem, what);
    if (!w.ok()) return w.status();
    size_t row = 0;
    for (const DeviceLinear* p : parts) {
      const void* src = first.w32 != nullptr ? static_cast<const void*>(p->w32)
                                             : static_cast<const void*>(p->w16);
      if (auto st = copy(static_cast<char*>(*w) + row * first.k * elem, src,
                         static_cast<size_t>(p->n) * first.k * elem);
          !st.ok()) {
        return st;
      }
      row += p->n;
    }
    if (first.w32 != nullptr) {
      f.w32 = static_cast<const float*>(*w);
    } else {
      f.w16 = static_cast<const __half*>(*w);
    }
  }
  *out = f;
  return absl::OkStatus();
}

absl::Status CudaEngine::Impl::FuseLayers() {
  for (DeviceLayer& L : layers) {
    if (auto st = Fuse({&L.q, &L.k, &L.v}, &L.qkv, "the fused q|k|v weights"); !st.ok()) return st;
    if (auto st = Fuse({&L.gate, &L.up}, &L.gate_up, "the fused gate|up weights"); !st.ok())
      return st;
  }
  if (cudaError_t e = cudaStreamSynchronize(stream); e != cudaSuccess)
    return CudaError(e, "fusing weights");
  return absl::OkStatus();
}

absl::Status CudaEngine::Impl::CaptureGraphs() {
  const std::vector<int> slot0 = {0};
  for (int bits : Precisions()) {
    // Eager warm-up first (module loading, cuBLAS heuristics happen outside the capture). It runs
    // the step in `step` (token 0 at position 0 of slot 0): it writes cache position 0, which
    // holds nothing yet.
    Forward(1, step, step + kRows, 0, /*decode=*/true, /*head=*/true, bits, slot0);
    if (cudaError_t e = cudaStreamSynchronize(stream); e != cudaSuccess)
      return CudaError(e, "decode warm-up");
    if (auto st = CaptureGraph(bits, slot0); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status CudaEngine::Impl::CaptureGraph(int bits, const std::vector<int>& slots) {
  cudaGraph_t graph = nullptr;
  if (cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
      e != cudaSuccess) {
    return CudaError(e, "cudaStreamBeginCapture");
  }
  Forward(static_cast<int>(slots.size()), step, step + kRows, 0, /*decode=*/true, /*head=*/true,
          bits, slots);
  if (cudaError_t e = cudaStreamEndCapture(stream, &graph); e != cudaSuccess) {
    return CudaError(e, "cudaStreamEndCapture");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    return CudaError(e, absl::StrCat("cudaGraphInstantiate (decode step at ", bits, " bits, ",
                                     slots.size(), " rows)"));
  }
  graphs[{bits, slots}] = exec;
  return absl::OkStatus();
}

CudaEngine::CudaEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaEngine::~CudaEngine() = default;

const models::LlamaConfig& CudaEngine::config() const { return impl_->config; }
int CudaEngine::max_context() const { return impl_->max_ctx; }
int CudaEngine::cache_len() const { return impl_->cache_len(); }
void CudaEngine::Reset() { impl_->cache_len() = 0; }
int CudaEngine::max_batch() const { return impl_->max_batch; }
int CudaEngine::sequence() const { return impl_->selected; }
absl::Status CudaEngine::SelectSequence(int slot) {
  if (auto st = Engine::SelectSequence(slot); !st.ok()) return st;
  impl_->selected = slot;
  return absl::OkStatus();
}
absl::Status CudaEngine::CopySequence(int from, int to, int length) {
  Impl& m = *impl_;
  const bool valid = from >= 0 && from < m.max_batch;
  if (auto st = CheckCopySequence(*this, from, to, length, valid ? m.cache_lens[from] : 0);
      !st.ok()) {
    return st;
  }
  const models::LlamaConfig& c = m.config;
  const size_t row = static_cast<size_t>(c.head_dim) * m.kv_elem;  // bytes of one position
  PMPD_CUDA_CHECK(cudaSetDevice(m.options.device));
  if (length > 0) {
    for (const DeviceLayer& L : m.layers) {
      PMPD_CUDA_CHECK(cudaMemcpy2DAsync(m.KCache(L, to), m.max_ctx * row, m.KCache(L, from),
                                        m.max_ctx * row, length * row, c.num_key_value_heads,
                                        cudaMemcpyDeviceToDevice, m.stream));
      PMPD_CUDA_CHECK(cudaMemcpy2DAsync(m.VCache(L, to), m.max_ctx * row, m.VCache(L, from),
                                        m.max_ctx * row, length * row, c.num_key_value_heads,
                                        cudaMemcpyDeviceToDevice, m.stream));
    }
    PMPD_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  }
  m.cache_lens[to] = length;
  return absl::OkStatus();
}

int CudaEngine::precision() const { return impl_->precision; }
int CudaEngine::min_precision() const { return impl_->seed_bits; }
int CudaEngine::max_precision() const { return impl_->parent_bits; }
int64_t CudaEngine::device_bytes() const { return impl_->allocated; }

absl::Status CudaEngine::SetPrecision(int bits) {
  const Impl& m = *impl_;
  if (m.parent_bits == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot run at ", bits, " bits: the model is not an any-precision checkpoint"));
  }
  if (bits < m.seed_bits || bits > m.parent_bits) {
    return absl::InvalidArgumentError(absl::StrCat("precision ", bits,
                                                   " is not in the checkpoint, which holds ",
                                                   m.seed_bits, " to ", m.parent_bits, " bits"));
  }
  impl_->precision = bits;
  return absl::OkStatus();
}

absl::Status CudaEngine::CheckTokens(absl::Span<const int> tokens) const {
  const Impl& m = *impl_;
  if (tokens.empty()) return absl::InvalidArgumentError("no tokens");
  const int64_t end = static_cast<int64_t>(m.cache_len()) + static_cast<int64_t>(tokens.size());
  if (end > m.max_ctx) {
    return absl::OutOfRangeError(absl::StrCat(
        "sequence of ", end, " tokens exceeds the CUDA engine's context of ", m.max_ctx,
        " positions (CudaEngineOptions::max_context, at most "
        "max_position_embeddings = ",
        m.config.max_position_embeddings, ")"));
  }
  for (int id : tokens) {
    if (id < 0 || id >= m.config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " outside the vocabulary [0, ", m.config.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CudaEngine::Prefill(absl::Span<const int> tokens, std::vector<float>* last_logits,
                                 int* argmax) {
  if (auto st = CheckTokens(tokens); !st.ok()) return st;
  Impl& m = *impl_;
  PMPD_CUDA_CHECK(cudaSetDevice(m.options.device));
  const int n = static_cast<int>(tokens.size());
  std::vector<int32_t> ids(tokens.begin(), tokens.end()), pos(n);
  for (int i = 0; i < n; ++i) pos[i] = m.cache_len() + i;
  PMPD_CUDA_CHECK(cudaMemcpyAsync(m.prompt_ids, ids.data(), n * sizeof(int32_t),
                                  cudaMemcpyHostToDevice, m.stream));
  PMPD_CUDA_CHECK(cudaMemcpyAsync(m.prompt_pos, pos.data(), n * sizeof(int32_t),
                                  cudaMemcpyHostToDevice, m.stream));
  for (int s = 0; s < n; s += m.chunk) {
    const int cnt = std::min(m.chunk, n - s);
    const int slot[1] = {m.selected};
    m.Forward(cnt, m.prompt_ids + s, m.prompt_pos + s, m.cache_len() + s, /*decode=*/false,
              /*head=*/s + cnt == n, m.precision, slot);
  }
  PMPD_CUDA_CHECK(cudaMemcpyAsync(m.host_pinned + Impl::kArgmaxAt, m.argmax, sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, m.stream));
  if (last_logits != nullptr) {
    last_logits->resize(m.config.vocab_size);
    PMPD_CUDA_CHECK(cudaMemcpyAsync(last_logits->data(), m.logits,
                                    m.config.vocab_size * sizeof(float), cudaMemcpyDeviceToHost,
                                    m.stream));
  }
  PMPD_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  m.cache_len() += n;
  if (argmax != nullptr) *argmax = m.host_pinned[Impl::kArgmaxAt];
  return absl::OkStatus();
}

absl::Status CudaEngine::DecodeStep(int token, std::vector<float>* logits, int* argmax) {
  const int one[1] = {token};
  if (auto st = CheckTokens(one); !st.ok()) return st;
  const int slot[1] = {impl_->selected};
  return DecodeRows(slot, one, logits, argmax);
}

absl::Status CudaEngine::DecodeBatch(absl::Span<const int> slots, absl::Span<const int> tokens,
                                     std::vector<float>* logits, std::vector<int>* argmax) {
  if (auto st = CheckDecodeBatch(*this, slots, tokens); !st.ok()) return st;
  for (int s : slots) {
    if (impl_->cache_lens[s] >= impl_->max_ctx) {
      return absl::OutOfRangeError(absl::StrCat("DecodeBatch: sequence slot ", s, " is full (",
                                                impl_->cache_lens[s], " of ", impl_->max_ctx,
                                                " positions, CudaEngineOptions::max_context)"));
    }
  }
  if (argmax != nullptr) argmax->resize(slots.size());
  return DecodeRows(slots, tokens, logits, argmax != nullptr ? argmax->data() : nullptr);
}

absl::Status CudaEngine::DecodeRows(absl::Span<const int> slots, absl::Span<const int> tokens,
                                    std::vector<float>* logits, int* argmax) {
  Impl& m = *impl_;
  PMPD_CUDA_CHECK(cudaSetDevice(m.options.device));
  const int n = static_cast<int>(slots.size());
  // The previous step synchronized, so the pinned staging words are free to reuse.
  for (int i = 0; i < n; ++i) {
    m.host_pinned[i] = tokens[i];
    m.host_pinned[Impl::kRows + i] = m.cache_lens[slots[i]];
    m.host_pinned[2 * Impl::kRows + i] = m.cache_lens[slots[i]] + 1;
  }
  PMPD_CUDA_CHECK(cudaMemcpyAsync(m.step, m.host_pinned, 3 * Impl::kRows * sizeof(int32_t),
                                  cudaMemcpyHostToDevice, m.stream));
  std::pair<int, std::vector<int>> key(m.precision, std::vector<int>(slots.begin(), slots.end()));
  auto it = m.graphs.find(key);
  if (it != m.graphs.end() && it->second != nullptr) {
    PMPD_CUDA_CHECK(cudaGraphLaunch(it->second, m.stream));
  } else {
    m.Forward(n, m.step, m.step + Impl::kRows, 0, /*decode=*/true, /*head=*/true, m.precision,
              slots);
    // Captured after its first eager run (which loaded every kernel it launches): later steps of
    // the same slots replay it. A capture that fails leaves these slots eager (a null entry).
    if (m.options.use_graphs && it == m.graphs.end() && m.graphs.size() < Impl::kMaxGraphs) {
      PMPD_CUDA_CHECK(cudaStreamSynchronize(m.stream));
      if (!m.CaptureGraph(key.first, key.second).ok()) {
        (void)cudaGetLastError();
        m.graphs[key] = nullptr;
      }
    }
  }
  PMPD_CUDA_CHECK(cudaMemcpyAsync(m.host_pinned + Impl::kArgmaxAt, m.argmax, n * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, m.stream));
  const size_t vocab = m.config.vocab_size;
  if (logits != nullptr) {
    logits->resize(n * vocab);  // no allocation once the caller's vector has the size
    PMPD_CUDA_CHECK(cudaMemcpyAsync(logits->data(), m.logits, n * vocab * sizeof(float),
                                    cudaMemcpyDeviceToHost, m.stream));
  }
  PMPD_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  for (int s : slots) ++m.cache_lens[s];
  if (argmax != nullptr) std::copy_n(m.host_pinned + Impl::kArgmaxAt, n, argmax);
  return absl::OkStatus();
}

KvView CudaEngine::LastLayerKv() const {
  const Impl& m = *impl_;
  KvView view;
  view.device = Device::kCuda;
  view.cuda_device = m.options.device;
  view.dtype = m.kv16 ? KvDtype::kFloat16 : KvDtype::kFloat32;
  view.k = m.KCache(m.layers.back(), m.selected);
  view.v = m.VCache(m.layers.back(), m.selected);
  view.kv_heads = m.config.num_key_value_heads;
  view.length = m.cache_len();
  view.head_dim = m.config.head_dim;
  view.head_stride = static_cast<int64_t>(m.max_ctx) * m.config.head_dim;
  view.position_stride = m.config.head_dim;
  return view;
}

int CudaEngine::DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

void CudaEngine::CopyLastLayerKv(std::vector<float>* k, std::vector<float>* v) const {
  const Impl& m = *impl_;
  const models::LlamaConfig& c = m.config;
  const size_t row = static_cast<size_t>(m.cache_len()) * c.head_dim;  // one head's valid span
  PMPD_CUDA_CHECK(cudaSetDevice(m.options.device));
  std::vector<uint16_t> half;
  for (auto [src, out] :
       {std::pair<const void*, std::vector<float>*>{m.KCache(m.layers.back(), m.selected), k},
        {m.VCache(m.layers.back(), m.selected), v}}) {
    out->resize(row * c.num_key_value_heads);
    if (row == 0) continue;
    void* dst = out->data();
    if (m.kv16) {
      half.resize(out->size());
      dst = half.data();
    }
    PMPD_CUDA_CHECK(cudaMemcpy2DAsync(
        dst, row * m.kv_elem, src, static_cast<size_t>(m.max_ctx) * c.head_dim * m.kv_elem,
        row * m.kv_elem, c.num_key_value_heads, cudaMemcpyDeviceToHost, m.stream));
    PMPD_CUDA_CHECK(cudaStreamSynchronize(m.stream));
    if (m.kv16) {
      for (size_t i = 0; i < half.size(); ++i) (*out)[i] = kernels::F16ToF32(half[i]);
    }
  }
}

int64_t CudaEngine::DecodeBytes(int bits, int len) const {
  const int lens[1] = {len};
  return DecodeBatchBytes(bits, lens);
}

int64_t CudaEngine::DecodeBatchBytes(int bits, absl::Span<const int> lens) const {
  const Impl& m = *impl_;
  const models::LlamaConfig& c = m.config;
  int64_t bytes = 0;
  for (const DeviceLayer& L : m.layers) {
    for (const DeviceLinear* lin : L.Projections()) bytes += lin->Bytes(bits);
  }
  bytes += m.lm_head.Bytes(0);
  bytes += (2 * static_cast<int64_t>(c.num_hidden_layers) + 1) * c.hidden_size * 4;  // norms
  for (int len : lens) {
    bytes += static_cast<int64_t>(c.hidden_size) * 4;  // embedding row
    bytes += 2 * static_cast<int64_t>(c.num_hidden_layers) * c.kv_dim() * len *
             static_cast<int64_t>(m.kv_elem);  // K and V
  }
  return bytes;
}

absl::StatusOr<std::unique_ptr<CudaEngine>> CudaEngine::Load(const std::string& model_dir,
                                                             const CudaEngineOptions& options) {
  auto config = models::LoadLlamaConfig(model_dir);
  if (!config.ok()) return config.status();
  auto info = models::LoadAnyprecInfo(model_dir);
  if (!info.ok()) return info.status();
  auto impl = std::make_unique<Impl>();
  if (auto st = impl->Init(*config, options); !st.ok()) return st;
  const std::optional<models::AnyprecInfo>& ap = *info;
  if (ap) {
    if (ap->seed_bits < kernels::kAnyprecMinBits || ap->parent_bits > kernels::kAnyprecMaxBits) {
      return absl::InvalidArgumentError(absl::StrCat(model_dir, "/config.json: any-precision ",
                                                     ap->seed_bits, "..", ap->parent_bits,
                                                     " bits; the CUDA kernels run 2..8 bits"));
    }
    impl->seed_bits = ap->seed_bits;
    impl->parent_bits = ap->parent_bits;
    impl->precision = ap->parent_bits;
  }
  auto src = models::OpenWeights(model_dir, impl->config);
  if (!src.ok()) return src.status();
  const models::LlamaConfig& c = impl->config;
  Impl& m = *impl;

  // A dense tensor as float32 on the host, its shape checked against the config.
  auto read = [&](const std::string& name, std::vector<int64_t> shape,
                  std::vector<float>* out) -> absl::Status {
    auto t = models::FindWithShape(**src, name, shape);
    if (!t.ok()) return t.status();
    const models::TensorView& v = **t;
    out->resize(v.numel());
    return models::ToFloat32(v, out->data());
  };
  auto upload_f32 = [&](const std::string& name, std::vector<int64_t> shape,
                        const float** dst) -> absl::Status {
    std::vector<float> host;
    if (auto st = read(name, shape, &host); !st.ok()) return st;
    auto d = m.Upload<float>(host.data(), host.size(), name);
    if (!d.ok()) return d.status();
    *dst = *d;
    return absl::OkStatus();
  };
  auto upload_f16 = [&](const std::string& name, std::vector<int64_t> shape,
                        const __half** dst) -> absl::Status {
    std::vector<float> host;
    if (auto st = read(name, shape, &host); !st.ok()) return st;
    auto d = m.UploadF16(host, name);
    if (!d.ok()) return d.status();
    *dst = *d;
    return absl::OkStatus();
  };

  const int64_t H = c.hidden_size, V = c.vocab_size;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    DeviceLayer& L = m.layers[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    if (auto st = upload_f32(p + "input_layernorm.weight", {H}, &L.input_norm); !st.ok()) return st;
    if (auto st = upload_f32(p + "post_attention_layernorm.weight", {H}, &L.post_norm); !st.ok())
      return st;
    const auto shapes = models::LlamaProjections(c);
    const auto lins = L.Projections();
    for (size_t i = 0; i < shapes.size(); ++i) {
      DeviceLinear& lin = *lins[i];
      lin.n = static_cast<int>(shapes[i].out_features);
      lin.k = static_cast<int>(shapes[i].in_features);
      const std::string& module = shapes[i].module;
      const bool quantized = ap && std::find(ap->module_names.begin(), ap->module_names.end(),
                                             module) != ap->module_names.end();
      if (!quantized) {
        if (auto st = upload_f16(p + module + ".weight", {lin.n, lin.k}, &lin.w16); !st.ok())
          return st;
        continue;
      }
      const std::string prefix =
          absl::StrCat(ap->model_name, ".", ap->layers_name, ".", l, ".", module);
      auto q = models::LoadAnyprecMatrix(**src, prefix, *ap, lin.n, lin.k);
      if (!q.ok()) return q.status();
      lin.parent_bits = q->parent_bits;
      auto planes = m.Upload<uint32_t>(q->qweight.data(), q->qweight.size(), prefix + ".qweight");
      if (!planes.ok()) return planes.status();
      lin.qweight = *planes;
      for (int b = q->seed_bits; b <= q->parent_bits; ++b) {
        auto lut = m.Upload<__half>(q->lut(b), static_cast<size_t>(lin.n) << b,
                                    absl::StrCat(prefix, ".lut", b));
        if (!lut.ok()) return lut.status();
        lin.lut[b] = *lut;
      }
    }
  }
  if (auto st = upload_f32("model.norm.weight", {H}, &m.final_norm); !st.ok()) return st;
  {
    std::vector<float> embed;
    if (auto st = read("model.embed_tokens.weight", {V, H}, &embed); !st.ok()) return st;
    auto d = m.Upload<float>(embed.data(), embed.size(), "model.embed_tokens.weight");
    if (!d.ok()) return d.status();
    m.embed = *d;
    m.lm_head.n = static_cast<int>(V);
    m.lm_head.k = static_cast<int>(H);
    if (c.tie_word_embeddings && options.fp16_lm_head) {
      auto h16 = m.UploadF16(embed, "lm_head (tied to the embeddings), fp16");
      if (!h16.ok()) return h16.status();
      m.lm_head.w16 = *h16;
    } else if (c.tie_word_embeddings) {
      m.lm_head.w32 = m.embed;
    } else if (options.fp16_lm_head) {
      if (auto st = upload_f16("lm_head.weight", {V, H}, &m.lm_head.w16); !st.ok()) return st;
    } else {
      if (auto st = upload_f32("lm_head.weight", {V, H}, &m.lm_head.w32); !st.ok()) return st;
    }
  }
  if (auto st = m.Finish(); !st.ok()) return st;
  return std::unique_ptr<CudaEngine>(new CudaEngine(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<CudaEngine>> CudaEngine::CreateRandom(
    const models::LlamaConfig& config, int seed_bits, int parent_bits, uint64_t seed,
    const CudaEngineOptions& options) {
  models::LlamaConfig c = config;
  if (c.num_key_value_heads == 0) c.num_key_value_heads = c.num_attention_heads;
  if (c.head_dim == 0 && c.num_attention_heads > 0)
    c.head_dim = c.hidden_size / c.num_attention_heads;
  const bool dense = seed_bits == 0 && parent_bits == 0;
  if (!dense && !(kernels::kAnyprecMinBits <= seed_bits && seed_bits <= parent_bits &&
                  parent_bits <= kernels::kAnyprecMaxBits)) {
    return absl::InvalidArgumentError(
        absl::StrCat("CreateRandom: seed/parent bits ", seed_bits, "/", parent_bits,
                     "; expected 0/0 (fp16) or 2 <= seed <= parent <= 8"));
  }
  auto impl = std::make_unique<Impl>();
  if (auto st = impl->Init(c, options); !st.ok()) return st;
  Impl& m = *impl;
  m.seed_bits = seed_bits;
  m.parent_bits = parent_bits;
  m.precision = parent_bits;
  uint64_t counter = 0;
  auto next_seed = [&] { return seed ^ (0x9e3779b97f4a7c15ull * ++counter); };
  const float a =
      0.02f * std::sqrt(3.f);  // uniform [-a, a): std 0.02, Hugging Face's initializer_range
  const size_t H = c.hidden_size, V = c.vocab_size;

  auto f32 = [&](size_t count, float lo, float hi, const std::string& what,
                 const float** dst) -> absl::Status {
    auto d = m.AllocArray<float>(count, what);
    if (!d.ok()) return d.status();
    kernels::FillUniformF32(*d, count, lo, hi, next_seed(), m.stream);
    *dst = *d;
    return absl::OkStatus();
  };
  auto f16 = [&](size_t count, const std::string& what, const __half** dst) -> absl::Status {
    auto d = m.AllocArray<__half>(count, what);
    if (!d.ok()) return d.status();
    kernels::FillUniformF16(*d, count, -a, a, next_seed(), m.stream);
    *dst = *d;
    return absl::OkStatus();
  };
  if (auto st = f32(V * H, -a, a, "embeddings", &m.embed); !st.ok()) return st;
  if (auto st = f32(H, 1.f, 1.f, "final norm", &m.final_norm); !st.ok()) return st;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    DeviceLayer& L = m.layers[l];
    const std::string p = absl::StrCat("layer ", l, " ");
    if (auto st = f32(H, 1.f, 1.f, p + "input norm", &L.input_norm); !st.ok()) return st;
    if (auto st = f32(H, 1.f, 1.f, p + "post-attention norm", &L.post_norm); !st.ok()) return st;
    const auto shapes = models::LlamaProjections(c);
    const auto lins = L.Projections();
    for (size_t i = 0; i < shapes.size(); ++i) {
      DeviceLinear& lin = *lins[i];
      lin.n = static_cast<int>(shapes[i].out_features);
      lin.k = static_cast<int>(shapes[i].in_features);
      const std::string what = p + shapes[i].module;
      if (dense) {
        if (auto st = f16(static_cast<size_t>(lin.n) * lin.k, what, &lin.w16); !st.ok()) return st;
        continue;
      }
      lin.parent_bits = parent_bits;
      const size_t words =
          static_cast<size_t>(parent_bits) * lin.n * kernels::AnyprecWordsPerRow(lin.k);
      auto planes = m.AllocArray<uint32_t>(words, what + " planes");
      if (!planes.ok()) return planes.status();
      kernels::FillRandomWords(*planes, words, next_seed(), m.stream);
      lin.qweight = *planes;
      const uint64_t lut_seed = next_seed();  // one per matrix: the LUTs of all precisions nest
      for (int b = seed_bits; b <= parent_bits; ++b) {
        auto lut =
            m.AllocArray<__half>(static_cast<size_t>(lin.n) << b, absl::StrCat(what, " lut", b));
        if (!lut.ok()) return lut.status();
        kernels::FillGridLut(*lut, lin.n, b, a, lut_seed, m.stream);
        lin.lut[b] = *lut;
      }
    }
  }
  m.lm_head.n = static_cast<int>(V);
  m.lm_head.k = static_cast<int>(H);
  if (c.tie_word_embeddings && options.fp16_lm_head) {
    auto d = m.AllocArray<__half>(V * H, "lm_head (tied to the embeddings), fp16");
    if (!d.ok()) return d.status();
    kernels::ConvertF32ToF16(m.embed, *d, static_cast<int64_t>(V * H), m.stream);
    m.lm_head.w16 = *d;
  } else if (c.tie_word_embeddings) {
    m.lm_head.w32 = m.embed;
  } else if (options.fp16_lm_head) {
    if (auto st = f16(V * H, "lm_head", &m.lm_head.w16); !st.ok()) return st;
  } else {
    if (auto st = f32(V * H, -a, a, "lm_head", &m.lm_head.w32); !st.ok()) return st;
  }
  if (cudaError_t e = cudaStreamSynchronize(m.stream); e != cudaSuccess)
    return CudaError(e, "random weights");
  if (auto st = m.Finish(); !st.ok()) return st;
  return std::unique_ptr<CudaEngine>(new CudaEngine(std::move(impl)));
}

}  // namespace pmpd::inference
