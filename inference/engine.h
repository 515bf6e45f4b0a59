// One door to every decoding engine: the CPU reference engine (LlamaModel) and the CUDA engine
// (CudaEngine) implement Engine, so generation (generator.h), precision schedules, the learned
// scheduler, switch-point labelling and evaluation are written once against it. Header free of
// LibTorch and CUDA.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "models/llama_config.h"

namespace pmpd::inference {

// Where an engine runs. kAuto is only a request (LoadEngine resolves it); engines report kCpu or
// kCuda.
enum class Device { kCpu, kCuda, kAuto };
// "cpu", "cuda", "auto" -> Device; anything else is an error naming `what` (e.g. "--device").
absl::StatusOr<Device> ParseDevice(const std::string& text, const std::string& what = "device");
std::string DeviceName(Device device);

enum class KvDtype { kFloat32, kFloat16 };

// A typed, strided view of one layer's cached keys and values, readable without knowing the engine:
// element (h, t, d) of K, h < kv_heads, t < length, d < head_dim, is at
//   k + h * head_stride + t * position_stride + d   (elements of `dtype`; V alike)
// in host memory (device kCpu) or on GPU `cuda_device` (device kCuda). Keys are stored after the
// rotary embedding, as attention reads them. Valid until the engine's next Prefill, DecodeStep,
// Reset or destruction; nothing is copied to make it.
struct KvView {
  Device device = Device::kCpu;
  int cuda_device = 0;
  KvDtype dtype = KvDtype::kFloat32;
  const void* k = nullptr;
  const void* v = nullptr;
  int kv_heads = 0, length = 0, head_dim = 0;
  int64_t head_stride = 0, position_stride = 0;
  // Host float32 only: K/V element (h, t, d).
  float k_at(int h, int t, int d) const { return static_cast<const float*>(k)[Offset(h, t, d)]; }
  float v_at(int h, int t, int d) const { return static_cast<const float*>(v)[Offset(h, t, d)]; }
  int64_t Offset(int h, int t, int d) const { return h * head_stride + t * position_stride + d; }
};

// A view of host float32 arrays K and V, each [kv_heads, length, head_dim] row-major (stored
// samples, tests). The arrays must outlive the view.
KvView HostKvView(absl::Span<const float> k, absl::Span<const float> v, int kv_heads, int length,
                  int head_dim);

// A decoding engine: one model plus the KV caches of up to max_batch() sequences; not thread-safe.
// Timeline of a sequence: Prefill appends the prompt (its last position's logits give the first
// new token), each DecodeStep appends one token. Any-precision engines switch weight precision
// between calls at no cost (same weights read with fewer planes, same cache).
//
// Sequences live in slots 0 .. max_batch() - 1, each with its own cache and length. cache_len,
// Reset, Prefill, DecodeStep, LastLayerKv and CopyLastLayerKv act on the selected slot (0 until
// SelectSequence); DecodeBatch steps several slots at once. Engines with one slot (the default)
// need not know about slots.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual const models::LlamaConfig& config() const = 0;
  virtual Device device() const = 0;  // kCpu or kCuda
  // Positions the KV cache holds at most.
  virtual int max_context() const = 0;
  // Tokens currently in the KV cache.
  virtual int cache_len() const = 0;
  // Drops the cached sequence; the next Prefill starts at position 0. O(1).
  virtual void Reset() = 0;

  // Any-precision engines: the weight precision (bits) of the next passes, seed..parent; starts at
  // the parent. Plain engines: 0 for all three.
  virtual int precision() const = 0;
  virtual int min_precision() const = 0;
  virtual int max_precision() const = 0;
  // Fails for plain engines and for bits outside [min_precision, max_precision]. O(1).
  virtual absl::Status SetPrecision(int bits) = 0;

  // Runs `tokens` at positions [cache_len, cache_len + n), appends their K/V, and writes the last
  // position's logits ([vocab]) and/or their argmax (the lowest index among equal maxima); either
  // may be null. Fails, cache unchanged, when the tokens do not fit the context or an id is outside
  // the vocabulary.
  virtual absl::Status Prefill(absl::Span<const int> tokens, std::vector<float>* last_logits,
                               int* argmax) = 0;
  // One token at position cache_len; outputs as Prefill. Engines may skip copying logits when
  // `logits` is null (greedy decoding on the GPU copies 4 bytes back).
  virtual absl::Status DecodeStep(int token, std::vector<float>* logits, int* argmax) = 0;

  // Batched decoding. Slots the engine holds (>= 1); the selected one; selecting is O(1) and fails
  // for a slot outside [0, max_batch()).
  virtual int max_batch() const { return 1; }
  virtual int sequence() const { return 0; }
  virtual absl::Status SelectSequence(int slot);
  // One decode step for several sequences: row i feeds tokens[i] to slot slots[i] (distinct) at
  // that slot's cache_len, all at the current precision. Writes logits [rows, vocab] row-major
  // and/or argmax [rows] (either may be null). The results of DecodeStep on each slot in turn, up
  // to floating-point rounding: batching engines (CudaEngine) read the weights once for all rows
  // and may use other kernels for several rows (its tensor-core GEMV). Fails, nothing changed, when
  // the spans differ in size or are empty, a slot is out of range or repeated, a token is outside
  // the vocabulary, or a slot's cache is full. The selected slot is unchanged.
  virtual absl::Status DecodeBatch(absl::Span<const int> slots, absl::Span<const int> tokens,
                                   std::vector<float>* logits, std::vector<int>* argmax);
  // Branching: copies the first `length` cached positions of slot `from` into slot `to` (whose
  // sequence is dropped); `to`'s cache_len becomes `length` and the two continue independently
  // (switch-point labelling branches the all-high run this way). The copy equals what `from`
  // computed, bit for bit. Fails, nothing changed, for a slot outside [0, max_batch()), from ==
  // to, or length outside [0, from's cache_len]; engines with one slot always fail. The selected
  // slot is unchanged. Cost: 2 * layers * kv_dim * length cache elements copied on the device.
  virtual absl::Status CopySequence(int from, int to, int length);

  // The last layer's cache, positions [0, cache_len), where it lies: what the learned scheduler
  // reads after prefill. No copy.
  virtual KvView LastLayerKv() const = 0;
  // The same as host float32 arrays, each [kv_heads, cache_len, head_dim] row-major (switch-point
  // labels store them). Cost: one copy of 2 * kv_dim * cache_len values (off the GPU for CUDA).
  virtual void CopyLastLayerKv(std::vector<float>* k, std::vector<float>* v) const = 0;

  // Accelerator memory this engine holds (weights, KV caches, buffers); 0 for host engines.
  virtual int64_t device_bytes() const { return 0; }
};

// DecodeBatch's argument checks, shared by the engines: sizes, slot range and repeats, token ids
// (not the cache lengths, which only the engine knows).
absl::Status CheckDecodeBatch(const Engine& engine, absl::Span<const int> slots,
                              absl::Span<const int> tokens);
// CopySequence's argument checks, shared by the engines; from_len is `from`'s cache_len.
absl::Status CheckCopySequence(const Engine& engine, int from, int to, int length, int from_len);

}  // namespace pmpd::inference
