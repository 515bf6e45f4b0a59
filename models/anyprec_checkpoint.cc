#include "models/anyprec_checkpoint.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/atomic_file.h"
#include "kernels/ref/anyprec_ref.h"
#include "models/file_util.h"
#include "models/gguf.h"
#include "models/gguf_model.h"
#include "models/torch_checkpoint.h"

namespace pmpd::models {
namespace {

using json = nlohmann::json;

class SafetensorsSource : public WeightSource {
 public:
  explicit SafetensorsSource(std::unique_ptr<SafetensorsCheckpoint> ck, std::string desc)
      : ck_(std::move(ck)), desc_(std::move(desc)) {}
  absl::StatusOr<const TensorView*> Find(const std::string& name) const override {
    return ck_->Find(name);
  }
  std::vector<std::string> Names() const override { return ck_->Names(); }
  const std::string& description() const override { return desc_; }
  void ReleasePages(const TensorView& tensor) const override {
    ReleaseMappedPages(tensor.data, tensor.nbytes);
  }

 private:
  std::unique_ptr<SafetensorsCheckpoint> ck_;
  std::string desc_;
};

class TorchSource : public WeightSource {
 public:
  TorchSource(std::vector<TensorToWrite> tensors, std::string path)
      : tensors_(std::move(tensors)), path_(std::move(path)) {
    for (const auto& t : tensors_) {
      TensorView v;
      v.name = t.name;
      v.dtype = t.dtype;
      v.shape = t.shape;
      v.data = reinterpret_cast<const uint8_t*>(t.bytes.data());
      v.nbytes = t.bytes.size();
      v.file = path_;
      views_.emplace(t.name, std::move(v));
    }
  }
  absl::StatusOr<const TensorView*> Find(const std::string& name) const override {
    auto it = views_.find(name);
    if (it == views_.end())
      return absl::NotFoundError(absl::StrCat(path_, ": missing tensor \"", name, "\""));
    return &it->second;
  }
  std::vector<std::string> Names() const override {
    std::vector<std::string> n;
    for (const auto& [k, v] : views_) n.push_back(k);
    return n;
  }
  const std::string& description() const override { return path_; }
  bool requires_k_multiple_of_32() const override { return true; }

 private:
  std::vector<TensorToWrite> tensors_;
  std::string path_;
  std::map<std::string, TensorView> views_;
};

}  // namespace

const std::vector<std::string>& LlamaQuantizedModules() {
  static const std::vector<std::string> kModules = [] {
    std::vector<std::string> names;
    for (const auto& p : LlamaProjections(LlamaConfig())) names.push_back(p.module);
    return names;
  }();
  return kModules;
}

absl::StatusOr<std::optional<AnyprecInfo>> LoadAnyprecInfo(const std::string& model_dir) {
  if (IsGgufPath(model_dir)) return std::optional<AnyprecInfo>();  // a GGUF is never any-precision
  const std::string path = JoinPath(model_dir, "config.json");
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  if (absl::Status st = CheckNoNulByte(*text, path); !st.ok()) return st;
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  auto it = j.find("anyprec");
  if (it == j.end() || it->is_null()) return std::optional<AnyprecInfo>();
  const json& a = *it;
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": \"anyprec\" ", what));
  };
  if (!a.is_object()) return bad("must be an object");
  AnyprecInfo info;
  for (auto [key, out] : {std::pair<const char*, int*>{"seed_precision", &info.seed_bits},
                          {"parent_precision", &info.parent_bits}}) {
    auto f = a.find(key);
    if (f == a.end() || !f->is_number_integer())
      return bad(absl::StrCat("needs an integer \"", key, "\""));
    // Range-checked before narrowing: 4294967300 read as an int was 4.
    if (f->is_number_unsigned() ? f->get<uint64_t>() > 64
                                : (f->get<int64_t>() < 0 || f->get<int64_t>() > 64)) {
      return bad(absl::StrCat("\"", key, "\" ", f->dump(), " is out of range"));
    }
    *out = static_cast<int>(f->get<int64_t>());
  }
  if (info.seed_bits < kernels::kAnyprecMinBits || info.parent_bits > kernels::kAnyprecMaxBits ||
      info.seed_bits > info.parent_bits) {
    return bad(absl::StrCat("precisions seed ", info.seed_bits, " .. parent ", info.parent_bits,
                            " are outside ", kernels::kAnyprecMinBits,
                            " <= seed <= parent <= ", kernels::kAnyprecMaxBits));
  }
  if (auto g = a.find("group_count");
      g != a.end() &&
      !(g->is_number_integer() && g->get<int64_t>() == 1)) {  // wide: 2^32 + 1 is not 1
    return bad("group_count must be 1 (grouped any-precision is not supported)");
  }
  info.module_names = LlamaQuantizedModules();
  if (auto ac = a.find("arch_config"); ac != a.end() && ac->is_object()) {
    if (auto m = ac->find("model_name"); m != ac->end() && m->is_string())
      info.model_name = m->get<std::string>();
    if (auto l = ac->find("layers_name"); l != ac->end() && l->is_string())
      info.layers_name = l->get<std::string>();
    if (auto mods = ac->find("module_names"); mods != ac->end()) {
      if (!mods->is_array()) return bad("arch_config.module_names must be a list");
      info.module_names.clear();
      for (const auto& m : *mods) {
        if (!m.is_string()) return bad("arch_config.module_names must be strings");
        const std::string name = m.get<std::string>();
        const auto& known = LlamaQuantizedModules();
        if (std::find(known.begin(), known.end(), name) == known.end()) {
          return bad(absl::StrCat("names module \"", name, "\", which is not a Llama projection"));
        }
        info.module_names.push_back(name);
      }
    }
  }
  return std::optional<AnyprecInfo>(info);
}

namespace {

// The weights and config.json describe the same depth: a file with more layers than
// num_hidden_layers had its extra layers ignored silently.
absl::Status CheckLayerCount(const WeightSource& source, const LlamaConfig& config) {
  constexpr absl::string_view kPrefix = "model.layers.";
  for (const std::string& name : source.Names()) {
    if (!absl::StartsWith(name, kPrefix)) continue;
    const absl::string_view rest = absl::string_view(name).substr(kPrefix.size());
    int layer = 0;
    if (!absl::SimpleAtoi(rest.substr(0, rest.find('.')), &layer)) continue;
    if (layer >= config.num_hidden_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat(source.description(), ": holds tensor \"", name, "\" of layer ", layer,
                       ", but the config says num_hidden_layers = ", config.num_hidden_layers,
                       " (the weights and the config do not belong together)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeightsUnchecked(const std::string& model_dir) {
  if (IsGgufPath(model_dir)) return OpenGgufWeights(model_dir);
  if (FileExists(JoinPath(model_dir, "model.safetensors")) ||
      FileExists(JoinPath(model_dir, "model.safetensors.index.json"))) {
    auto ck = SafetensorsCheckpoint::Open(model_dir);
    if (!ck.ok()) return ck.status();
    return std::unique_ptr<WeightSource>(
        new SafetensorsSource(std::move(*ck), JoinPath(model_dir, "model.safetensors")));
  }
  const std::string bin = JoinPath(model_dir, "pytorch_model.bin");
  if (FileExists(bin)) {
    auto tensors = ReadTorchStateDict(bin);
    if (!tensors.ok()) return tensors.status();
    return std::unique_ptr<WeightSource>(new TorchSource(std::move(*tensors), bin));
  }
  return absl::NotFoundError(absl::StrCat(
      model_dir, ": no model.safetensors, model.safetensors.index.json or pytorch_model.bin"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeights(const std::string& model_dir,
                                                          const LlamaConfig& config) {
  auto source = OpenWeightsUnchecked(model_dir);
  if (!source.ok()) return source.status();
  if (absl::Status st = CheckLayerCount(**source, config); !st.ok()) return st;
  return source;
}

absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeights(const std::string& model_dir) {
  auto config = LoadLlamaConfig(model_dir);
  if (!config.ok()) return config.status();
  return OpenWeights(model_dir, *config);
}

absl::StatusOr<const TensorView*> FindWithShape(const WeightSource& source, const std::string& name,
                                                const std::vector<int64_t>& shape) {
  auto t = source.Find(name);
  if (!t.ok()) return t.status();
  if ((*t)->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat((*t)->file, ": tensor \"", name, "\" has shape ",
                                                   (*t)->ShapeString(), "; config.json implies [",
                                                   absl::StrJoin(shape, ", "), "]"));
  }
  return *t;
}

absl::StatusOr<AnyprecMatrix> LoadAnyprecMatrix(const WeightSource& source,
                                                const std::string& prefix, const AnyprecInfo& info,
                                                int out_features, int in_features) {
  const int S = info.seed_bits, P = info.parent_bits, N = out_features, K = in_features;
  if (source.requires_k_multiple_of_32() && K % 32 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source.description(), ": module ", prefix, " has in_features ", K,
                     "; the Any-Precision LLM layout needs a multiple of 32"));
  }
  auto check = [&](const std::string& name, DType dtype,
                   std::vector<int64_t> shape) -> absl::StatusOr<const TensorView*> {
    auto t = source.Find(name);
    if (!t.ok()) {
      return absl::NotFoundError(absl::StrCat(t.status().message(), " (any-precision module ",
                                              prefix, " with seed ", S, " and parent ", P,
                                              " bits)"));
    }
    if ((*t)->dtype != dtype || (*t)->shape != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat((*t)->file, ": tensor \"", name, "\" is ", DTypeName((*t)->dtype), " ",
                       (*t)->ShapeString(), "; config.json implies ", DTypeName(dtype), " [",
                       absl::StrJoin(shape, ", "), "]"));
    }
    return *t;
  };
  AnyprecMatrix m;
  m.n = N;
  m.k = K;
  m.seed_bits = S;
  m.parent_bits = P;
  auto q = check(prefix + ".qweight", DType::kI32, {P, N, kernels::AnyprecWordsPerRow(K)});
  if (!q.ok()) return q.status();
  m.qweight.resize((*q)->nbytes / 4);
  std::memcpy(m.qweight.data(), (*q)->data, (*q)->nbytes);
  for (int b = S; b <= P; ++b) {
    auto l = check(absl::StrCat(prefix, ".lut", b), DType::kF16, {N, int64_t{1} << b});
    if (!l.ok()) return l.status();
    m.luts.emplace_back((*l)->nbytes / 2);
    std::memcpy(m.luts.back().data(), (*l)->data, (*l)->nbytes);
  }
  return m;
}

std::vector<TensorToWrite> AnyprecMatrixTensors(const std::string& prefix, const AnyprecMatrix& m) {
  std::vector<TensorToWrite> out;
  TensorToWrite q{
      prefix + ".qweight", DType::kI32, {m.parent_bits, m.n, kernels::AnyprecWordsPerRow(m.k)}, {}};
  q.bytes.assign(reinterpret_cast<const char*>(m.qweight.data()), m.qweight.size() * 4);
  out.push_back(std::move(q));
  for (int b = m.seed_bits; b <= m.parent_bits; ++b) {
    TensorToWrite l{absl::StrCat(prefix, ".lut", b), DType::kF16, {m.n, int64_t{1} << b}, {}};
    const auto& lut = m.luts[b - m.seed_bits];
    l.bytes.assign(reinterpret_cast<const char*>(lut.data()), lut.size() * 2);
    out.push_back(std::move(l));
  }
  return out;
}

absl::Status WriteAnyprecConfig(const std::string& dir, const LlamaConfig& config,
                                const AnyprecInfo& info) {
  json j = json::parse(LlamaConfigToJson(config));
  j["anyprec"] = {{"seed_precision", info.seed_bits},
                  {"parent_precision", info.parent_bits},
                  {"group_count", 1},
                  {"arch_config",
                   {{"model_name", info.model_name},
                    {"layers_name", info.layers_name},
                    {"module_names", info.module_names}}},
                  {"format", "pmpd-safetensors-v1"}};
  return base::WriteFileAtomically(JoinPath(dir, "config.json"), j.dump(2));
}

}  // namespace pmpd::models
