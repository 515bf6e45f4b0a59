#include "models/anyprec_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/ref/anyprec_ref.h"
#include "models/file_util.h"
#include "models/quantize_checkpoint.h"
#include "models/random_llama.h"
#include "models/text_data.h"
#include "tests/test_util.h"

namespace pmpd::models {
namespace {

using pmpd::testing::MakeTempDir;
using pmpd::testing::ReadFile;
using pmpd::testing::SharedPath;
using pmpd::testing::WriteFile;

constexpr char kFixture[] = "fixtures/anyprec-tiny";

// Every quantized module of the packer's fixture decodes exactly at every precision.
TEST(AnyprecCheckpointTest, PackerFixtureDecodesExactlyAtEveryPrecision) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  const std::string dir = SharedPath(kFixture);
  auto info = LoadAnyprecInfo(dir);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(info->has_value());
  EXPECT_EQ((*info)->seed_bits, 2);
  EXPECT_EQ((*info)->parent_bits, 4);
  auto config = LoadLlamaConfig(dir);
  ASSERT_TRUE(config.ok());
  auto src = OpenWeights(dir);
  ASSERT_TRUE(src.ok()) << src.status();
  auto expected = SafetensorsFile::Open(SharedPath("fixtures/anyprec-tiny/expected.safetensors"));
  ASSERT_TRUE(expected.ok());
  const int H = config->hidden_size, I = config->intermediate_size;
  const std::map<std::string, std::pair<int, int>> shapes = {
      {"self_attn.q_proj", {config->q_dim(), H}},
      {"self_attn.k_proj", {config->kv_dim(), H}},
      {"self_attn.v_proj", {config->kv_dim(), H}},
      {"self_attn.o_proj", {H, config->q_dim()}},
      {"mlp.gate_proj", {I, H}},
      {"mlp.up_proj", {I, H}},
      {"mlp.down_proj", {H, I}}};
  int checked = 0;
  for (int l = 0; l < config->num_hidden_layers; ++l) {
    for (const auto& module : (*info)->module_names) {
      const std::string prefix = absl::StrCat("model.layers.", l, ".", module);
      const auto [N, K] = shapes.at(module);
      auto m = LoadAnyprecMatrix(**src, prefix, **info, N, K);
      ASSERT_TRUE(m.ok()) << m.status();
      std::vector<uint8_t> codes(N * K);
      kernels::AnyprecUnpackRef(m->qweight.data(), N, K, 4, 4, codes.data());
      ASSERT_EQ(0, std::memcmp(codes.data(), (*expected)->tensors().at(prefix + ".codes").data,
                               codes.size()))
          << prefix;
      for (int p = 2; p <= 4; ++p) {
        std::vector<float> w(N * K), want(N * K);
        kernels::AnyprecDequantRef(m->qweight.data(), m->lut(p), N, K, 4, p, w.data());
        std::memcpy(want.data(), (*expected)->tensors().at(absl::StrCat(prefix, ".w", p)).data,
                    want.size() * 4);
        for (int i = 0; i < N * K; ++i)
          ASSERT_EQ(w[i], want[i]) << prefix << " p " << p << " index " << i;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 42);
}

// A small random model with K = 176 (not a multiple of 32) through our own format.
std::string RandomModel(const std::string& tag) {
  const std::string dir = MakeTempDir(tag);
  LlamaConfig c = TinyDemoConfig(64);
  EXPECT_TRUE(WriteRandomLlama(dir, c, 11).ok());
  return dir;
}

QuantizeCheckpointOptions Options() {
  QuantizeCheckpointOptions o;
  o.quant.seed_bits = 2;
  o.quant.parent_bits = 6;
  o.quant.threads = 2;
  return o;
}

TEST(AnyprecCheckpointTest, QuantizeSaveLoadIsBitExact) {
  const std::string src = RandomModel("ap_src");
  const std::string out = MakeTempDir("ap_out");
  QuantizeReport report;
  ASSERT_TRUE(QuantizeCheckpoint(src, out, Options(), {}, {}, &report).ok());
  EXPECT_EQ(report.layers_quantized, 2);
  auto info = LoadAnyprecInfo(out);
  ASSERT_TRUE(info.ok() && info->has_value()) << info.status();
  auto loaded = OpenWeights(out);
  ASSERT_TRUE(loaded.ok());
  auto orig = OpenWeights(src);
  ASSERT_TRUE(orig.ok());
  const LlamaConfig c = TinyDemoConfig(64);
  for (auto [module, n, k] :
       {std::tuple<const char*, int, int>{"mlp.down_proj", c.hidden_size, c.intermediate_size},
        {"self_attn.k_proj", c.kv_dim(), c.hidden_size}}) {
    const std::string prefix = absl::StrCat("model.layers.1.", module);
    std::vector<float> w(n * k);
    ASSERT_TRUE(ToFloat32(**(*orig)->Find(prefix + ".weight"), w.data()).ok());
    const AnyprecMatrix mem = QuantizeAnyprec(w.data(), nullptr, n, k, Options().quant);
    auto disk = LoadAnyprecMatrix(**loaded, prefix, **info, n, k);
    ASSERT_TRUE(disk.ok()) << disk.status();
    EXPECT_EQ(disk->qweight, mem.qweight) << prefix;
    EXPECT_EQ(disk->luts, mem.luts) << prefix;
  }
  // Unquantized tensors are carried over byte for byte.
  auto a = (*orig)->Find("model.embed_tokens.weight");
  auto b = (*loaded)->Find("model.embed_tokens.weight");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(0, std::memcmp((*a)->data, (*b)->data, (*a)->nbytes));
  EXPECT_FALSE((*loaded)->Find("model.layers.0.mlp.up_proj.weight").ok());
}

TEST(AnyprecCheckpointTest, InterruptedQuantizationResumesPerLayer) {
  const std::string src = RandomModel("ap_resume_src");
  const std::string whole = MakeTempDir("ap_whole"), resumed = MakeTempDir("ap_resumed");
  QuantizeReport report;
  ASSERT_TRUE(QuantizeCheckpoint(src, whole, Options(), {}, {}, &report).ok());
  auto st = QuantizeCheckpoint(
      src, resumed, Options(), {}, [](int l, int, bool) { return l < 0; }, &report);
  ASSERT_EQ(st.code(), absl::StatusCode::kCancelled) << st;
  EXPECT_TRUE(FileExists(resumed + "/.partial/layer_0.safetensors"));
  EXPECT_FALSE(FileExists(resumed + "/model.safetensors"));
  // Another configuration must not reuse the partial layer.
  QuantizeCheckpointOptions other = Options();
  other.quant.parent_bits = 5;
  st = QuantizeCheckpoint(src, resumed, other, {}, {}, &report);
  ASSERT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("other options"), std::string::npos) << st;
  ASSERT_TRUE(QuantizeCheckpoint(src, resumed, Options(), {}, {}, &report).ok());
  EXPECT_EQ(report.layers_resumed, 1);
  EXPECT_EQ(report.layers_quantized, 1);
  EXPECT_TRUE(ReadFile(whole + "/model.safetensors") == ReadFile(resumed + "/model.safetensors"))
      << "a resumed run must write the same bytes as an uninterrupted one";
  EXPECT_FALSE(FileExists(resumed + "/.partial"));
}

// The streamed pipeline's order (last layer first, sensitivities asked per layer, a pluggable
// matrix quantizer) writes the same bytes as the plain one; resumed layers are never asked for
// sensitivities; a quantizer's error stops the run with its message.
TEST(AnyprecCheckpointTest, TopDownPerLayerSensitivitiesAndPluggableQuantizer) {
  const std::string src = RandomModel("ap_td_src");
  const LlamaConfig c = TinyDemoConfig(64);
  // Deterministic non-uniform sensitivities per layer.
  auto sens = [&](int l) -> absl::StatusOr<std::map<std::string, std::vector<float>>> {
    std::map<std::string, std::vector<float>> out;
    for (const ProjectionShape& ms : LlamaProjections(c)) {
      std::vector<float> f(ms.out_features * ms.in_features);
      for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>((i * 7 + l) % 13) + 0.5f;
      out[absl::StrCat("model.layers.", l, ".", ms.module)] = std::move(f);
    }
    return out;
  };
  QuantizeReport report;
  const std::string plain = MakeTempDir("ap_td_plain");
  ASSERT_TRUE(QuantizeCheckpoint(src, plain, Options(), sens, {}, &report).ok());
  QuantizeCheckpointOptions td = Options();
  td.top_down = true;
  int calls = 0;
  td.quantize_matrix = [&](const float* w, const float* f, int N, int K,
                           const AnyprecQuantizeOptions& o) -> absl::StatusOr<AnyprecMatrix> {
    ++calls;
    EXPECT_NE(f, nullptr);
    return QuantizeAnyprec(w, f, N, K, o);
  };
  std::vector<int> asked, order;
  auto recorded = [&](int l) {
    asked.push_back(l);
    return sens(l);
  };
  const std::string stopped = MakeTempDir("ap_td");
  auto st = QuantizeCheckpoint(
      src, stopped, td, recorded,
      [&](int l, int, bool) {
        order.push_back(l);
        return false;  // stop after the first layer
      },
      &report);
  ASSERT_EQ(st.code(), absl::StatusCode::kCancelled) << st;
  EXPECT_EQ(order, std::vector<int>({1}));
  ASSERT_TRUE(QuantizeCheckpoint(src, stopped, td, recorded, {}, &report).ok());
  EXPECT_EQ(asked, std::vector<int>({1, 0})) << "layer 1 resumed, so asked once";
  EXPECT_EQ(report.layers_resumed, 1);
  EXPECT_EQ(calls, 14);
  EXPECT_TRUE(ReadFile(plain + "/model.safetensors") == ReadFile(stopped + "/model.safetensors"));
  td.quantize_matrix = [](const float*, const float*, int, int,
                          const AnyprecQuantizeOptions&) -> absl::StatusOr<AnyprecMatrix> {
    return absl::UnavailableError("quantizer failed on purpose");
  };
  st = QuantizeCheckpoint(src, MakeTempDir("ap_td_fail"), td, sens, {}, &report);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  auto failing_sens = [](int) -> absl::StatusOr<std::map<std::string, std::vector<float>>> {
    return absl::InternalError("sensitivity pass failed");
  };
  st = QuantizeCheckpoint(src, MakeTempDir("ap_td_fail2"), Options(), failing_sens, {}, &report);
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal) << st;
}

class FakeSource : public WeightSource {
 public:
  explicit FakeSource(std::unique_ptr<WeightSource> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<const TensorView*> Find(const std::string& name) const override {
    return inner_->Find(name);
  }
  std::vector<std::string> Names() const override { return inner_->Names(); }
  const std::string& description() const override { return inner_->description(); }
  bool requires_k_multiple_of_32() const override { return true; }

 private:
  std::unique_ptr<WeightSource> inner_;
};

TEST(AnyprecCheckpointTest, BadInputGivesClearErrors) {
  const std::string src = RandomModel("ap_bad_src");
  const std::string out = MakeTempDir("ap_bad");
  QuantizeReport report;
  ASSERT_TRUE(QuantizeCheckpoint(src, out, Options(), {}, {}, &report).ok());
  auto info = LoadAnyprecInfo(out);
  ASSERT_TRUE(info.ok() && info->has_value());
  auto w = OpenWeights(out);
  ASSERT_TRUE(w.ok());
  const LlamaConfig c = TinyDemoConfig(64);
  {
    SCOPED_TRACE("planes inconsistent with the config");
    auto m = LoadAnyprecMatrix(**w, "model.layers.0.mlp.down_proj", **info, c.hidden_size + 1,
                               c.intermediate_size);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find(
                  "qweight\" is I32 [6, 64, 6]; config.json implies I32 [6, 65, 6]"),
              std::string::npos)
        << m.status();
  }
  {
    SCOPED_TRACE("a precision the file does not hold");
    AnyprecInfo wider = **info;
    wider.parent_bits = 7;
    auto m = LoadAnyprecMatrix(**w, "model.layers.0.mlp.down_proj", wider, c.hidden_size,
                               c.intermediate_size);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("qweight"), std::string::npos) << m.status();
  }
  {
    SCOPED_TRACE("K not a multiple of 32 where the format needs it");
    FakeSource strict(std::move(*w));
    auto m = LoadAnyprecMatrix(strict, "model.layers.0.mlp.down_proj", **info, c.hidden_size,
                               c.intermediate_size);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find(
                  "in_features 176; the Any-Precision LLM layout needs a multiple of 32"),
              std::string::npos)
        << m.status();
  }
  {
    SCOPED_TRACE("missing or malformed any-precision metadata");
    const std::string cfg = ReadFile(out + "/config.json");
    std::string broken = cfg;
    broken.replace(broken.find("\"seed_precision\""), 16, "\"seed_bits\"");
    WriteFile(out + "/config.json", broken);
    auto bad = LoadAnyprecInfo(out);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("needs an integer \"seed_precision\""), std::string::npos)
        << bad.status();
    std::string range = cfg;
    range.replace(range.find("\"parent_precision\": 6"), 21, "\"parent_precision\": 9");
    WriteFile(out + "/config.json", range);
    bad = LoadAnyprecInfo(out);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("outside 2 <= seed <= parent <= 8"), std::string::npos)
        << bad.status();
    // Issue 17: 4294967300 narrowed to an int was read as 4, and group_count 4294967297 as 1.
    std::string wide = cfg;
    wide.replace(wide.find("\"parent_precision\": 6"), 21, "\"parent_precision\": 4294967300");
    WriteFile(out + "/config.json", wide);
    bad = LoadAnyprecInfo(out);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("\"parent_precision\" 4294967300 is out of range"),
              std::string::npos)
        << bad.status();
    std::string groups = cfg;
    groups.replace(groups.find("\"group_count\": 1"), 16, "\"group_count\": 4294967297");
    WriteFile(out + "/config.json", groups);
    bad = LoadAnyprecInfo(out);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("group_count must be 1"), std::string::npos)
        << bad.status();
  }
  {
    SCOPED_TRACE("a NaN weight");
    const std::string nan_src = MakeTempDir("ap_nan");
    auto f = SafetensorsFile::Open(src + "/model.safetensors");
    ASSERT_TRUE(f.ok());
    std::vector<TensorToWrite> ts;
    for (const auto& [name, v] : (*f)->tensors()) {
      ts.push_back(
          {name, v.dtype, v.shape, std::string(reinterpret_cast<const char*>(v.data), v.nbytes)});
      if (name == "model.layers.1.mlp.up_proj.weight") {
        const float nan = std::nanf("");
        std::memcpy(ts.back().bytes.data() + 12, &nan, 4);
      }
    }
    ASSERT_TRUE(WriteSafetensors(nan_src + "/model.safetensors", ts).ok());
    WriteFile(nan_src + "/config.json", ReadFile(src + "/config.json"));
    auto st = QuantizeCheckpoint(nan_src, MakeTempDir("ap_nan_out"), Options(), {}, {}, &report);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("model.layers.1.mlp.up_proj.weight\" holds a NaN"),
              std::string::npos)
        << st;
  }
  {
    SCOPED_TRACE("unsupported quantization precisions");
    QuantizeCheckpointOptions o = Options();
    o.quant.seed_bits = 1;
    auto st = QuantizeCheckpoint(src, MakeTempDir("ap_s1"), o, {}, {}, &report);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("2 <= seed <= parent <= 8"), std::string::npos) << st;
  }
}

TEST(TextDataTest, JsonLinesGzipRangesAndErrors) {
  const std::string dir = MakeTempDir("text");
  WriteFile(
      dir + "/a.jsonl",
      "{\"text\": \"one\"}\nnot json\n{\"text\": \"\"}\n{\"url\": 1}\n\n{\"text\": \"two\"}\n");
  auto docs = ReadTextDocs(dir + "/a.jsonl");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs->texts, std::vector<std::string>({"one", "two"}));
  EXPECT_EQ(docs->malformed_lines, 2);
  EXPECT_EQ(docs->empty_texts, 1);
  WriteFile(dir + "/s.txt",
            "first story<|endoftext|>second story<|endoftext|>third story<|endoftext|>fourth");
  auto all = ReadTextDocs(dir + "/s.txt");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->texts.size(), 4u);
  auto tail = ReadTextDocs(dir + "/s.txt", 0, 0.5, 1.0);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->texts, std::vector<std::string>({"third story", "fourth"}));
  WriteFile(dir + "/empty.jsonl", "\n{\"text\": \"  \"}\n");
  auto empty = ReadTextDocs(dir + "/empty.jsonl");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("no usable document"), std::string::npos);
  WriteFile(dir + "/bad.json.gz", std::string("\x1f\x8b\x08\x00garbage-not-deflate", 23));
  auto gz = ReadTextDocs(dir + "/bad.json.gz");
  ASSERT_FALSE(gz.ok());
  EXPECT_NE(gz.status().message().find(dir + "/bad.json.gz"), std::string::npos) << gz.status();
  auto missing = ReadTextDocs(dir + "/nope.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.json"), std::string::npos);
}

TEST(TextDataTest, ReadsSharedC4Gzip) {
  PMPD_REQUIRE_SHARED("data/c4/c4-validation.00000-of-00008.first800.json.gz");
  auto docs = ReadTextDocs(SharedPath("data/c4/c4-validation.00000-of-00008.first800.json.gz"));
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs->texts.size(), 800u);
  EXPECT_EQ(docs->malformed_lines, 0);
}

}  // namespace
}  // namespace pmpd::models
