// Writes the seed corpora of the fuzz targets: make_fuzz_seeds OUT_DIR SHARED_DIR SOURCE_DIR
// -> OUT_DIR/<target>/seed_<n>, each a valid input (or a valid input with the target's mode byte in
// front) made from the shared fixtures and from the writers the tests use. Valid seeds let the
// fuzzer start deep in each parser instead of at its magic number.
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/atomic_file.h"
#include "dataset/kv_dataset.h"
#include "hpo/search_space.h"
#include "hpo/study.h"
#include "models/bpe_tokenizer.h"
#include "models/file_util.h"
#include "models/gguf.h"
#include "models/gguf_model.h"
#include "models/safetensors.h"
#include "nlohmann/json.hpp"
#include "scheduler_runtime/kv_classifier.h"
#include "tests/models/gguf_writer.h"

using namespace pmpd;

namespace {

std::string out_dir;

std::string Read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "make_fuzz_seeds: error: %s: cannot read\n", path.c_str());
    std::exit(1);
  }
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void Seed(const std::string& target, const std::string& bytes) {
  static std::map<std::string, int> count;
  const std::string dir = out_dir + "/" + target;
  if (!models::MakeDirs(dir).ok()) std::exit(1);
  std::ofstream f(dir + "/seed_" + std::to_string(count[target]++), std::ios::binary);
  f << bytes;
  if (!f) std::exit(1);
}

void Must(const absl::Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "make_fuzz_seeds: error: %s: %s\n", what,
                 std::string(st.message()).c_str());
    std::exit(1);
  }
}

std::string Mode(int m, const std::string& bytes) {
  return std::string(1, static_cast<char>(m)) + bytes;
}

const std::string kMissing = "\x01missing";

// The stored entry `suffix` of a zip archive (central directory walk; torch writes stored entries);
// kMissing when there is none and it is not required.
std::string ZipEntry(const std::string& zip, const std::string& suffix, bool required = true) {
  auto u16 = [&](size_t at) {
    return uint32_t(uint8_t(zip[at])) | uint32_t(uint8_t(zip[at + 1])) << 8;
  };
  auto u32 = [&](size_t at) { return u16(at) | u16(at + 2) << 16; };
  for (size_t at = 0; at + 46 <= zip.size(); ++at) {
    if (u32(at) != 0x02014b50) continue;
    const uint32_t size = u32(at + 20), name_len = u16(at + 28), local = u32(at + 42);
    const std::string name = zip.substr(at + 46, name_len);
    if (name.size() < suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix))
      continue;
    const size_t data = local + 30 + u16(local + 26) + u16(local + 28);
    return zip.substr(data, size);
  }
  if (!required) return kMissing;
  std::fprintf(stderr, "make_fuzz_seeds: error: no %s in a zip\n", suffix.c_str());
  std::exit(1);
}

std::string Gunzip(const std::string& path, size_t max) {
  gzFile g = gzopen(path.c_str(), "rb");
  if (g == nullptr) std::exit(1);
  std::string out(max, '\0');
  const int n = gzread(g, out.data(), static_cast<unsigned>(max));
  gzclose(g);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string U16(const std::string& s) {  // the fuzzers' two-byte length prefix
  return std::string{static_cast<char>(s.size() & 0xff), static_cast<char>(s.size() >> 8)} + s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: make_fuzz_seeds OUT_DIR SHARED_DIR SOURCE_DIR\n");
    return 2;
  }
  out_dir = argv[1];
  const std::string shared = argv[2], src = argv[3];
  const std::string tmp = out_dir + "/.scratch";
  Must(models::MakeDirs(tmp), tmp.c_str());

  // config.json / tokenizer_config.json
  for (const char* f : {"/models/stories260K/config.json", "/fixtures/anyprec-tiny/config.json",
                        "/fixtures/anyprec-tiny/tokenizer_config.json",
                        "/models/stories260K/tokenizer_config.json"}) {
    Seed("config_json", Read(shared + f));
  }

  // safetensors: a file of several dtypes; an index over the fuzzer's two shards.
  using models::DType;
  Must(models::WriteSafetensors(
           tmp + "/t.safetensors",
           {{"w", DType::kF32, {2, 3}, std::string(24, '\x3f')},
            {"h", DType::kF16, {4}, std::string("\x00\x3c\x00\xbc\x00\x7c\xff\x7f", 8)},
            {"b", DType::kBF16, {2}, std::string("\x80\x3f\x00\xc0", 4)},
            {"i", DType::kI8, {3}, "\x01\xff\x7f"}},
           {{"format", "pt"}}),
       "safetensors seed");
  Seed("safetensors", Mode(0, Read(tmp + "/t.safetensors")));
  Seed("safetensors", Mode(1, nlohmann::json{{"metadata", {{"total_size", 28}}},
                                             {"weight_map",
                                              {{"a", "model-00001-of-00002.safetensors"},
                                               {"b", "model-00001-of-00002.safetensors"},
                                               {"c", "model-00002-of-00002.safetensors"}}}}
                                  .dump()));

  // torch.save archives: as files, and their pickles for the structured mode.
  for (const char* f : {"/tests/golden/torch_checkpoint_dtypes.pt",
                        "/tests/golden/reference_classifier/classifier_4_3.pt"}) {
    const std::string zip = Read(src + f);
    Seed("torch_checkpoint", Mode(0, zip));
    // The structured mode: the pickle, the storage count, then every storage data/0..n-1.
    std::string structured = U16(ZipEntry(zip, "/data.pkl"));
    std::vector<std::string> storages;
    for (int i = 0;; ++i) {
      const std::string s = ZipEntry(zip, "/data/" + std::to_string(i), /*required=*/false);
      if (s == kMissing) break;
      storages.push_back(s);
    }
    structured += static_cast<char>(storages.size());
    for (const std::string& s : storages) structured += U16(s);
    Seed("torch_checkpoint", Mode(1, structured));
  }

  // GGUF: the tests' tiny Llama (every tensor type we dequantize, tokenizer metadata).
  const std::string gguf = testing::TinyLlama().w.Build().bytes;
  Seed("gguf", gguf);
  testing::TinyOptions tied;
  tied.untied = false;
  Seed("gguf", testing::TinyLlama(tied).w.Build().bytes);

  // tokenizer.json: the tiny Llama's tokenizer as Hugging Face writes it.
  {
    const std::string path = tmp + "/tiny.gguf";
    std::ofstream(path, std::ios::binary) << gguf;
    Must(models::MakeDirs(tmp + "/tok"), "tokenizer.json seed");
    Must(models::WriteTokenizerFilesFromGguf(path, tmp + "/tok"), "tokenizer.json seed");
    Seed("tokenizer_json", Read(tmp + "/tok/tokenizer.json"));
  }

  // C4 / text streams.
  const std::string c4 =
      Gunzip(shared + "/data/c4/c4-validation.00000-of-00008.first800.json.gz", 6000);
  Seed("text_stream", Mode(0, c4.substr(0, c4.rfind('\n') + 1)));
  Seed(
      "text_stream",
      Mode(
          0,
          "{\"text\": \"a\"}\nnot json\n{\"text\": \"\"}\n{\"url\": 1}\n{\"text\": \"b\\u00e9\"}"));
  Seed("text_stream",
       Mode(1, "Once upon a time.<|endoftext|>\nThe end.<|endoftext|><|endoftext|>x"));
  Seed("text_stream", Mode(2, c4.substr(0, 2000)));

  // hpo: a real study's journal (every record kind), and its space.
  {
    auto space = hpo::SearchSpace::FromJson(nlohmann::json::parse(R"({"params": [
        {"name": "lr", "type": "float", "low": 1e-5, "high": 0.1, "log": true},
        {"name": "hidden", "type": "int", "low": 32, "high": 512, "step": 32},
        {"name": "act", "type": "categorical", "choices": ["relu", "gelu"]}]})"));
    Must(space.status(), "search space seed");
    hpo::StudyOptions o;
    o.sync = false;
    o.heartbeat_interval_s = 0;
    const std::string dir = tmp + "/study";
    {
      auto study = hpo::Study::Open(dir, *space, o);
      Must(study.status(), "study seed");
      for (int i = 0; i < 6; ++i) {
        auto t = (*study)->Ask();
        Must(t.status(), "study seed (ask)");
        (void)(*study)->Report(t->number(), 0, 0.5 * i);
        if (i == 3) {
          (void)(*study)->TellPruned(t->number());
        } else if (i == 4) {
          (void)(*study)->TellFailed(t->number(), "boom");
        } else {
          (void)(*study)->Tell(t->number(), 1.0 / (i + 1));
        }
      }
    }
    const std::string journal = Read(hpo::JournalPath(dir));
    Seed("hpo", Mode(0, journal));
    std::string lines;  // without the CRCs, which the structured mode adds back
    std::istringstream in(journal);
    for (std::string line; std::getline(in, line);) lines += line.substr(9) + "\n";
    Seed("hpo", Mode(1, lines));
    Seed("hpo", Mode(2, space->ToJson().dump()));
  }

  // Classifier directory: a manifest for the fuzzer's classifier_5_4.safetensors, and that file.
  {
    scheduler::ClassifierState s;
    auto put = [&](const char* key, std::vector<int64_t> shape, size_t n) {
      s[key] = {std::move(shape), std::vector<float>(n, 0.125f)};
    };
    put("query", {1, 1, 2}, 2);
    put("ln.weight", {2}, 2);
    put("ln.bias", {2}, 2);
    put("project.0.weight", {2, 2}, 4);
    put("project.0.bias", {2}, 2);
    put("project.2.weight", {3, 2}, 6);
    put("project.2.bias", {3}, 3);
    Must(scheduler::WriteClassifierSafetensors(tmp + "/c.safetensors", s, 5, 4), "classifier seed");
    Seed("classifier", Mode(1, Read(tmp + "/c.safetensors")));
    Seed("classifier", Mode(0, nlohmann::json{{"format", "pmpd-classifiers"},
                                              {"architecture", scheduler::kReferenceArchitecture},
                                              {"tool_version", "fuzz"},
                                              {"pairs",
                                               {{{"high", 5},
                                                 {"low", 4},
                                                 {"file", "classifier_5_4.safetensors"},
                                                 {"candidate_steps", {0, 8}},
                                                 {"kv_heads", 1},
                                                 {"head_dim", 2},
                                                 {"num_classes", 3},
                                                 {"dropout", 0.1},
                                                 {"metrics", {{"val_accuracy", 0.5}}}}}}}
                                   .dump()));
  }

  // KV dataset edit programs: none, and one edit of each kind.
  for (const std::string& program :
       {std::string(), std::string("\x00\x02\x01\x00\x00\x00\x05", 7),
        std::string("\x01\x0e\x00\x03", 4), std::string("\x02\x0a", 2),
        std::string("\x03\x12\x00\x00\x00\x00\x07", 7), std::string("\x04\x13", 2),
        std::string("\x05\x08\x00\x02\x05\x00\x00\x00\x00\x00\x00\x00", 12)}) {
    Seed("kv_dataset", program);
  }
  // pmpd-serve request bodies: a chat request with every PMPD extra, and a streamed completion.
  Seed("serve_request",
       Mode(0, R"({"model": "m", "messages": [{"role": "system", "content": "Be brief."},
           {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 16,
           "temperature": 0.7, "top_p": 0.9, "seed": 3, "precisions": [5, 4, 3],
           "scheduler": "static", "switch_steps": "12,48", "prefill_precision": 5, "n": 1})"));
  Seed("serve_request", Mode(1, R"({"prompt": "Once upon a time", "max_tokens": 8, "stream": true,
           "stream_options": {"include_usage": true}, "precision": 4, "stop": null})"));
  (void)base::RemoveTree(tmp);
  std::printf("make_fuzz_seeds: seed corpora in %s\n", out_dir.c_str());
  return 0;
}
