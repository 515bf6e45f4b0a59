#include "models/quantize_checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "models/anyprec_checkpoint.h"
#include "models/file_util.h"
#include "models/gguf.h"
#include "models/gguf_model.h"
#include "models/llama_config.h"

namespace pmpd::models {
namespace {

// Everything a partial layer depends on: the options, the source directory and its config.json.
std::string OptionsFingerprint(const QuantizeCheckpointOptions& o, const std::string& src_dir,
                               const std::string& config_text) {
  return absl::StrCat("S=", o.quant.seed_bits, ";P=", o.quant.parent_bits, ";seed=", o.quant.seed,
                      ";lloyd=", o.quant.max_lloyd_iterations, ";sens=", o.sensitivity_tag,
                      ";src=", src_dir, ";config=", std::hash<std::string>()(config_text));
}

absl::Status CopyIfExists(const std::string& src_dir, const std::string& out_dir,
                          const std::string& name) {
  const std::string src = JoinPath(src_dir, name);
  if (!FileExists(src)) return absl::OkStatus();
  auto bytes = ReadFileToString(src);
  if (!bytes.ok()) return bytes.status();
  return base::WriteFileAtomically(JoinPath(out_dir, name), *bytes);
}

absl::Status CopyTokenizer(const std::string& src_dir, const std::string& out_dir) {
  // GGUF source: its tokenizer metadata written out as Hugging Face tokenizer files.
  if (IsGgufPath(src_dir)) return WriteTokenizerFilesFromGguf(src_dir, out_dir);
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json", "generation_config.json"}) {
    if (auto st = CopyIfExists(src_dir, out_dir, f); !st.ok()) return st;
  }
  return absl::OkStatus();
}

TensorToWrite Copy(const TensorView& v) {
  return TensorToWrite{v.name, v.dtype, v.shape,
                       std::string(reinterpret_cast<const char*>(v.data), v.nbytes)};
}

// Float32 weights of a projection and its shape from the config; the source's mapped pages of it
// are released.
absl::StatusOr<std::vector<float>> LoadProjection(const WeightSource& src, const std::string& name,
                                                  int64_t n, int64_t k) {
  auto t = FindWithShape(src, name, {n, k});
  if (!t.ok()) return t.status();
  std::vector<float> w(n * k);
  if (auto st = ToFloat32(**t, w.data()); !st.ok()) return st;
  src.ReleasePages(**t);  // read once: do not keep the source resident
  return w;
}

// "model.layers.<l>.<projection>.weight": the tensors quantization replaces.
bool IsProjectionWeight(const std::string& name) {
  for (const auto& m : LlamaQuantizedModules()) {
    if (name.find("." + m + ".weight") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

absl::Status QuantizeCheckpoint(const std::string& src_dir, const std::string& out_dir,
                                const QuantizeCheckpointOptions& options,
                                const LayerSensitivities& sensitivities,
                                const std::function<bool(int, int, bool)>& on_layer,
                                QuantizeReport* report) {
  const int S = options.quant.seed_bits, P = options.quant.parent_bits;
  if (S < 2 || P > 8 || S > P) {
    return absl::InvalidArgumentError(absl::StrCat("precisions seed ", S, " and parent ", P,
                                                   " must satisfy 2 <= seed <= parent <= 8"));
  }
  auto config = LoadLlamaConfig(src_dir);
  if (!config.ok()) return config.status();
  auto existing = LoadAnyprecInfo(src_dir);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(src_dir, ": already an any-precision checkpoint"));
  }
  auto src = OpenWeights(src_dir, *config);
  if (!src.ok()) return src.status();
  const std::string partial = JoinPath(out_dir, ".partial");
  if (auto st = MakeDirs(partial); !st.ok()) return st;
  // A GGUF source has no config.json: its parsed config stands for it.
  auto config_text = IsGgufPath(src_dir) ? absl::StatusOr<std::string>(LlamaConfigToJson(*config))
                                         : ReadFileToString(JoinPath(src_dir, "config.json"));
  if (!config_text.ok()) return config_text.status();
  const std::string fingerprint = OptionsFingerprint(options, src_dir, *config_text);
  *report = QuantizeReport();
  const MatrixQuantizer quantize =
      options.quantize_matrix
          ? options.quantize_matrix
          : MatrixQuantizer([](const float* w, const float* f, int N, int K,
                               const AnyprecQuantizeOptions& o) -> absl::StatusOr<AnyprecMatrix> {
              return QuantizeAnyprec(w, f, N, K, o);
            });

  const int layers = config->num_hidden_layers;
  auto part_path = [&](int l) {
    return JoinPath(partial, absl::StrCat("layer_", l, ".safetensors"));
  };
  // A partial layer of this run's options holding exactly the tensors layer l needs; an error for
  // one left by other options; nullptr when there is none (an unreadable one is recomputed: the
  // atomic writes cannot leave a torn one).
  auto open_part = [&](int l) -> absl::StatusOr<std::unique_ptr<SafetensorsFile>> {
    const std::string part = part_path(l);
    if (!FileExists(part)) return nullptr;
    auto f = SafetensorsFile::Open(part);
    if (!f.ok()) return nullptr;
    if (!(*f)->metadata().count("options") || (*f)->metadata().at("options") != fingerprint) {
      return absl::FailedPreconditionError(absl::StrCat(
          part, ": left by a run with other options (",
          (*f)->metadata().count("options") ? (*f)->metadata().at("options") : "unknown", "; now ",
          fingerprint, "); delete ", partial, " or use another --out"));
    }
    std::map<std::string, std::vector<int64_t>> expected;
    for (const ProjectionShape& ms : LlamaProjections(*config)) {
      const std::string prefix = absl::StrCat("model.layers.", l, ".", ms.module);
      expected[prefix + ".qweight"] = {P, ms.out_features, (ms.in_features + 31) / 32};
      for (int b = S; b <= P; ++b)
        expected[absl::StrCat(prefix, ".lut", b)] = {ms.out_features, int64_t{1} << b};
    }
    bool complete = (*f)->tensors().size() == expected.size();
    for (const auto& [name, v] : (*f)->tensors()) {
      auto it = expected.find(name);
      complete = complete && it != expected.end() && it->second == v.shape;
    }
    if (!complete) return nullptr;
    return std::move(*f);
  };
  for (int step = 0; step < layers; ++step) {
    const int l = options.top_down ? layers - 1 - step : step;
    auto existing_part = open_part(l);
    if (!existing_part.ok()) return existing_part.status();
    const bool resumed = *existing_part != nullptr;
    existing_part->reset();
    if (!resumed && options.owns_layer && !options.owns_layer(l)) continue;  // another shard's
    if (!resumed) {
      std::map<std::string, std::vector<float>> sens;
      if (sensitivities) {
        auto got = sensitivities(l);
        if (!got.ok()) return got.status();
        sens = std::move(*got);
      }
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<TensorToWrite> layer_tensors;
      for (const ProjectionShape& ms : LlamaProjections(*config)) {
        const std::string prefix = absl::StrCat("model.layers.", l, ".", ms.module);
        auto w = LoadProjection(**src, prefix + ".weight", ms.out_features, ms.in_features);
        if (!w.ok()) return w.status();
        for (float x : *w) {
          if (!std::isfinite(x)) {
            return absl::InvalidArgumentError(absl::StrCat(
                src_dir, ": tensor \"", prefix, ".weight\" holds a NaN or infinite value"));
          }
        }
        const float* f = nullptr;
        auto it = sens.find(prefix);
        if (it != sens.end()) {
          if (it->second.size() != w->size()) {
            return absl::InvalidArgumentError(absl::StrCat("sensitivity of ", prefix, " has ",
                                                           it->second.size(),
                                                           " values, the weight ", w->size()));
          }
          f = it->second.data();
        }
        auto m = quantize(w->data(), f, static_cast<int>(ms.out_features),
                          static_cast<int>(ms.in_features), options.quant);
        if (!m.ok()) return m.status();
        for (auto& t : AnyprecMatrixTensors(prefix, *m)) layer_tensors.push_back(std::move(t));
        report->rows += ms.out_features;
      }
      if (auto st = WriteSafetensors(part_path(l), layer_tensors, {{"options", fingerprint}});
          !st.ok())
        return st;
      report->seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++report->layers_quantized;
    } else {
      ++report->layers_resumed;
    }
    if (on_layer && !on_layer(l, layers, resumed)) {
      return absl::CancelledError(absl::StrCat("stopped after layer ", l, "; rerun to resume"));
    }
  }
  // The checkpoint of these options is in place: another shard wrote it (and removed .partial).
  auto written_by_other = [&] {
    if (FileExists(partial)) return false;
    auto f = SafetensorsFile::Open(JoinPath(out_dir, "model.safetensors"));
    return f.ok() && (*f)->metadata().count("pmpd_anyprec") &&
           (*f)->metadata().at("pmpd_anyprec") == fingerprint;
  };
  // Under an exclusive lock on .partial, so that of shards finishing together one writes the
  // checkpoint and the others find it written (or layers still missing).
  const int lock_fd = ::open(partial.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd < 0 && written_by_other()) return absl::OkStatus();  // removed since this run began
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX) != 0) {
    const int err = errno;
    if (lock_fd >= 0) ::close(lock_fd);
    return absl::InternalError(absl::StrCat(partial, ": cannot lock: ", std::strerror(err)));
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }  // closing drops the flock
  } unlock{lock_fd};
  if (written_by_other()) return absl::OkStatus();
  // Every layer's partial file, opened once: counted, then streamed into the final file.
  std::vector<std::unique_ptr<SafetensorsFile>> parts;
  for (int l = 0; l < layers; ++l) {
    auto f = open_part(l);
    if (!f.ok()) return f.status();
    report->layers_missing += *f == nullptr;
    parts.push_back(std::move(*f));
  }
  if (report->layers_missing > 0) return absl::OkStatus();  // other shards' layers
  // The final file, streamed from the partial layers and the source's other tensors.
  struct Item {
    TensorSlice slice;
    const TensorView* source_view;  // null: the tensor lives in a partial layer's mapped file
  };
  std::vector<Item> items;
  for (const std::string& name : (*src)->Names()) {  // everything but the quantized projections
    if (IsProjectionWeight(name)) continue;
    const TensorView* v = *(*src)->Find(name);
    items.push_back({{v->name, v->dtype, v->shape, v->data, v->nbytes}, v});
  }
  for (const auto& part : parts) {
    for (const auto& [name, v] : part->tensors())
      items.push_back({{v.name, v.dtype, v.shape, v.data, v.nbytes}, nullptr});
  }
  // Canonical order, so a resumed run writes the same bytes as an uninterrupted one.
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.slice.name < b.slice.name; });
  std::vector<TensorSlice> slices;
  for (const Item& it : items) slices.push_back(it.slice);
  AnyprecInfo info;
  info.seed_bits = S;
  info.parent_bits = P;
  info.module_names = LlamaQuantizedModules();
  // The checkpoint's files replace the previous ones in one step (base::AtomicDirectory).
  auto dir = base::AtomicDirectory::Create(out_dir);
  if (!dir.ok()) return dir.status();
  if (auto st = WriteSafetensorsStreamed(
          JoinPath(dir->temp_path(), "model.safetensors"), slices,
          {{"format", "pt"}, {"pmpd_anyprec", fingerprint}},
          [&](size_t i) {
            const Item& it = items[i];
            if (it.source_view != nullptr) {
              (*src)->ReleasePages(*it.source_view);  // a no-op for tensors held in memory
            } else {
              ReleaseMappedPages(it.slice.data, it.slice.nbytes);
            }
          });
      !st.ok()) {
    return st;
  }
  parts.clear();
  if (auto st = WriteAnyprecConfig(dir->temp_path(), *config, info); !st.ok()) return st;
  if (auto st = CopyTokenizer(src_dir, dir->temp_path()); !st.ok()) return st;
  // .partial comes along until the new checkpoint is in place (a kill before that resumes from it).
  if (auto st = dir->Commit([](absl::string_view name) { return name == ".partial"; }); !st.ok())
    return st;
  if (auto st = base::RemoveTree(partial); !st.ok()) return st;
  report->written = true;
  return absl::OkStatus();
}

absl::Status WriteRtnCheckpoint(const std::string& src_dir, const std::string& out_dir, int bits) {
  if (bits < 1 || bits > 8)
    return absl::InvalidArgumentError(absl::StrCat("RTN bits must be in 1..8, got ", bits));
  auto config = LoadLlamaConfig(src_dir);
  if (!config.ok()) return config.status();
  auto src = OpenWeights(src_dir, *config);
  if (!src.ok()) return src.status();
  if (auto st = MakeDirs(out_dir); !st.ok()) return st;
  std::vector<TensorToWrite> out;
  for (const std::string& name : (*src)->Names()) {
    if (!IsProjectionWeight(name)) out.push_back(Copy(**(*src)->Find(name)));
  }
  for (int l = 0; l < config->num_hidden_layers; ++l) {
    for (const ProjectionShape& ms : LlamaProjections(*config)) {
      const std::string name = absl::StrCat("model.layers.", l, ".", ms.module, ".weight");
      auto w = LoadProjection(**src, name, ms.out_features, ms.in_features);
      if (!w.ok()) return w.status();
      std::vector<float> q = QuantizeRtn(w->data(), static_cast<int>(ms.out_features),
                                         static_cast<int>(ms.in_features), bits);
      TensorToWrite t{
          name, DType::kF32, {ms.out_features, ms.in_features}, std::string(q.size() * 4, '\0')};
      std::memcpy(t.bytes.data(), q.data(), t.bytes.size());
      out.push_back(std::move(t));
    }
  }
  auto dir = base::AtomicDirectory::Create(out_dir);
  if (!dir.ok()) return dir.status();
  if (auto st = WriteSafetensors(JoinPath(dir->temp_path(), "model.safetensors"), out,
                                 {{"format", "pt"}});
      !st.ok()) {
    return st;
  }
  if (IsGgufPath(src_dir)) {
    if (auto st = base::WriteFileAtomically(JoinPath(dir->temp_path(), "config.json"),
                                            LlamaConfigToJson(*config));
        !st.ok()) {
      return st;
    }
  } else if (auto st = CopyIfExists(src_dir, dir->temp_path(), "config.json"); !st.ok()) {
    return st;
  }
  if (auto st = CopyTokenizer(src_dir, dir->temp_path()); !st.ok()) return st;
  return dir->Commit();
}

}  // namespace pmpd::models
