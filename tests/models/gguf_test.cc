// The GGUF reader (models/gguf.h) and GGUF files as Llama models (models/gguf_model.h): tiny files
// written by tests/models/gguf_writer.h with values computed here independently, every kind of
// broken input (each a clear error naming the file, never a crash), and the real SmolLM2 GGUF
// against Hugging Face transformers' dequantization (tests/golden/smollm2_gguf_tensors.json).
#include "models/gguf.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "models/anyprec_checkpoint.h"
#include "models/file_util.h"
#include "models/gguf_model.h"
#include "models/llama_config.h"
#include "models/model_fingerprint.h"
#include "tests/models/gguf_writer.h"
#include "tests/test_util.h"

namespace pmpd::models {
namespace {

using pmpd::testing::Expected;
using pmpd::testing::GgufWriter;
using pmpd::testing::kFfn;
using pmpd::testing::kHeadDim;
using pmpd::testing::kHeads;
using pmpd::testing::kHidden;
using pmpd::testing::kKvHeads;
using pmpd::testing::kLayers;
using pmpd::testing::kVocab;
using pmpd::testing::MakeTempDir;
using pmpd::testing::TinyLlama;
using pmpd::testing::TinyOptions;
using pmpd::testing::TinyTokens;
using pmpd::testing::WriteFile;
using W = GgufWriter;

std::string WriteGguf(const std::string& tag, const std::string& bytes) {
  const std::string path = MakeTempDir("gguf") + "/" + tag + ".gguf";
  WriteFile(path, bytes);
  return path;
}

// The status's message names `path` and contains `needle`.
void ExpectError(const absl::Status& st, const std::string& path, const std::string& needle) {
  ASSERT_FALSE(st.ok()) << "expected an error containing \"" << needle << "\"";
  const std::string m(st.message());
  EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << "the message does not start with the file: " << m;
  EXPECT_NE(m.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << m;
}

// ---------------------------------------------------------------------------------------------
// Valid files.

TEST(GgufTest, ReadsMetadataOfEveryValueType) {
  W w;
  w.Raw("u8", W::kU8, W::Le<uint8_t>(200));
  w.Raw("i8", W::kI8, W::Le<int8_t>(-100));
  w.Raw("u16", W::kU16, W::Le<uint16_t>(60000));
  w.Raw("i16", W::kI16, W::Le<int16_t>(-30000));
  w.U32("u32", 4000000000u);
  w.I32("i32", -2000000000);
  w.F32("f32", 0.25f);
  w.Bool("bool", true);
  w.String("string", "héllo");
  w.U64("u64", uint64_t{1} << 63);
  w.Raw("i64", W::kI64, W::Le<int64_t>(-(int64_t{1} << 62)));
  w.Raw("f64", W::kF64, W::Le<double>(1e-300));
  w.I32Array("ints", {3, -1, 4});
  w.StringArray("strings", {"x", "", "yz"});
  w.Raw("floats", W::kArray,
        W::Le<uint32_t>(W::kF32) + W::Le<uint64_t>(2) + W::Le(1.5f) + W::Le(-2.0f));
  w.Raw("bools", W::kArray,
        W::Le<uint32_t>(W::kBool) + W::Le<uint64_t>(2) + std::string("\1\0", 2));
  // [[1, 2], []] of u16, then an empty array of strings.
  w.Raw("nested", W::kArray,
        W::Le<uint32_t>(W::kArray) + W::Le<uint64_t>(2) + W::Le<uint32_t>(W::kU16) +
            W::Le<uint64_t>(2) + W::Le<uint16_t>(1) + W::Le<uint16_t>(2) +
            W::Le<uint32_t>(W::kU16) + W::Le<uint64_t>(0));
  w.Raw("empty", W::kArray, W::Le<uint32_t>(W::kString) + W::Le<uint64_t>(0));
  const std::string path = WriteGguf("metadata", w.Build().bytes);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_TRUE(g.tensors().empty());
  EXPECT_EQ(*g.GetInt("u8"), 200);
  EXPECT_EQ(*g.GetInt("i8"), -100);
  EXPECT_EQ(*g.GetInt("u16"), 60000);
  EXPECT_EQ(*g.GetInt("i16"), -30000);
  EXPECT_EQ(*g.GetInt("u32"), 4000000000);
  EXPECT_EQ(*g.GetInt("i32"), -2000000000);
  EXPECT_EQ(*g.GetFloat("f32"), 0.25);
  EXPECT_EQ(*g.GetFloat("u32"), 4e9);  // integers are numbers too
  EXPECT_EQ(*g.GetBool("bool"), true);
  EXPECT_EQ(*g.GetString("string"), "héllo");
  EXPECT_EQ(*g.GetInt("i64"), -(int64_t{1} << 62));
  EXPECT_EQ(*g.GetFloat("f64"), 1e-300);
  EXPECT_EQ(*g.GetIntArray("ints"), (std::vector<int64_t>{3, -1, 4}));
  EXPECT_EQ(*g.GetFloatArray("ints"), (std::vector<double>{3, -1, 4}));
  EXPECT_EQ(*g.GetStringArray("strings"), (std::vector<std::string>{"x", "", "yz"}));
  EXPECT_EQ(*g.GetFloatArray("floats"), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(g.metadata().at("bools").array_u, (std::vector<uint64_t>{1, 0}));
  const GgufValue& nested = g.metadata().at("nested");
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(nested.array_type, GgufValueType::kArray);
  EXPECT_EQ(nested.array[0].array_u, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(nested.array[1].size(), 0u);
  EXPECT_TRUE(g.GetStringArray("empty")->empty());

  // Typed access errors name the file and the key.
  ExpectError(g.GetInt("nope").status(), path, "missing metadata key \"nope\"");
  ExpectError(g.GetString("u8").status(), path, "metadata \"u8\" is U8; expected STRING");
  ExpectError(g.GetInt("string").status(), path,
              "metadata \"string\" is STRING; expected an integer");
  ExpectError(g.GetInt("u64").status(), path,
              "metadata \"u64\" = 9223372036854775808 is out of range");
  ExpectError(g.GetBool("u8").status(), path, "expected BOOL");
  ExpectError(g.GetStringArray("ints").status(), path,
              "is an array of I32; expected an array of STRING");
  ExpectError(g.GetIntArray("floats").status(), path, "expected an array of integers");
  ExpectError(g.GetFloatArray("strings").status(), path, "expected an array of numbers");
}

TEST(GgufTest, DequantizesEveryTypeToTheValuesWritten) {
  TinyLlama tiny;
  const std::string path = WriteGguf("tiny", tiny.w.Build().bytes);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  // Raw tensor infos: ggml order, types, and each tensor's bytes inside the file.
  const GgufTensorInfo* q = (*f)->FindTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->ne, (std::vector<int64_t>{kHidden, kHeads * kHeadDim}));
  EXPECT_EQ(q->shape(), (std::vector<int64_t>{kHeads * kHeadDim, kHidden}));
  EXPECT_EQ(GgmlTypeName(q->type), "Q4_0");
  EXPECT_EQ(q->nbytes, static_cast<size_t>(kHidden * kHeads * kHeadDim / 32 * 18));
  EXPECT_EQ(q->offset % 32, 0u);
  EXPECT_EQ((*f)->FindTensor("nope"), nullptr);

  auto src = OpenGgufWeights(path);
  ASSERT_TRUE(src.ok()) << src.status();
  std::vector<std::string> want;
  for (const auto& [name, e] : tiny.expected) want.push_back(name);
  EXPECT_EQ((*src)->Names(), want);  // rope_unused.weight is not a Llama tensor
  EXPECT_EQ((*src)->description(), path);
  for (const auto& [name, e] : tiny.expected) {
    SCOPED_TRACE(name);
    auto t = (*src)->Find(name);
    ASSERT_TRUE(t.ok()) << t.status();
    const TensorView& v = **t;
    EXPECT_EQ(v.dtype, DType::kF32);
    EXPECT_EQ(v.shape, e.shape);
    EXPECT_EQ(v.file, path);
    ASSERT_EQ(v.nbytes, e.values.size() * sizeof(float));
    const float* got = reinterpret_cast<const float*>(v.data);
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < e.values.size(); ++i) {
      // Exact: each value is representable in its type and d * q is exact in float32.
      if (std::memcmp(&got[i], &e.values[i], 4) != 0 && bad++ == 0) first_bad = i;
    }
    EXPECT_EQ(bad, 0u) << "first mismatch at " << first_bad << ": got " << got[first_bad]
                       << ", expected " << e.values[first_bad];
    auto again = (*src)->Find(name);  // cached: the same view
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *t);
  }
  ExpectError((*src)->Find("model.layers.9.mlp.up_proj.weight").status(), path,
              "missing tensor \"model.layers.9.mlp.up_proj.weight\"");
}

TEST(GgufTest, UndoesTheConverterQueryKeyPermutation) {
  // 2 heads of 4 rows: the converter stores Hugging Face rows in the order 0 2 1 3 | 4 6 5 7 (per
  // head: the first half and the second half interleaved). Stored row p holds the value hf(p), so
  // Hugging Face row j must come back holding j.
  const int hf_of_stored[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  W w;
  w.String("general.architecture", "llama");
  for (auto [k, v] : {std::pair<const char*, uint32_t>{"llama.block_count", 1},
                      {"llama.context_length", 16},
                      {"llama.embedding_length", 8},
                      {"llama.feed_forward_length", 8},
                      {"llama.attention.head_count", 2},
                      {"llama.attention.head_count_kv", 1},
                      {"llama.vocab_size", 4}}) {
    w.U32(k, v);
  }
  w.F32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  std::vector<float> q(8 * 3), k(4 * 3);
  for (int p = 0; p < 8; ++p) std::fill_n(&q[p * 3], 3, static_cast<float>(hf_of_stored[p]));
  // 1 KV head of 4 rows: 0 2 1 3.
  const int k_of_stored[4] = {0, 2, 1, 3};
  for (int p = 0; p < 4; ++p) std::fill_n(&k[p * 3], 3, static_cast<float>(k_of_stored[p]));
  w.Tensor("blk.0.attn_q.weight", {3, 8}, W::kTF32, W::F32Data(q));
  w.Tensor("blk.0.attn_k.weight", {3, 4}, W::kTF32, W::F32Data(k));
  w.Tensor("blk.0.attn_v.weight", {3, 4}, W::kTF32, W::F32Data(k));
  const std::string path = WriteGguf("permute", w.Build().bytes);
  auto src = OpenGgufWeights(path);
  ASSERT_TRUE(src.ok()) << src.status();
  for (const char* name :
       {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"}) {
    auto t = (*src)->Find(name);
    ASSERT_TRUE(t.ok()) << t.status();
    const float* x = reinterpret_cast<const float*>((*t)->data);
    for (int64_t j = 0; j < (*t)->shape[0]; ++j) {
      for (int c = 0; c < 3; ++c) EXPECT_EQ(x[j * 3 + c], j) << name << " row " << j;
    }
  }
  auto v = (*src)->Find("model.layers.0.self_attn.v_proj.weight");  // not permuted
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(reinterpret_cast<const float*>((*v)->data)[3], 2.0f);
}

TEST(GgufTest, LlamaConfigFromTinyFile) {
  TinyLlama tiny;
  const std::string path = WriteGguf("tiny_config", tiny.w.Build().bytes);
  auto c = LoadLlamaConfig(path);  // the directory loader takes the file
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->num_hidden_layers, kLayers);
  EXPECT_EQ(c->hidden_size, kHidden);
  EXPECT_EQ(c->intermediate_size, kFfn);
  EXPECT_EQ(c->num_attention_heads, kHeads);
  EXPECT_EQ(c->num_key_value_heads, kKvHeads);
  EXPECT_EQ(c->head_dim, kHeadDim);
  EXPECT_EQ(c->vocab_size, kVocab);
  EXPECT_EQ(c->max_position_embeddings, 256);
  EXPECT_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->rms_norm_eps, static_cast<double>(1e-6f));
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{2});
  EXPECT_EQ(c->torch_dtype, "float32");

  TinyOptions tied;
  tied.untied = false;
  TinyLlama t2(tied);
  const std::string p2 = WriteGguf("tiny_tied", t2.w.Build().bytes);
  auto c2 = LoadLlamaConfig(p2);
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_TRUE(c2->tie_word_embeddings);
}

TEST(GgufTest, LoadersTakeAGgufFileForADirectory) {
  TinyLlama tiny;
  const std::string path = WriteGguf("tiny_loaders", tiny.w.Build().bytes);
  EXPECT_TRUE(IsGgufPath(path));
  EXPECT_TRUE(IsGgufPath(path + ".missing.GGUF"));  // routed to the reader, which names it
  EXPECT_FALSE(IsGgufPath(MakeTempDir("gguf_dir")));
  const std::string blob =
      MakeTempDir("gguf_blob") + "/sha256-0123";  // a cache blob: the magic decides
  WriteFile(blob, tiny.w.Build().bytes);
  EXPECT_TRUE(IsGgufPath(blob));
  const std::string other = MakeTempDir("gguf_other") + "/config.json";
  WriteFile(other, "{}");
  EXPECT_FALSE(IsGgufPath(other));

  auto info = LoadAnyprecInfo(path);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->has_value());
  auto src = OpenWeights(path);
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_TRUE((*src)->Find("model.layers.1.mlp.down_proj.weight").ok());
  auto fp = FingerprintModelDir(path);
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ(*fp, *FingerprintFile(path));
  const std::string missing = MakeTempDir("gguf_missing") + "/none.gguf";
  ExpectError(LoadLlamaConfig(missing).status(), missing, "cannot open");
  ExpectError(OpenWeights(missing).status(), missing, "cannot open");
}

TEST(GgufTest, BpeVocabFromTinyFile) {
  TinyLlama tiny;
  const std::string path = WriteGguf("tiny_vocab", tiny.w.Build().bytes);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  auto v = BpeVocabFromGguf(**f);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->tokens, TinyTokens());
  EXPECT_EQ(v->merges, (std::vector<std::pair<std::string, std::string>>{
                           {"a", "b"}, {"ab", "c"}, {"Ġ", "ab"}}));
  EXPECT_EQ(v->added_ids, (std::vector<int>{1, 2, kVocab - 1}));
  EXPECT_EQ(v->added_special, (std::vector<bool>{true, true, false}));
  EXPECT_EQ(v->bos_id, 1);
  EXPECT_EQ(v->eos_id, 2);
  EXPECT_EQ(v->unk_id, 0);
  EXPECT_EQ(v->pad_id, 2);
  EXPECT_TRUE(v->add_bos);
  EXPECT_EQ(v->chat_template, "{{ messages }}");
  auto smollm = PreTokenizerRegexes("smollm");
  ASSERT_TRUE(smollm.ok()) << smollm.status();
  EXPECT_EQ(v->split_regexes, *smollm);
}

// ---------------------------------------------------------------------------------------------
// Broken files: each a clear error naming the file.

struct BadCase {
  std::string tag;
  std::function<void(W&)> edit;  // applied to a tiny valid file before building
  std::function<void(std::string&, const W::Built&)> patch;  // applied to the bytes (optional)
  std::string needle;
};

TEST(GgufTest, MalformedFilesGiveClearErrors) {
  constexpr uint64_t kHuge = uint64_t{1} << 60;
  auto set_u64 = [](std::string& s, size_t at, uint64_t v) { std::memcpy(&s[at], &v, 8); };
  auto nested = [](int depth) {
    std::string v;
    for (int d = 0; d < depth; ++d) v += W::Le<uint32_t>(W::kArray) + W::Le<uint64_t>(1);
    return v + W::Le<uint32_t>(W::kU8) + W::Le<uint64_t>(0);
  };
  const std::vector<BadCase> cases = {
      {"bad_magic", nullptr, [](std::string& s, const W::Built&) { s[3] = 'X'; },
       "bad magic \"GGUX\""},
      {"version1", [](W& w) { w.version = 1; }, nullptr, "GGUF version 1 is not supported"},
      {"version4", [](W& w) { w.version = 4; }, nullptr, "GGUF version 4 is not supported"},
      {"big_endian", [](W& w) { w.version = 3u << 24; }, nullptr, "looks big-endian"},
      {"huge_tensor_count", [&](W& w) { w.tensor_count_override = kHuge; }, nullptr,
       "tensor count 1152921504606846976 cannot fit"},
      {"huge_metadata_count", [&](W& w) { w.kv_count_override = kHuge; }, nullptr,
       "metadata count 1152921504606846976 cannot fit"},
      {"huge_key_length", nullptr,
       [&](std::string& s, const W::Built& b) { set_u64(s, b.metadata_begin, kHuge); },
       "the key of metadata entry 0: a string of 1152921504606846976 bytes"},
      {"huge_string_length", [&](W& w) { w.Raw("general.x", W::kString, W::Le(kHuge) + "abc"); },
       nullptr, "metadata \"general.x\": a string of 1152921504606846976 bytes"},
      {"huge_array_length",
       [&](W& w) { w.Raw("general.x", W::kArray, W::Le<uint32_t>(W::kI32) + W::Le(kHuge)); },
       nullptr, "metadata \"general.x\": array of 1152921504606846976 I32 elements cannot fit"},
      {"huge_string_array_length",
       [&](W& w) { w.Raw("general.x", W::kArray, W::Le<uint32_t>(W::kString) + W::Le(kHuge)); },
       nullptr, "array of 1152921504606846976 STRING elements cannot fit"},
      {"huge_string_in_array",
       [&](W& w) {
         w.Raw("general.x", W::kArray,
               W::Le<uint32_t>(W::kString) + W::Le<uint64_t>(2) + W::Str("a") + W::Le(kHuge));
       },
       nullptr, "metadata \"general.x\"[1]: a string of 1152921504606846976 bytes"},
      {"unknown_value_type", [](W& w) { w.Raw("general.x", 13, ""); }, nullptr,
       "metadata \"general.x\" has unknown value type 13"},
      {"unknown_element_type",
       [](W& w) { w.Raw("general.x", W::kArray, W::Le<uint32_t>(99) + W::Le<uint64_t>(0)); },
       nullptr, "unknown value type 99"},
      {"nested_too_deep", [&](W& w) { w.Raw("general.x", W::kArray, nested(9)); }, nullptr,
       "nested deeper than 8"},
      {"bad_bool", [](W& w) { w.Raw("general.x", W::kBool, std::string(1, '\2')); }, nullptr,
       "bool with byte value 2"},
      {"duplicate_key", [](W& w) { w.String("general.architecture", "llama"); }, nullptr,
       "duplicate metadata key \"general.architecture\""},
      {"alignment_0", [](W& w) { w.U32("general.alignment", 0); }, nullptr,
       "\"general.alignment\" must be a nonzero power of two, got 0"},
      {"alignment_3", [](W& w) { w.U32("general.alignment", 3); }, nullptr,
       "\"general.alignment\" must be a nonzero power of two, got 3"},
      {"alignment_type", [](W& w) { w.F32("general.alignment", 32); }, nullptr,
       "\"general.alignment\" is F32 (expected U32)"},
      {"unknown_tensor_type", [](W& w) { w.Tensor("x", {32}, 100, std::string(128, '\0')); },
       nullptr, "tensor \"x\" has unknown ggml type number 100"},
      {"removed_tensor_type", [](W& w) { w.Tensor("x", {32}, 4, std::string(128, '\0')); }, nullptr,
       "tensor \"x\" has unknown ggml type number 4"},
      {"n_dims_0", [](W& w) { w.Tensor("x", {}, W::kTF32, ""); }, nullptr,
       "tensor \"x\" has 0 dimensions (expected 1 to 4)"},
      {"n_dims_5",
       [](W& w) {
         w.Tensor("x", {1, 1, 1, 1, 1}, W::kTF32, std::string(4, '\0'));
       },
       nullptr, "tensor \"x\" has 5 dimensions"},
      {"dim_0",
       [](W& w) {
         w.Tensor("x", {4, 0}, W::kTF32, "");
       },
       nullptr, "tensor \"x\" has dimension ne[1] = 0"},
      {"numel_overflow",
       [](W& w) {
         w.Tensor("x", {1u << 31, 1u << 31, 1u << 31}, W::kTF32, "", 0);
       },
       nullptr, "tensor \"x\": element count overflows"},
      {"partial_block", [](W& w) { w.Tensor("x", {48}, W::kTQ4_0, std::string(36, '\0')); },
       nullptr, "tensor \"x\" has rows of 48 elements, not a multiple of the Q4_0 block size 32"},
      {"offset_out_of_range", [](W& w) { w.Tensor("x", {8}, W::kTF32, "", int64_t{1} << 40); },
       nullptr,
       "tensor \"x\": data at offset 1099511627776 (32 bytes of F32) runs past the end of the data "
       "section"},
      {"misaligned_offset", [](W& w) { w.Tensor("x", {8}, W::kTF32, std::string(32, '\0'), 4); },
       nullptr, "tensor \"x\": offset 4 is not a multiple of the alignment 32"},
      {"overlap", [](W& w) { w.Tensor("x", {8}, W::kTF32, std::string(32, '\0'), 32); }, nullptr,
       "overlap"},
      {"duplicate_tensor",
       [](W& w) { w.Tensor("output_norm.weight", {8}, W::kTF32, std::string(32, '\0')); }, nullptr,
       "duplicate tensor name \"output_norm.weight\""},
  };
  for (const BadCase& bc : cases) {
    SCOPED_TRACE(bc.tag);
    TinyLlama tiny;
    if (bc.edit) bc.edit(tiny.w);
    W::Built b = tiny.w.Build();
    if (bc.patch) bc.patch(b.bytes, b);
    const std::string path = WriteGguf(bc.tag, b.bytes);
    ExpectError(GgufFile::Open(path).status(), path, bc.needle);
    // Every loader reports the same error.
    ExpectError(LoadLlamaConfig(path).status(), path, bc.needle);
    ExpectError(OpenWeights(path).status(), path, bc.needle);
  }
}

TEST(GgufTest, TruncatedFilesFailCleanlyAtEveryCut) {
  TinyLlama tiny;
  const W::Built b = tiny.w.Build();
  const std::string path = MakeTempDir("gguf_cut") + "/cut.gguf";
  // Every cut inside the header, the first keys and the tensor infos, every 5th inside the rest of
  // the metadata (the token list), then every 97th byte of the data.
  std::vector<size_t> cuts;
  for (size_t n = 0; n < b.data_begin + 64; ++n) {
    if (n < b.metadata_begin + 256 || n >= b.infos_begin || n % 5 == 0) cuts.push_back(n);
  }
  for (size_t n = b.data_begin + 64; n < b.bytes.size(); n += 97) cuts.push_back(n);
  cuts.push_back(b.bytes.size() - 1);
  for (size_t n : cuts) {
    WriteFile(path, b.bytes.substr(0, n));
    auto f = GgufFile::Open(path);
    ASSERT_FALSE(f.ok()) << "cut at " << n << " of " << b.bytes.size() << " was accepted";
    const std::string m(f.status().message());
    ASSERT_EQ(m.rfind(path + ": invalid GGUF file: ", 0), 0u) << m;
    const bool says = m.find("truncated") != std::string::npos ||
                      (n == 0 && m.find("empty") != std::string::npos);
    ASSERT_TRUE(says) << "cut at " << n << ": " << m;
  }
  // Named cut points, with what the message says there.
  const std::pair<size_t, std::string> named[] = {
      {0, "the file is empty"},
      {2, "file truncated in the magic"},
      {6, "file truncated in the version"},
      {12, "file truncated in the tensor count"},
      {b.metadata_begin - 3, "file truncated in the metadata count"},
      {b.metadata_begin + 4, "metadata count"},  // the count no longer fits in what is left
      {b.infos_begin - 1, "truncated"},
      {b.infos_begin + 3, "truncated"},
      {b.data_begin - 1, "file truncated"},
      {b.data_begin + 40, "runs past the end of the data section"},
      {b.bytes.size() - 1, "runs past the end of the data section"},
  };
  for (const auto& [n, needle] : named) {
    WriteFile(path, b.bytes.substr(0, n));
    ExpectError(GgufFile::Open(path).status(), path, needle);
  }
}

TEST(GgufTest, CorruptBytesNeverCrash) {
  // Bytes of the header, metadata and tensor infos set to 0xff and to 0x7f in turn (every byte of
  // the header, the first keys and the infos; every 5th of the token list): the reader may accept
  // some (a changed value), but must never crash or read outside the file.
  TinyLlama tiny;
  const W::Built b = tiny.w.Build();
  const std::string path = MakeTempDir("gguf_flip") + "/flip.gguf";
  int refused = 0;
  for (size_t i = 0; i < b.data_begin; ++i) {
    if (i >= b.metadata_begin + 256 && i < b.infos_begin && i % 5 != 0) continue;
    for (char c : {'\xff', '\x7f'}) {
      std::string s = b.bytes;
      s[i] = c;
      WriteFile(path, s);
      auto f = GgufFile::Open(path);
      if (!f.ok()) {
        ++refused;
        ASSERT_EQ(std::string(f.status().message()).rfind(path + ": ", 0), 0u) << f.status();
        continue;
      }
      for (const GgufTensorInfo& t :
           (*f)->tensors()) {  // what was accepted dequantizes within bounds
        std::vector<float> out(static_cast<size_t>(t.numel()));
        (void)(*f)->DequantizeF32(t, out.data());
      }
    }
  }
  EXPECT_GT(refused, 0);
}

TEST(GgufTest, UnsupportedTypeIsRefusedAtDequantize) {
  TinyLlama tiny;
  tiny.w.Tensor("blk.0.extra.weight", {256, 2}, W::kTQ5_K, std::string(2 * 176, '\0'));
  const std::string path = WriteGguf("q5_k", tiny.w.Build().bytes);
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();  // a known type: its byte range is checked, the file opens
  const GgufTensorInfo* t = (*f)->FindTensor("blk.0.extra.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->nbytes, 352u);
  std::vector<float> out(512);
  ExpectError(
      (*f)->DequantizeF32(*t, out.data()), path,
      "tensor \"blk.0.extra.weight\" has type Q5_K; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1");

  // As a projection of the model: the error comes from Find.
  TinyLlama t2;
  t2.w.Tensor("blk.5.ffn_up.weight", {256, 2}, W::kTQ5_K, std::string(2 * 176, '\0'));
  const std::string p2 = WriteGguf("q5_k_model", t2.w.Build().bytes);
  auto src = OpenGgufWeights(p2);
  ASSERT_TRUE(src.ok()) << src.status();
  ExpectError((*src)->Find("model.layers.5.mlp.up_proj.weight").status(), p2,
              "tensor \"blk.5.ffn_up.weight\" has type Q5_K");
}

TEST(GgufTest, ModelLevelErrorsNameTheFile) {
  {
    TinyOptions o;
    o.architecture = "qwen2";
    TinyLlama tiny(o);
    const std::string path = WriteGguf("qwen2", tiny.w.Build().bytes);
    auto f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    ExpectError(LlamaConfigFromGguf(**f).status(), path,
                "architecture \"qwen2\" is not supported (llama only)");
    ExpectError(OpenGgufWeights(path).status(), path, "architecture \"qwen2\"");
    ExpectError(LoadLlamaConfig(path).status(), path, "architecture \"qwen2\"");
  }
  {
    W w;
    w.String("general.architecture", "llama");
    w.U32("llama.block_count", 1);
    const std::string path = WriteGguf("no_sizes", w.Build().bytes);
    ExpectError(LoadLlamaConfig(path).status(), path,
                "missing metadata key \"llama.embedding_length\"");
  }
  {
    TinyLlama tiny;
    tiny.w.U32("llama.attention.head_count_kv", 3);  // a duplicate key: refused before the config
    const std::string path = WriteGguf("dup_kv", tiny.w.Build().bytes);
    ExpectError(LoadLlamaConfig(path).status(), path, "duplicate metadata key");
  }
  {
    W w;
    w.String("general.architecture", "llama");
    for (auto [k, v] : {std::pair<const char*, uint32_t>{"llama.block_count", 1},
                        {"llama.context_length", 16},
                        {"llama.embedding_length", 64},
                        {"llama.feed_forward_length", 8},
                        {"llama.attention.head_count", 4},
                        {"llama.attention.head_count_kv", 3},
                        {"llama.vocab_size", 4}}) {
      w.U32(k, v);
    }
    w.F32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    const std::string path = WriteGguf("kv_heads", w.Build().bytes);
    ExpectError(LoadLlamaConfig(path).status(), path,
                "field \"llama.attention.head_count_kv\" (3) must divide num_attention_heads (4)");
  }
  {
    TinyLlama tiny;
    tiny.w.Tensor("blk.0.attn_q.bias", {64}, W::kTF32, std::string(256, '\0'));
    const std::string path = WriteGguf("bias", tiny.w.Build().bytes);
    ExpectError(OpenGgufWeights(path).status(), path, "tensor \"blk.0.attn_q.bias\": biases");
  }
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"}) {
    TinyOptions o;
    const bool no_tokens = std::string(key) == "tokenizer.ggml.tokens";
    o.tokens = !no_tokens;
    o.merges = no_tokens;
    TinyLlama tiny(o);
    const std::string path = WriteGguf(absl::StrCat("no_", key), tiny.w.Build().bytes);
    auto f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    ExpectError(BpeVocabFromGguf(**f).status(), path,
                absl::StrCat("missing tokenizer metadata \"", key, "\""));
  }
  {
    TinyOptions o;
    o.tokenizer_model = "llama";
    TinyLlama tiny(o);
    const std::string path = WriteGguf("spm_vocab", tiny.w.Build().bytes);
    auto f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    ExpectError(BpeVocabFromGguf(**f).status(), path, "tokenizer.ggml.model is \"llama\"");
  }
  {
    W w;
    w.String("tokenizer.ggml.model", "gpt2");
    w.StringArray("tokenizer.ggml.tokens", {"a", "b"});
    w.StringArray("tokenizer.ggml.merges", {"a b"});
    w.U32("tokenizer.ggml.eos_token_id", 7);
    const std::string path = WriteGguf("eos_range", w.Build().bytes);
    auto f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    ExpectError(
        BpeVocabFromGguf(**f).status(), path,
        "\"tokenizer.ggml.eos_token_id\" = 7 is not a token id (the vocabulary has 2 tokens)");
  }
  {
    W w;
    w.String("tokenizer.ggml.model", "gpt2");
    w.StringArray("tokenizer.ggml.tokens", {"a", "b"});
    w.StringArray("tokenizer.ggml.merges", {"ab"});
    const std::string path = WriteGguf("bad_merge", w.Build().bytes);
    auto f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    ExpectError(BpeVocabFromGguf(**f).status(), path, "\"tokenizer.ggml.merges\"[0] = \"ab\"");
  }
}

// ---------------------------------------------------------------------------------------------
// The real file against transformers.

TEST(GgufTest, SmolLM2ConfigAndVocabulary) {
  PMPD_REQUIRE_SMOLLM2();
  const std::string path = pmpd::testing::SmolLM2Path();
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ((*f)->tensors().size(), 272u);
  std::map<std::string, int> types;
  for (const auto& t : (*f)->tensors()) ++types[GgmlTypeName(t.type)];
  EXPECT_EQ(types, (std::map<std::string, int>{{"F32", 61}, {"Q4_1", 210}, {"Q8_0", 1}}));
  auto c = LlamaConfigFromGguf(**f);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_hidden_layers, 30);
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_EQ(c->intermediate_size, 1536);
  EXPECT_EQ(c->num_attention_heads, 9);
  EXPECT_EQ(c->num_key_value_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->vocab_size, 49152);
  EXPECT_EQ(c->rope_theta, 100000.0);
  EXPECT_EQ(c->max_position_embeddings, 8192);
  EXPECT_EQ(c->rms_norm_eps, static_cast<double>(1e-5f));
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{2});
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");

  auto v = BpeVocabFromGguf(**f);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->tokens.size(), 49152u);
  EXPECT_EQ(v->merges.size(), 48900u);
  EXPECT_EQ(v->bos_id, 1);
  EXPECT_EQ(v->eos_id, 2);
  EXPECT_EQ(v->unk_id, 0);
  EXPECT_EQ(v->pad_id, 2);
  EXPECT_FALSE(v->add_bos);
  EXPECT_EQ(v->tokens[2], "<|im_end|>");
  EXPECT_NE(v->chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_FALSE(v->added_ids.empty());
}

TEST(GgufTest, SmolLM2TensorsEqualTransformersBitForBit) {
  PMPD_REQUIRE_SMOLLM2();
  const auto golden = nlohmann::json::parse(
      pmpd::testing::ReadFile(pmpd::testing::SourcePath("tests/golden/smollm2_gguf_tensors.json")));
  auto src = OpenGgufWeights(pmpd::testing::SmolLM2Path());
  ASSERT_TRUE(src.ok()) << src.status();
  std::set<std::string> names;
  for (const auto& [name, e] : golden.at("tensors").items()) names.insert(name);
  const std::vector<std::string> ours = (*src)->Names();
  EXPECT_EQ(std::set<std::string>(ours.begin(), ours.end()), names);
  // The dequantization is exact in float32 (d * q is exact; one rounding in + m, the same in numpy
  // and here), so every tensor must equal transformers' bit for bit: its CRC-32 and the sampled
  // values with tolerance 0. The float64 sums differ only by summation order (numpy's pairwise
  // sums vs ours): |error| <= n * eps64 * sum|x|.
  double max_sample_diff = 0;
  for (const auto& [name, e] : golden.at("tensors").items()) {
    SCOPED_TRACE(name);
    auto t = (*src)->Find(name);
    ASSERT_TRUE(t.ok()) << t.status();
    const TensorView& v = **t;
    EXPECT_EQ(v.shape, e.at("shape").get<std::vector<int64_t>>());
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, v.data, static_cast<uInt>(v.nbytes)));
    EXPECT_EQ(crc, e.at("crc32").get<uint32_t>());
    const float* x = reinterpret_cast<const float*>(v.data);
    const int64_t n = v.numel();
    double sum = 0, sum_sq = 0, sum_abs = 0;
    for (int64_t i = 0; i < n; ++i) {
      sum += x[i];
      sum_sq += static_cast<double>(x[i]) * x[i];
      sum_abs += std::fabs(x[i]);
    }
    const double tol = static_cast<double>(n) * 2.3e-16;
    EXPECT_NEAR(sum, e.at("sum").get<double>(), tol * sum_abs);
    EXPECT_NEAR(sum_sq, e.at("sum_sq").get<double>(), tol * sum_sq);
    if (!e.contains("sample")) continue;
    const auto& s = e.at("sample");
    const auto rows = s.at("rows").get<std::vector<int64_t>>(),
               cols = s.at("cols").get<std::vector<int64_t>>();
    const int64_t row_len = v.shape.size() == 2 ? v.shape[1] : n;
    for (size_t r = 0; r < rows.size(); ++r) {
      for (size_t c = 0; c < cols.size(); ++c) {
        const float want = s.at("values")[r][c].get<float>(), got = x[rows[r] * row_len + cols[c]];
        max_sample_diff = std::max(max_sample_diff, std::fabs(static_cast<double>(got) - want));
        EXPECT_EQ(got, want) << "row " << rows[r] << " col " << cols[c];
      }
    }
  }
  EXPECT_EQ(max_sample_diff, 0.0);
  RecordProperty("max_sample_diff", std::to_string(max_sample_diff));
}

}  // namespace
}  // namespace pmpd::models
