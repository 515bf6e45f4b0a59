// Precision schedulers: who decides the weight precision of every generated token.
//
// Timeline of one sequence: the prompt is prefilled at the prefill precision and its logits give
// generated token 0; the forward pass that produces token k >= 1 runs at NextPrecision(k, ...).
// "Step k" is the production of generated token k, so a static schedule 4,3,2 with switch steps
// 16,64 produces tokens [0,16) at 4 bits (token 0 at the prefill precision), [16,64) at 3, the
// rest at 2.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace pmpd::scheduler {

// The last layer's K and V after prefill, each [kv_heads, prompt_len, head_dim] row-major on the
// host; or (device_k/device_v non-null, host spans possibly empty) a view of the CUDA engine's cache
// on GPU `cuda_device`: element (h, t, d) at device_k[h * device_head_stride + t * head_dim + d].
struct PrefillKv {
  absl::Span<const float> k, v;
  int kv_heads = 0, prompt_len = 0, head_dim = 0;
  const float* device_k = nullptr;
  const float* device_v = nullptr;
  int64_t device_head_stride = 0;
  int cuda_device = 0;
};

// What OnPrefill reads of the KV cache: nothing (so the caller copies nothing), the host spans, or
// either (a device view suffices: no copy off the GPU).
enum class KvAccess { kNone, kHost, kHostOrDevice };

class PrecisionScheduler {
 public:
  virtual ~PrecisionScheduler() = default;
  // Forgets the previous sequence. Called before each prefill.
  virtual void Reset() = 0;
  // Called once after prefill; may fail (e.g. a classifier that does not fit the model).
  virtual absl::Status OnPrefill(const PrefillKv& kv) = 0;
  virtual KvAccess kv_access() const { return KvAccess::kHost; }
  // Precision of the forward pass that produces generated token `step` (>= 1).
  virtual int NextPrecision(int step, int current_precision, absl::Span<const float> last_logits) = 0;
  // The precisions it may return, highest first (for validation against the checkpoint).
  virtual const std::vector<int>& precisions() const = 0;
  virtual std::string Describe() const = 0;
};

// Static schedule: precisions[i] for steps [switch_steps[i-1], switch_steps[i]) (cumulative; one
// precision = a uniform baseline). Errors: empty list, precisions not strictly decreasing or outside
// 2..8, switch steps not one fewer than precisions, negative or not non-decreasing.
absl::StatusOr<std::unique_ptr<PrecisionScheduler>> MakeStaticScheduler(std::vector<int> precisions,
                                                                       std::vector<int> switch_steps);

// "4,3,2" -> {4,3,2}; errors name `flag` and the bad item.
absl::StatusOr<std::vector<int>> ParseIntList(const std::string& text, const std::string& flag);

}  // namespace pmpd::scheduler
