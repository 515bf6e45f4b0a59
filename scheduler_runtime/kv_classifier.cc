#include "scheduler_runtime/kv_classifier.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "base/atomic_file.h"
#include "base/json_integer.h"
#include "inference/sampler.h"
#include "kernels/check.h"
#include "kernels/half.h"
#include "models/file_util.h"
#include "models/model_fingerprint.h"
#include "models/safetensors.h"
#include "models/torch_checkpoint.h"
#include "models/version.h"
#include "scheduler_runtime/kv_classifier_module.h"

namespace pmpd::scheduler {
namespace {

std::string Shape(const std::vector<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

// Float values of a raw tensor (F32/F16/BF16), or an error naming the file and key.
absl::StatusOr<ClassifierTensor> ToClassifierTensor(const std::string& name, models::DType dtype,
                                                    const std::vector<int64_t>& shape,
                                                    const uint8_t* data, size_t nbytes,
                                                    const std::string& source) {
  models::TensorView view;
  view.name = name;
  view.dtype = dtype;
  view.shape = shape;
  view.data = data;
  view.nbytes = nbytes;
  view.file = source;
  ClassifierTensor t;
  t.shape = shape;
  t.values.resize(static_cast<size_t>(view.numel()));
  if (auto st = models::ToFloat32(view, t.values.data()); !st.ok()) return st;
  return t;
}

const char* const kKeys[] = {
    "query",          "ln.weight",        "ln.bias",       "project.0.weight",
    "project.0.bias", "project.2.weight", "project.2.bias"};

}  // namespace

const char* ArchitectureName(const KvClassifierSpec& spec) {
  return spec.prompt_length_input ? kPromptLengthArchitecture : kReferenceArchitecture;
}

absl::StatusOr<KvClassifierSpec> SpecFromState(const ClassifierState& state,
                                               const std::string& source) {
  for (const char* key : kKeys) {
    if (!state.count(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": missing classifier tensor \"", key,
                       "\" (expected keys: ", absl::StrJoin(kKeys, ", "), ")"));
    }
  }
  const auto& q = state.at("query").shape;
  if (q.size() != 3 || q[0] != q[1] || q[0] < 1 || q[2] < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": query has shape ", Shape(q), ", expected [H, H, D]"));
  }
  KvClassifierSpec spec;
  spec.kv_heads = q[0];
  spec.head_dim = q[2];
  const int64_t hd = q[0] * q[2];
  const auto& out_w = state.at("project.2.weight").shape;
  spec.num_classes = out_w.size() == 2 ? out_w[0] : 0;
  spec.prompt_length_input = state.count("length.weight") || state.count("length.bias");
  std::map<std::string, std::vector<int64_t>> want = {{"ln.weight", {hd}},
                                                      {"ln.bias", {hd}},
                                                      {"project.0.weight", {hd, hd}},
                                                      {"project.0.bias", {hd}},
                                                      {"project.2.weight", {spec.num_classes, hd}},
                                                      {"project.2.bias", {spec.num_classes}}};
  if (spec.prompt_length_input) {
    want["length.weight"] = {spec.num_classes, 1};
    want["length.bias"] = {spec.num_classes};
    for (const char* key : {"length.weight", "length.bias"}) {
      if (!state.count(key)) {
        return absl::InvalidArgumentError(
            absl::StrCat(source,
                         ": has one of length.weight and length.bias (the prompt-length input) but "
                         "not \"",
                         key, "\""));
      }
    }
  }
  for (const auto& [key, tensor] : state) {  // a misspelt key would load as another architecture
    if (!want.count(key) && key != "query") {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": unexpected classifier tensor \"", key, "\" (expected keys: ",
                       absl::StrJoin(kKeys, ", "), ", and length.weight, length.bias for the ",
                       kPromptLengthArchitecture, " architecture)"));
    }
  }
  for (const auto& [key, shape] : want) {
    if (state.at(key).shape != shape || spec.num_classes < 2) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, " has shape ",
                                                     Shape(state.at(key).shape), ", expected ",
                                                     Shape(shape), " for query ", Shape(q)));
    }
  }
  return spec;
}

absl::StatusOr<ClassifierState> ReadClassifierSafetensors(const std::string& path, int high,
                                                          int low) {
  auto f = models::SafetensorsFile::Open(path);
  if (!f.ok()) return f.status();
  const auto& meta = (*f)->metadata();
  if (auto it = meta.find("pair");
      high > 0 && it != meta.end() && it->second != absl::StrCat(high, "_", low)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": holds the classifier of pair ", absl::StrReplaceAll(it->second, {{"_", "->"}}),
        ", but it is listed for ", high, "->", low, " (files swapped or renamed?)"));
  }
  ClassifierState state;
  for (const auto& [name, view] : (*f)->tensors()) {
    auto t = ToClassifierTensor(name, view.dtype, view.shape, view.data, view.nbytes, path);
    if (!t.ok()) return t.status();
    state[name] = std::move(*t);
  }
  return state;
}

absl::Status WriteClassifierSafetensors(const std::string& path, const ClassifierState& state,
                                        int high, int low) {
  auto spec = SpecFromState(state, path);
  if (!spec.ok()) return spec.status();
  const std::string architecture = ArchitectureName(*spec);
  std::vector<models::TensorToWrite> tensors;
  for (const auto& [name, t] : state) {
    models::TensorToWrite w;
    w.name = name;
    w.dtype = models::DType::kF32;
    w.shape = t.shape;
    w.bytes.assign(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
    tensors.push_back(std::move(w));
  }
  return models::WriteSafetensors(path, tensors,
                                  {{"format", "pmpd-kv-classifier"},
                                   {"architecture", architecture},
                                   {"pair", absl::StrCat(high, "_", low)}});
}

absl::StatusOr<ClassifierState> ReadReferenceClassifierPt(const std::string& path) {
  auto dict = models::ReadTorchStateDict(path);
  if (!dict.ok()) return dict.status();
  ClassifierState state;
  for (const models::TensorToWrite& t : *dict) {
    if (std::find(std::begin(kKeys), std::end(kKeys), t.name) == std::end(kKeys)) continue;
    auto ct =
        ToClassifierTensor(t.name, t.dtype, t.shape,
                           reinterpret_cast<const uint8_t*>(t.bytes.data()), t.bytes.size(), path);
    if (!ct.ok()) return ct.status();
    state[t.name] = std::move(*ct);
  }
  return state;
}

struct KvClassifier::Net {
  KvClassifierNet module{nullptr};
  bool cuda = false;
};

KvClassifier::~KvClassifier() = default;

absl::StatusOr<std::unique_ptr<KvClassifier>> KvClassifier::FromState(const ClassifierState& state,
                                                                      const std::string& source,
                                                                      const std::string& device) {
  auto spec = SpecFromState(state, source);
  if (!spec.ok()) return spec.status();
  if (device != "cpu" && device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("classifier device must be cpu or cuda, got \"", device, "\""));
  }
  if (device == "cuda" && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        absl::StrCat(source, ": the classifier should run on CUDA, but LibTorch sees no GPU"));
  }
  std::unique_ptr<KvClassifier> c(new KvClassifier());
  c->spec_ = *spec;
  c->source_ = source;
  c->net_ = std::make_unique<Net>();
  c->net_->module = KvClassifierNet(spec->kv_heads, spec->head_dim, spec->num_classes, 0.0,
                                    spec->prompt_length_input);
  torch::NoGradGuard no_grad;
  for (auto& p : c->net_->module->named_parameters()) {
    const ClassifierTensor& t = state.at(p.key());
    // A NaN or infinite weight makes every prediction NaN, which argmax turns into "switch at step
    // 0" silently: refuse the file instead.
    for (float v : t.values) {
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": tensor \"", p.key(), "\" holds a NaN or infinite value"));
      }
    }
    std::memcpy(p.value().data_ptr<float>(), t.values.data(), t.values.size() * sizeof(float));
  }
  c->net_->module->eval();
  if (device == "cuda") c->net_->module->to(torch::Device(torch::kCUDA, 0));
  c->net_->cuda = device == "cuda";
  return c;
}

bool KvClassifier::on_cuda() const { return net_->cuda; }

absl::StatusOr<std::vector<float>> KvClassifier::Logits(const inference::KvView& kv) const {
  if (kv.kv_heads != spec_.kv_heads || kv.head_dim != spec_.head_dim || kv.length < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": the classifier reads ", spec_.kv_heads, " KV heads of dim ",
                     spec_.head_dim, ", the model has ", kv.kv_heads, " of dim ", kv.head_dim,
                     " (a classifier trained for another model?)"));
  }
  if (kv.k == nullptr || kv.v == nullptr || kv.device == inference::Device::kAuto) {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": an empty KV view"));
  }
  torch::NoGradGuard no_grad;
  // The view as a tensor where it lies, by its strides and dtype: no knowledge of the engine's
  // layout; one copy only when the classifier's device or dtype differs.
  const auto options =
      torch::TensorOptions()
          .dtype(kv.dtype == inference::KvDtype::kFloat16 ? torch::kFloat16 : torch::kFloat32)
          .device(kv.device == inference::Device::kCuda
                      ? torch::Device(torch::kCUDA, kv.cuda_device)
                      : torch::Device(torch::kCPU));
  const std::vector<int64_t> shape = {1, kv.kv_heads, kv.length, kv.head_dim};
  const std::vector<int64_t> strides = {kv.kv_heads * kv.head_stride, kv.head_stride,
                                        kv.position_stride, 1};
  const torch::Device target =
      net_->cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  try {
    torch::Tensor k = torch::from_blob(const_cast<void*>(kv.k), shape, strides, options)
                          .to(target, torch::kFloat32);
    torch::Tensor v = torch::from_blob(const_cast<void*>(kv.v), shape, strides, options)
                          .to(target, torch::kFloat32);
    torch::Tensor logits = net_->module->forward(k, v).to(torch::kCPU).contiguous();
    return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  } catch (const c10::Error& e) {  // e.g. a CUDA view with a LibTorch built without CUDA
    return absl::FailedPreconditionError(absl::StrCat(source_, ": cannot read the KV cache on ",
                                                      inference::DeviceName(kv.device), ": ",
                                                      e.what_without_backtrace()));
  }
}

absl::StatusOr<ClassifierManifest> ReadClassifierManifest(const std::string& dir) {
  const std::string path = models::JoinPath(dir, "manifest.json");
  auto text = models::ReadFileToString(path);
  if (!text.ok()) return text.status();
  if (absl::Status st = models::CheckNoNulByte(*text, path); !st.ok()) return st;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  // value() throws when the field is there with another type (found by fuzz/classifier_fuzzer:
  // "format": [...] escaped as a json::type_error).
  if (!j.contains("format") || !j["format"].is_string() || j["format"] != "pmpd-classifiers") {
    return absl::InvalidArgumentError(absl::StrCat(path, ": format is not \"pmpd-classifiers\""));
  }
  ClassifierManifest m;
  try {
    m.tool_version = j.value("tool_version", "");
    m.architecture = j.at("architecture").get<std::string>();
    if (m.architecture != kReferenceArchitecture && m.architecture != kPromptLengthArchitecture) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": unknown architecture \"", m.architecture, "\" (known: ", kReferenceArchitecture,
          ", ", kPromptLengthArchitecture, ")"));
    }
    m.data_path = j.value("data_path", "");
    m.data_fingerprint = j.value("data_fingerprint", "");
    m.model_fingerprint = j.value("model_fingerprint", "");
    for (const auto& p : j.at("pairs")) {
      ClassifierPairInfo info;
      // Integers read wide and range-checked: get<int>() of 1e300 is undefined behaviour and of
      // 2^32 + 5 is 5 (issue 17, found by fuzz/classifier_fuzzer).
      auto integer = [&](const nlohmann::json& v, const char* key, int64_t lo,
                         int64_t hi) -> absl::StatusOr<int64_t> {
        if (auto x = base::JsonInteger(v, lo, hi)) return *x;
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": \"", key, "\" ", v.dump(), " is not an integer in [", lo, ", ", hi, "]"));
      };
      auto field = [&](const char* key, int64_t lo, int64_t hi) {
        return integer(p.at(key), key, lo, hi);
      };
      auto high = field("high", 1, 64), low = field("low", 1, 64);
      auto kv_heads = field("kv_heads", 1, 1 << 16), head_dim = field("head_dim", 1, 1 << 16);
      auto num_classes = field("num_classes", 2, 1 << 16);
      for (const auto* v : {&high, &low, &kv_heads, &head_dim, &num_classes}) {
        if (!v->ok()) return v->status();
      }
      info.high = static_cast<int>(*high);
      info.low = static_cast<int>(*low);
      info.file = p.at("file").get<std::string>();
      if (!p.at("candidate_steps").is_array()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": \"candidate_steps\" must be an array of step numbers"));
      }
      for (const auto& step : p.at("candidate_steps")) {
        auto s = integer(step, "candidate_steps", 0, int64_t{1} << 20);
        if (!s.ok()) return s.status();
        info.candidate_steps.push_back(*s);
      }
      info.spec.kv_heads = *kv_heads;
      info.spec.head_dim = *head_dim;
      info.spec.num_classes = *num_classes;
      info.spec.prompt_length_input = m.architecture == kPromptLengthArchitecture;
      info.spec.dropout = p.value("dropout", 0.1);
      info.metrics_json = p.contains("metrics") ? p["metrics"].dump() : "{}";
      if (info.file.empty() || info.file == "." || info.file == ".." ||
          info.file.find('/') != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": pair ", info.high, "->", info.low, " names file \"", info.file,
                         "\": it must be a file name inside the classifier directory"));
      }
      for (size_t i = 0; i < info.candidate_steps.size(); ++i) {
        if (i > 0 && info.candidate_steps[i] <= info.candidate_steps[i - 1]) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, ": pair ", info.high, "->", info.low,
              " has candidate steps that are not increasing non-negative step numbers"));
        }
      }
      for (const ClassifierPairInfo& seen : m.pairs) {
        if (seen.high == info.high && seen.low == info.low) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": pair ", info.high, "->", info.low, " is listed twice"));
        }
      }
      if (info.spec.num_classes != static_cast<int64_t>(info.candidate_steps.size()) + 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": pair ", info.high, "->", info.low, " has ", info.spec.num_classes,
            " classes for ", info.candidate_steps.size(), " candidate steps (+ never)"));
      }
      m.pairs.push_back(std::move(info));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": malformed manifest: ", e.what()));
  }
  return m;
}

absl::Status WriteClassifierManifest(const std::string& dir, const ClassifierManifest& m) {
  nlohmann::json pairs = nlohmann::json::array();
  for (const ClassifierPairInfo& p : m.pairs) {
    pairs.push_back(
        {{"high", p.high},
         {"low", p.low},
         {"file", p.file},
         {"candidate_steps", p.candidate_steps},
         {"classes",
          [&] {
            std::vector<std::string> names;
            for (int64_t s : p.candidate_steps) names.push_back(absl::StrCat("switch at step ", s));
            names.push_back("never");
            return names;
          }()},
         {"kv_heads", p.spec.kv_heads},
         {"head_dim", p.spec.head_dim},
         {"num_classes", p.spec.num_classes},
         {"dropout", p.spec.dropout},
         {"metrics", nlohmann::json::parse(p.metrics_json.empty() ? "{}" : p.metrics_json)}});
  }
  nlohmann::json j{{"format", "pmpd-classifiers"},
                   {"version", 1},
                   {"tool_version", kPmpdVersion},
                   {"architecture", m.architecture},
                   {"data_path", m.data_path},
                   {"data_fingerprint", m.data_fingerprint},
                   {"model_fingerprint", m.model_fingerprint},
                   {"pairs", pairs}};
  return base::WriteFileAtomically(models::JoinPath(dir, "manifest.json"), j.dump(2) + "\n");
}

std::vector<int> ChainSwitchSteps(const std::vector<int>& pair_steps) {
  std::vector<int> out;
  for (int s : pair_steps) {
    if (s < 0) break;  // never: stay at this precision to the end
    out.push_back(out.empty() ? s : std::max(out.back(), s));
  }
  return out;
}

absl::Status CheckSwitchQuantile(double q, const std::string& what) {
  if (q == 0 || (q > 0 && q < 1)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", q, ": use 0 (the most probable step) or a value in (0, 1)"));
}

int SelectSwitchClass(absl::Span<const float> logits, double q) {
  PMPD_CHECK(!logits.empty(), "a classifier has at least one class");
  PMPD_CHECK(q >= 0 && q < 1, "switch_quantile is 0 (argmax) or in (0, 1)");
  const int n = static_cast<int>(logits.size());
  const int argmax = inference::Argmax(logits);
  if (q == 0) return argmax;
  // Softmax in double, shifted by the max for range; the last class takes what rounding leaves.
  std::vector<double> p(n);
  double z = 0;
  for (int i = 0; i < n; ++i) z += p[i] = std::exp(static_cast<double>(logits[i]) - logits[argmax]);
  double cum = 0;
  for (int i = 0; i + 1 < n; ++i) {
    cum += p[i] / z;
    if (cum >= q) return i;
  }
  return n - 1;
}

namespace {

class LearnedScheduler : public PrecisionScheduler {
 public:
  struct Pair {
    std::unique_ptr<KvClassifier> classifier;
    std::vector<int64_t> candidate_steps;
  };
  LearnedScheduler(std::vector<int> precisions, std::vector<Pair> pairs, double switch_quantile)
      : precisions_(std::move(precisions)), pairs_(std::move(pairs)), quantile_(switch_quantile) {}

  void Reset() override {
    switch_steps_.clear();
    predicted_.clear();
  }
  absl::Status OnPrefill(const inference::KvView& kv) override {
    Reset();
    std::vector<int> steps;
    for (const Pair& p : pairs_) {
      auto logits = p.classifier->Logits(kv);
      if (!logits.ok()) return logits.status();
      const int cls = SelectSwitchClass(*logits, quantile_);
      predicted_.push_back(cls);
      steps.push_back(cls < static_cast<int>(p.candidate_steps.size())
                          ? static_cast<int>(p.candidate_steps[cls])
                          : -1);
    }
    switch_steps_ = ChainSwitchSteps(steps);
    return absl::OkStatus();
  }
  int NextPrecision(int step, int, absl::Span<const float>) override {
    size_t level = 0;
    while (level < switch_steps_.size() && step >= switch_steps_[level]) ++level;
    return precisions_[level];
  }
  const std::vector<int>& precisions() const override { return precisions_; }
  std::string Describe() const override {
    return absl::StrCat("learned ", absl::StrJoin(precisions_, "->"), " (predicted switch steps ",
                        switch_steps_.empty() ? "none" : absl::StrJoin(switch_steps_, ","), ")");
  }

 private:
  std::vector<int> precisions_;
  std::vector<Pair> pairs_;
  double quantile_ = 0;
  std::vector<int> switch_steps_, predicted_;
};

}  // namespace

absl::Status CheckClassifierModel(const std::string& classifier_dir, const std::string& model_path,
                                  bool force) {
  if (force || !models::FileExists(models::JoinPath(classifier_dir, "manifest.json"))) {
    return absl::OkStatus();
  }
  auto manifest = ReadClassifierManifest(classifier_dir);
  if (!manifest.ok()) return manifest.status();
  if (manifest->model_fingerprint.empty()) return absl::OkStatus();
  auto fingerprint = models::FingerprintModelDir(model_path);
  if (!fingerprint.ok()) return fingerprint.status();
  if (*fingerprint == manifest->model_fingerprint) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      classifier_dir, ": these classifiers were trained on labels from the model with fingerprint ",
      manifest->model_fingerprint, " (manifest.json model_fingerprint), but ", model_path,
      " has fingerprint ", *fingerprint,
      "; train classifiers for this model, or pass --force to use them anyway"));
}

absl::StatusOr<std::unique_ptr<PrecisionScheduler>> MakeLearnedScheduler(
    const LearnedSchedulerOptions& o) {
  if (auto st = CheckPrecisionLadder(o.precisions, 2, "the learned scheduler's precisions");
      !st.ok())
    return st;
  if (!o.model_path.empty()) {
    if (auto st = CheckClassifierModel(o.classifier_dir, o.model_path, o.force); !st.ok())
      return st;
  }
  if (auto st = CheckSwitchQuantile(o.switch_quantile, "switch quantile"); !st.ok()) return st;
  std::string device = o.device;
  if (device == "auto") device = torch::cuda::is_available() ? "cuda" : "cpu";
  std::vector<LearnedScheduler::Pair> pairs;
  const std::string manifest_path = models::JoinPath(o.classifier_dir, "manifest.json");
  const bool have_manifest = models::FileExists(manifest_path);
  absl::StatusOr<ClassifierManifest> manifest;
  if (have_manifest) {
    manifest = ReadClassifierManifest(o.classifier_dir);
    if (!manifest.ok()) return manifest.status();
  }
  for (size_t p = 0; p + 1 < o.precisions.size(); ++p) {
    const int hi = o.precisions[p], lo = o.precisions[p + 1];
    LearnedScheduler::Pair pair;
    absl::StatusOr<ClassifierState> state;
    std::string file;
    std::optional<KvClassifierSpec> manifest_spec;
    if (have_manifest) {
      auto it =
          std::find_if(manifest->pairs.begin(), manifest->pairs.end(),
                       [&](const ClassifierPairInfo& i) { return i.high == hi && i.low == lo; });
      if (it == manifest->pairs.end()) {
        std::vector<std::string> have;
        for (const auto& i : manifest->pairs) have.push_back(absl::StrCat(i.high, "->", i.low));
        return absl::NotFoundError(absl::StrCat(
            o.classifier_dir, " has no classifier for ", hi, "->", lo, " (it has ",
            absl::StrJoin(have, ", "), "); train one with pmpd-train --precisions matching"));
      }
      file = models::JoinPath(o.classifier_dir, it->file);
      state = ReadClassifierSafetensors(file, hi, lo);
      pair.candidate_steps = it->candidate_steps;
      manifest_spec = it->spec;
    } else {
      file = models::JoinPath(o.classifier_dir, absl::StrCat("classifier_", hi, "_", lo, ".pt"));
      if (!models::FileExists(file)) {
        return absl::NotFoundError(
            absl::StrCat(o.classifier_dir, " has neither manifest.json (pmpd-train) nor ",
                         "classifier_", hi, "_", lo, ".pt (PMPD reference) for ", hi, "->", lo));
      }
      state = ReadReferenceClassifierPt(file);
      const int n = o.reference_max_new_tokens;
      pair.candidate_steps = {0, n / 3, n / 3 * 2};
    }
    if (!state.ok()) return state.status();
    auto c = KvClassifier::FromState(*state, file, device);
    if (!c.ok()) return c.status();
    if ((*c)->spec().num_classes != static_cast<int64_t>(pair.candidate_steps.size()) + 1) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": ", (*c)->spec().num_classes,
                                                     " classes, expected ",
                                                     pair.candidate_steps.size() + 1));
    }
    if (manifest_spec && (*c)->spec().prompt_length_input != manifest_spec->prompt_length_input) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": its tensors are a ", ArchitectureName((*c)->spec()),
                       " classifier, manifest.json says ", ArchitectureName(*manifest_spec)));
    }
    if (manifest_spec && ((*c)->spec().kv_heads != manifest_spec->kv_heads ||
                          (*c)->spec().head_dim != manifest_spec->head_dim)) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": its tensors read ", (*c)->spec().kv_heads, " KV heads of dim ",
                       (*c)->spec().head_dim, ", manifest.json says ", manifest_spec->kv_heads,
                       " of dim ", manifest_spec->head_dim));
    }
    if (o.kv_heads > 0 &&
        ((*c)->spec().kv_heads != o.kv_heads || (*c)->spec().head_dim != o.head_dim)) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": the classifier reads ", (*c)->spec().kv_heads, " KV heads of dim ",
                       (*c)->spec().head_dim, ", the model has ", o.kv_heads, " of dim ",
                       o.head_dim, " (a classifier trained for another model?)"));
    }
    pair.classifier = std::move(*c);
    pairs.push_back(std::move(pair));
  }
  return std::unique_ptr<PrecisionScheduler>(
      new LearnedScheduler(o.precisions, std::move(pairs), o.switch_quantile));
}

}  // namespace pmpd::scheduler
