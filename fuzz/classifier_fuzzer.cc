// Fuzz target: an exported classifier directory. First byte even: the rest is manifest.json beside
// a valid classifier_5_4.safetensors (1 KV head of dim 2, 3 classes), read, then loaded as the
// learned scheduler of every pair it lists. Odd: the rest is a classifier .safetensors file, read
// for pair 5->4, its spec derived, and when valid built and run on a small KV cache.
#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "inference/engine.h"
#include "scheduler_runtime/kv_classifier.h"

using namespace pmpd;

namespace {

const std::string& ClassifierDir() {
  static const std::string dir = [] {
    const std::string d = fuzz::ScratchDir() + "/classifier";
    ::mkdir(d.c_str(), 0755);
    scheduler::ClassifierState s;
    auto put = [&](const char* key, std::vector<int64_t> shape) {
      int64_t n = 1;
      for (int64_t x : shape) n *= x;
      std::vector<float> v(static_cast<size_t>(n));
      for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * static_cast<float>(i % 5) - 0.5f;
      s[key] = {std::move(shape), std::move(v)};
    };
    put("query", {1, 1, 2});
    put("ln.weight", {2});
    put("ln.bias", {2});
    put("project.0.weight", {2, 2});
    put("project.0.bias", {2});
    put("project.2.weight", {3, 2});
    put("project.2.bias", {3});
    if (!scheduler::WriteClassifierSafetensors(d + "/classifier_5_4.safetensors", s, 5, 4).ok())
      std::abort();
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Bytes in(data, size);
  const bool file = in.Read<uint8_t>() & 1;
  const std::string rest = in.Rest();
  if (!file) {
    const std::string dir = ClassifierDir();
    fuzz::WriteScratch("classifier/manifest.json", rest);
    auto m = scheduler::ReadClassifierManifest(dir);
    if (!m.ok()) return 0;
    for (const scheduler::ClassifierPairInfo& p : m->pairs) {
      scheduler::LearnedSchedulerOptions o;
      o.classifier_dir = dir;
      o.precisions = {p.high, p.low};
      o.device = "cpu";
      (void)scheduler::MakeLearnedScheduler(o);
    }
    return 0;
  }
  const std::string path = fuzz::WriteScratch("one_classifier.safetensors", rest);
  auto state = scheduler::ReadClassifierSafetensors(path, 5, 4);
  if (!state.ok()) return 0;
  auto spec = scheduler::SpecFromState(*state, path);
  if (!spec.ok() || spec->kv_heads * spec->head_dim > 4096) return 0;
  auto c = scheduler::KvClassifier::FromState(*state, path, "cpu");
  if (!c.ok()) return 0;
  const int64_t H = spec->kv_heads, D = spec->head_dim, T = 3;
  std::vector<float> k(static_cast<size_t>(H * T * D), 0.5f), v(k.size(), -0.25f);
  (void)(*c)->Logits(inference::HostKvView(k, v, static_cast<int>(H), T, static_cast<int>(D)));
  return 0;
}
