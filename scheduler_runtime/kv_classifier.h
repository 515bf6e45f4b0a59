// KV-cache classifiers at run time: their files (our safetensors + manifest.json export, or the
// PMPD reference's classifier_<hi>_<lo>.pt state dicts), inference, and the learned scheduler that
// turns one prediction per pair into switch steps. LibTorch-free header; the network itself is in
// kv_classifier_module.h.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "scheduler_runtime/precision_scheduler.h"

namespace pmpd::scheduler {

// The PMPD reference's classifier, and ours with the prompt length as one more MLP input
// (kv_classifier_module.h). A manifest names one of them; its files must hold that one.
inline constexpr char kReferenceArchitecture[] = "pmpd-reference";
inline constexpr char kPromptLengthArchitecture[] = "pmpd-reference+prompt-length";

struct KvClassifierSpec {
  int64_t kv_heads = 0, head_dim = 0, num_classes = 4;
  bool prompt_length_input = false;
  double dropout = 0.1;  // training only
};
// kReferenceArchitecture or kPromptLengthArchitecture, by spec.prompt_length_input.
const char* ArchitectureName(const KvClassifierSpec& spec);

// A classifier's parameters by state-dict key (query, ln.weight, ln.bias, project.0.weight, ...).
struct ClassifierTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
using ClassifierState = std::map<std::string, ClassifierTensor>;

// Checks that `state` holds exactly the reference keys with consistent shapes and returns the dims;
// length.weight and length.bias besides them mean the prompt-length input; any other key is an
// error. Errors name `source` (a
// file) and the offending key.
absl::StatusOr<KvClassifierSpec> SpecFromState(const ClassifierState& state,
                                               const std::string& source);
// A classifier file of pair high -> low. The writer records the pair in the file's metadata
// ("pair": "5_4"); the reader, given the pair the caller expects (high > 0), refuses a file
// recorded for another pair (e.g. two files swapped in a directory). Files without the entry
// (written before it existed) are read as they are.
absl::StatusOr<ClassifierState> ReadClassifierSafetensors(const std::string& path, int high = 0,
                                                          int low = 0);
absl::Status WriteClassifierSafetensors(const std::string& path, const ClassifierState& state,
                                        int high, int low);  // atomic
// The reference's torch.save(state_dict) file (zip + pickle; read without LibTorch). Keys that are
// not part of the architecture are ignored, as the reference's loader does.
absl::StatusOr<ClassifierState> ReadReferenceClassifierPt(const std::string& path);

// One classifier, ready for inference. Not thread-safe. Cost per call: O(H^2 * T * D) flops.
class KvClassifier {
 public:
  // device: "cpu", or "cuda" (LibTorch on GPU 0; fails when LibTorch sees no GPU).
  static absl::StatusOr<std::unique_ptr<KvClassifier>> FromState(const ClassifierState& state,
                                                                 const std::string& source,
                                                                 const std::string& device = "cpu");
  ~KvClassifier();
  // Logits [num_classes] for one prompt's prefill K and V, read through the view's device, dtype
  // and strides (an engine's cache in place, or host arrays); copied once when the classifier's
  // device differs. Fails when H or D do not match the classifier.
  absl::StatusOr<std::vector<float>> Logits(const inference::KvView& kv) const;
  bool on_cuda() const;
  const KvClassifierSpec& spec() const { return spec_; }
  const std::string& source() const { return source_; }

 private:
  KvClassifier() = default;
  struct Net;
  std::unique_ptr<Net> net_;
  KvClassifierSpec spec_;
  std::string source_;
};

// manifest.json of an exported classifier directory.
struct ClassifierPairInfo {
  int high = 0, low = 0;
  std::string file;  // classifier_<hi>_<lo>.safetensors, relative to the directory
  std::vector<int64_t>
      candidate_steps;  // class i < size: switch at candidate_steps[i]; last class: never
  KvClassifierSpec spec;
  std::string metrics_json;  // validation metrics and hyperparameters, as a JSON object
};
struct ClassifierManifest {
  std::string tool_version, architecture = kReferenceArchitecture;
  std::string data_path, data_fingerprint, model_fingerprint;
  std::vector<ClassifierPairInfo> pairs;
};
absl::StatusOr<ClassifierManifest> ReadClassifierManifest(const std::string& dir);
absl::Status WriteClassifierManifest(const std::string& dir,
                                     const ClassifierManifest& manifest);  // atomic

struct LearnedSchedulerOptions {
  std::string classifier_dir;
  std::vector<int> precisions;     // high to low; needs a classifier for every adjacent pair
  int kv_heads = 0, head_dim = 0;  // the model's, checked against every classifier
  // Only for reference .pt files (no manifest): their classes are the steps
  // [0, N/3, 2(N/3)] and never, N = this (the reference's max_new_tokens default, 255).
  int reference_max_new_tokens = 255;
  // Where the classifiers run: "cpu", "cuda" (LibTorch on the GPU; with the CUDA engine the prefill
  // KV is read where it lies, nothing is copied to the host), or "auto" (cuda when LibTorch sees a
  // GPU). Same network and weights either way; fp32 on both.
  std::string device = "cpu";
  // How a pair's class probabilities become its switch step. 0: the most probable class (argmax).
  // q in (0, 1): the earliest class whose cumulative probability reaches q, i.e. the switch step
  // that is late enough (the label is "the earliest step that keeps quality") with probability q by
  // the classifier's own estimate: small q switches early (fewer bits), q near 1 late. The one knob
  // that trades the learned scheduler's bits for quality; pmpd-eval --calibrate-learned picks it.
  double switch_quantile = 0;
  // The model the classifiers will read (a directory or GGUF file, as given to the engine). When
  // set and the manifest records the fingerprint of the model its labels came from, the two must
  // match (CheckClassifierModel) unless `force`: classifiers of another model read a KV cache they
  // were not trained on. Empty: not checked (the caller checked, or has no model path).
  std::string model_path{};
  bool force = false;
};

// Refuses a classifier directory exported for another model: OK when `force`, when the directory
// has no manifest.json (the reference's .pt files record no model) or its manifest records no
// model_fingerprint, or when that fingerprint is `model_path`'s (models::FingerprintModelDir, which
// reads every weight byte once: only computed when there is a fingerprint to compare). The error
// names the directory, both fingerprints and --force.
absl::Status CheckClassifierModel(const std::string& classifier_dir, const std::string& model_path,
                                  bool force);

// OK for 0 or a value in (0, 1); otherwise an error naming `what` (an option or a flag) and q.
absl::Status CheckSwitchQuantile(double q, const std::string& what);
// The class one pair's logits select under `switch_quantile` (see LearnedSchedulerOptions).
int SelectSwitchClass(absl::Span<const float> logits, double switch_quantile);

// The learned scheduler. OnPrefill runs each pair's classifier once on the prefill KV cache (the
// same cache for every pair) and fixes the schedule: pair p's class (SelectSwitchClass) gives step
// s_p (never = infinity); precisions[p+1] starts at S_p = max(S_{p-1}, s_p), absolute steps as in a
// static schedule, and a "never" stops the chain. Errors name the directory and the missing pair.
absl::StatusOr<std::unique_ptr<PrecisionScheduler>> MakeLearnedScheduler(
    const LearnedSchedulerOptions& options);

// The chain rule above, on its own: switch step per pair (-1 = never) -> cumulative switch steps
// for a static schedule over precisions[0..returned size].
std::vector<int> ChainSwitchSteps(const std::vector<int>& pair_steps);

}  // namespace pmpd::scheduler
