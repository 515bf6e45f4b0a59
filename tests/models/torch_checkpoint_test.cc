#include "models/torch_checkpoint.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "kernels/half.h"
#include "tests/models/zip_writer.h"
#include "tests/test_util.h"

namespace pmpd::models {
namespace {

using pmpd::testing::MakeTempDir;
using pmpd::testing::MakeZip;
using pmpd::testing::PutLE;
using pmpd::testing::ReadFile;
using pmpd::testing::SharedPath;
using pmpd::testing::SourcePath;
using pmpd::testing::WriteFile;
using pmpd::testing::ZipRecord;

constexpr char kFixture[] = "fixtures/anyprec-tiny/pytorch_model.bin";

// ---- Decoding the returned bytes ----

// Values of a floating-point tensor, widened exactly to double.
std::vector<double> FloatValues(const TensorToWrite& t) {
  const size_t es = DTypeSize(t.dtype);
  std::vector<double> out(t.bytes.size() / es);
  for (size_t i = 0; i < out.size(); ++i) {
    const char* p = t.bytes.data() + i * es;
    uint16_t h;
    float f;
    switch (t.dtype) {
      case DType::kF16:
        std::memcpy(&h, p, 2);
        out[i] = kernels::F16ToF32(h);
        break;
      case DType::kBF16:
        std::memcpy(&h, p, 2);
        out[i] = kernels::Bf16ToF32(h);
        break;
      case DType::kF32:
        std::memcpy(&f, p, 4);
        out[i] = f;
        break;
      case DType::kF64:
        std::memcpy(&out[i], p, 8);
        break;
      default:
        ADD_FAILURE() << t.name << " is not floating point";
        return {};
    }
  }
  return out;
}

// Values of an integer or bool tensor.
std::vector<int64_t> IntValues(const TensorToWrite& t) {
  const size_t es = DTypeSize(t.dtype);
  std::vector<int64_t> out(t.bytes.size() / es);
  for (size_t i = 0; i < out.size(); ++i) {
    const char* p = t.bytes.data() + i * es;
    switch (t.dtype) {
      case DType::kBool:
      case DType::kU8:
        out[i] = static_cast<uint8_t>(*p);
        break;
      case DType::kI8:
        out[i] = static_cast<int8_t>(*p);
        break;
      case DType::kI16: {
        int16_t v;
        std::memcpy(&v, p, 2);
        out[i] = v;
        break;
      }
      case DType::kI32: {
        int32_t v;
        std::memcpy(&v, p, 4);
        out[i] = v;
        break;
      }
      case DType::kI64: {
        int64_t v;
        std::memcpy(&v, p, 8);
        out[i] = v;
        break;
      }
      default:
        ADD_FAILURE() << t.name << " is not an integer tensor";
        return {};
    }
  }
  return out;
}

bool IsFloat(DType d) {
  return d == DType::kF16 || d == DType::kBF16 || d == DType::kF32 || d == DType::kF64;
}

// Compares a tensor's values with a JSON list, exactly (the golden files hold exact values).
void ExpectValues(const TensorToWrite& t, const nlohmann::json& expected) {
  if (IsFloat(t.dtype)) {
    const std::vector<double> got = FloatValues(t);
    ASSERT_EQ(got.size(), expected.size()) << t.name;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], expected[i].get<double>()) << t.name << " at flat index " << i;
    }
  } else {
    const std::vector<int64_t> got = IntValues(t);
    ASSERT_EQ(got.size(), expected.size()) << t.name;
    for (size_t i = 0; i < got.size(); ++i) {
      const int64_t want =
          expected[i].is_boolean() ? expected[i].get<bool>() : expected[i].get<int64_t>();
      ASSERT_EQ(got[i], want) << t.name << " at flat index " << i;
    }
  }
}

const TensorToWrite* FindTensor(const std::vector<TensorToWrite>& ts, const std::string& name) {
  for (const auto& t : ts) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// ---- A pickle writer for hand-made state dicts (protocol 2 opcodes unless noted) ----

std::string PStr(const std::string& s) {
  std::string out = "X";
  PutLE(&out, s.size(), 4);
  return out + s;
}
std::string PInt(int64_t v) {
  std::string out;
  if (v >= INT32_MIN && v <= INT32_MAX) {
    out = "J";
    PutLE(&out, static_cast<uint32_t>(v), 4);
  } else {
    out = "\x8a\x08";  // LONG1 of 8 bytes
    PutLE(&out, static_cast<uint64_t>(v), 8);
  }
  return out;
}
std::string PGlobal(const std::string& module, const std::string& name) {
  return "c" + module + "\n" + name + "\n";
}
std::string PInts(const std::vector<int64_t>& v) {
  std::string out = "(";
  for (int64_t x : v) out += PInt(x);
  return out + "t";
}
// _rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict()).
std::string PTensor(const std::string& storage_type, const std::string& key, int64_t numel,
                    int64_t offset, const std::vector<int64_t>& size,
                    const std::vector<int64_t>& stride) {
  return PGlobal("torch._utils", "_rebuild_tensor_v2") + "((" + PStr("storage") +
         PGlobal("torch", storage_type) + PStr(key) + PStr("cpu") + PInt(numel) + "tQ" +
         PInt(offset) + PInts(size) + PInts(stride) + "\x89" +
         PGlobal("collections", "OrderedDict") + ")Rt" + "R";
}
// OrderedDict() with the given (name, pickled value) items, then STOP.
std::string PStateDict(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string out = std::string("\x80\x02") + PGlobal("collections", "OrderedDict") + ")R(";
  for (const auto& [name, value] : items) out += PStr(name) + value;
  return out + "u.";
}

// A torch-like archive under `top/` with a pickle and storages {key, bytes}.
std::string TorchZip(const std::string& top, const std::string& pickle,
                     const std::vector<std::pair<std::string, std::string>>& storages,
                     bool zip64 = false) {
  std::vector<ZipRecord> records = {{top + "/data.pkl", pickle}};
  for (const auto& [key, bytes] : storages) records.push_back({top + "/data/" + key, bytes});
  records.push_back({top + "/version", "3\n"});
  return MakeZip(records, zip64);
}

std::string Floats(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// ---- Tests ----

TEST(TorchCheckpointTest, ReadsAnyprecFixture) {
  PMPD_REQUIRE_SHARED(kFixture);
  auto sd = ReadTorchStateDict(SharedPath(kFixture));
  ASSERT_TRUE(sd.ok()) << sd.status();
  ASSERT_EQ(sd->size(), 63u);

  const std::vector<std::string> fp16 = {"model.embed_tokens.weight",
                                         "model.layers.0.input_layernorm.weight",
                                         "model.layers.0.post_attention_layernorm.weight",
                                         "model.layers.1.input_layernorm.weight",
                                         "model.layers.1.post_attention_layernorm.weight",
                                         "model.norm.weight",
                                         "lm_head.weight"};
  for (size_t i = 0; i < fp16.size(); ++i) {
    const TensorToWrite& t = (*sd)[i];
    EXPECT_EQ(t.name, fp16[i]);
    EXPECT_EQ(t.dtype, DType::kF16) << t.name;
    const bool matrix = i == 0 || i == 6;
    EXPECT_EQ(t.shape, matrix ? std::vector<int64_t>({512, 64}) : std::vector<int64_t>({64}))
        << t.name;
  }
  // Modules in pack order with (N, K): 2 KV heads of head_dim 16 make k/v 32 rows.
  const std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> modules = {
      {"self_attn.q_proj", {64, 64}}, {"self_attn.k_proj", {32, 64}},
      {"self_attn.v_proj", {32, 64}}, {"self_attn.o_proj", {64, 64}},
      {"mlp.gate_proj", {128, 64}},   {"mlp.up_proj", {128, 64}},
      {"mlp.down_proj", {64, 128}}};
  size_t i = fp16.size();
  for (int layer = 0; layer < 2; ++layer) {
    for (const auto& [module, nk] : modules) {
      const auto [n, k] = nk;
      const std::string prefix = "model.layers." + std::to_string(layer) + "." + module;
      const TensorToWrite& q = (*sd)[i++];
      EXPECT_EQ(q.name, prefix + ".qweight");
      EXPECT_EQ(q.dtype, DType::kI32) << q.name;
      EXPECT_EQ(q.shape, std::vector<int64_t>({4, n, k / 32})) << q.name;
      for (int bits = 2; bits <= 4; ++bits) {
        const TensorToWrite& lut = (*sd)[i++];
        EXPECT_EQ(lut.name, prefix + ".lut" + std::to_string(bits));
        EXPECT_EQ(lut.dtype, DType::kF16) << lut.name;
        EXPECT_EQ(lut.shape, std::vector<int64_t>({n, int64_t{1} << bits})) << lut.name;
      }
    }
  }
  for (const TensorToWrite& t : *sd) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    EXPECT_EQ(t.bytes.size(), static_cast<size_t>(numel) * DTypeSize(t.dtype)) << t.name;
  }

  // Against torch.load (scripts/make_torch_checkpoint_golden.py).
  const auto golden = nlohmann::json::parse(
      ReadFile(SourcePath("tests/golden/torch_checkpoint_anyprec_tiny.json")));
  const auto& keys = golden.at("keys");
  ASSERT_EQ(keys.size(), sd->size());
  for (size_t j = 0; j < keys.size(); ++j) {
    EXPECT_EQ((*sd)[j].name, keys[j].at("name").get<std::string>());
    EXPECT_STREQ(DTypeName((*sd)[j].dtype), keys[j].at("dtype").get<std::string>().c_str());
    EXPECT_EQ((*sd)[j].shape, keys[j].at("shape").get<std::vector<int64_t>>());
  }
  for (const auto& [name, values] : golden.at("values").items()) {
    const TensorToWrite* t = FindTensor(*sd, name);
    ASSERT_NE(t, nullptr) << name;
    ExpectValues(*t, values);
  }
  for (const auto& [name, words] : golden.at("first_words").items()) {
    const TensorToWrite* t = FindTensor(*sd, name);
    ASSERT_NE(t, nullptr) << name;
    TensorToWrite head = *t;
    head.bytes.resize(words.size() * DTypeSize(t->dtype));
    ExpectValues(head, words);
  }
}

TEST(TorchCheckpointTest, ReadsDtypesAndViewsWrittenByTorch211) {
  // Written by torch 2.11: byteorder record, .format_version, .data/serialization_id, transposed
  // and permuted tensors, views with a storage offset and a step sharing one storage, bf16, int64,
  // a Parameter, a 0-dim and an empty tensor.
  const std::string path = SourcePath("tests/golden/torch_checkpoint_dtypes.pt");
  auto sd = ReadTorchStateDict(path);
  ASSERT_TRUE(sd.ok()) << sd.status();
  const auto golden =
      nlohmann::json::parse(ReadFile(SourcePath("tests/golden/torch_checkpoint_dtypes.json")));
  const auto& tensors = golden.at("tensors");
  ASSERT_EQ(sd->size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite& t = (*sd)[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, tensors[i].at("name").get<std::string>());
    EXPECT_STREQ(DTypeName(t.dtype), tensors[i].at("dtype").get<std::string>().c_str());
    EXPECT_EQ(t.shape, tensors[i].at("shape").get<std::vector<int64_t>>());
    ExpectValues(t, tensors[i].at("values"));
  }
  // Spot checks that do not depend on the golden file.
  const TensorToWrite* transposed = FindTensor(*sd, "transposed");
  ASSERT_NE(transposed, nullptr);
  EXPECT_EQ(transposed->shape, std::vector<int64_t>({4, 3}));
  EXPECT_EQ(FloatValues(*transposed)[1], static_cast<double>(4.0f / 3.0f));  // [0,1] = src[1,0]
  const TensorToWrite* view = FindTensor(*sd, "view");
  ASSERT_NE(view, nullptr);
  EXPECT_EQ(IntValues(*view), std::vector<int64_t>({1, 8, 15, 22}));  // (3..6) * 7 - 20
}

TEST(TorchCheckpointTest, HandMadeArchiveWithZip64AndNewerOpcodes) {
  // Zip64 extra fields, and protocol 4 opcodes torch does not write by default: FRAME,
  // SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE; a Parameter, BUILD with _metadata, a broadcast view.
  const std::string storage = Floats({1, 2, 3, 4, 5, 6});
  std::string p = "\x80\x04\x95";
  PutLE(&p, 0, 8);  // FRAME length: a hint only
  p += "\x8c\x0b"
       "collections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94(";
  p += "\x8c\x01w\x94" + PGlobal("torch._utils", "_rebuild_parameter") +
       PTensor("FloatStorage", "s0", 6, 0, {2, 3}, {3, 1}) + "\x88}\x94\x87R";  // (t, True, {})
  p += PStr("col") + PTensor("FloatStorage", "s0", 6, 1, {2}, {3});
  p += PStr("bcast") + PTensor("FloatStorage", "s0", 6, 5, {3}, {0});
  p += PStr("w") + PTensor("FloatStorage", "s0", 6, 2, {1}, {1});  // replaces the first "w"
  p += "u}" + PStr("_metadata") + "h\x02)R" + "sb.";  // BUILD: {'_metadata': OrderedDict()}
  const std::string path = MakeTempDir("tc_handmade") + "/model.bin";
  WriteFile(path, TorchZip("model", p, {{"s0", storage}}, /*zip64=*/true));
  auto sd = ReadTorchStateDict(path);
  ASSERT_TRUE(sd.ok()) << sd.status();
  ASSERT_EQ(sd->size(), 3u);
  EXPECT_EQ((*sd)[0].name, "w");
  EXPECT_EQ((*sd)[0].shape, std::vector<int64_t>({1}));
  EXPECT_EQ(FloatValues((*sd)[0]), std::vector<double>({3}));
  EXPECT_EQ((*sd)[1].name, "col");
  EXPECT_EQ(FloatValues((*sd)[1]), std::vector<double>({2, 5}));
  EXPECT_EQ((*sd)[2].name, "bcast");
  EXPECT_EQ(FloatValues((*sd)[2]), std::vector<double>({6, 6, 6}));
}

struct BadCase {
  std::string name;
  std::string bytes;
  std::string expected;  // a substring of the error message
};

TEST(TorchCheckpointTest, BadInputGivesErrorsNamingTheFile) {
  const std::string dir = MakeTempDir("tc_bad");
  const std::string good_pickle =
      PStateDict({{"w", PTensor("FloatStorage", "0", 4, 0, {2, 2}, {2, 1})}});
  const std::string four = Floats({1, 2, 3, 4});
  std::vector<BadCase> cases = {
      {"empty", "", "not a zip archive"},
      {"text", "this is not a zip file at all, just some text", "not a zip archive"},
      {"legacy", std::string("\x80\x02\x8a\x0alegacy") + std::string(40, 'x'), "legacy"},
      {"os_system",
       TorchZip("x", std::string("\x80\x02") + PGlobal("os", "system") + PStr("echo hi") + "\x85R.",
                {}),
       "unsupported global 'os.system'"},
      {"builtins_eval",
       TorchZip("x",
                "\x80\x04\x8c\x08"
                "builtins\x8c\x04"
                "eval\x93.",
                {}),
       "unsupported global 'builtins.eval'"},
      {"missing_storage", TorchZip("x", good_pickle, {}), "storage record \"x/data/0\" is missing"},
      {"past_storage",
       TorchZip("x", PStateDict({{"w", PTensor("FloatStorage", "0", 4, 1, {2, 2}, {2, 1})}}),
                {{"0", four}}),
       "runs past its storage"},
      {"short_record", TorchZip("x", good_pickle, {{"0", four.substr(0, 12)}}), "fewer than"},
      {"compressed",
       MakeZip({{"x/data.pkl", good_pickle, 8}, {"x/data/0", four}, {"x/version", "3\n"}}),
       "compressed (zip method 8)"},
      {"big_endian",
       MakeZip({{"x/data.pkl", good_pickle}, {"x/byteorder", "big"}, {"x/data/0", four}}),
       "big-endian"},
      {"no_data_pkl", MakeZip({{"x/version", "3\n"}}), "no <top>/data.pkl"},
      {"bad_opcode", TorchZip("x", "\x80\x02~.", {}), "unsupported pickle opcode '~'"},
      {"no_stop", TorchZip("x", good_pickle.substr(0, good_pickle.size() - 1), {{"0", four}}),
       "without a pickle STOP"},
      {"cut_pickle", TorchZip("x", good_pickle.substr(0, 40), {{"0", four}}), "truncated"},
      {"not_a_dict", TorchZip("x", std::string("\x80\x02]q\x00.", 6), {}),
       "holds a value of type list"},
      {"not_a_tensor", TorchZip("x", PStateDict({{"n", PInt(3)}}), {}), "has type int, not tensor"},
      {"bad_memo", TorchZip("x", "\x80\x02h\x07.", {}), "memo entry 7 is not defined"},
      {"underflow", TorchZip("x", "\x80\x02s.", {}), "stack underflow"},
      {"negative_size",
       TorchZip("x", PStateDict({{"w", PTensor("FloatStorage", "0", 4, 0, {-1}, {1})}}),
                {{"0", four}}),
       "negative size"},
      {"huge_stride",
       TorchZip("x",
                PStateDict({{"w", PTensor("FloatStorage", "0", 4, 0, {2}, {int64_t{1} << 62})}}),
                {{"0", four}}),
       "runs past its storage"},
      {"huge_expand",
       TorchZip("x",
                PStateDict({{"w", PTensor("FloatStorage", "0", 4, 0, {int64_t{1} << 40}, {0})}}),
                {{"0", four}}),
       "overlapping view"},
  };
  // The fixture, truncated and corrupted.
  if (pmpd::testing::FileExistsForTest(SharedPath(kFixture))) {
    const std::string fixture = ReadFile(SharedPath(kFixture));
    cases.push_back({"fixture_100", fixture.substr(0, 100), "not a zip archive"});
    cases.push_back({"fixture_half", fixture.substr(0, fixture.size() / 2), "not a zip archive"});
    cases.push_back({"fixture_minus_10", fixture.substr(0, fixture.size() - 10), "truncated"});
    std::string flipped = fixture;
    flipped[4000] ^= 0x20;  // inside data.pkl (its first 8.7 KB)
    cases.push_back({"fixture_flipped", flipped, "CRC-32"});
    // Issue 17: a flipped byte inside a tensor record loaded silently (only data.pkl was checked).
    std::string weights_flipped = fixture;
    weights_flipped[fixture.size() / 2] ^= 0x20;
    cases.push_back({"fixture_weights_flipped", weights_flipped, "fails its CRC-32 check"});
    // Cut away the head but keep the central directory: records now lie past their offsets.
    cases.push_back({"fixture_no_head", fixture.substr(1000), "truncated"});
  }
  for (const BadCase& c : cases) {
    const std::string path = dir + "/" + c.name + ".bin";
    WriteFile(path, c.bytes);
    auto sd = ReadTorchStateDict(path);
    ASSERT_FALSE(sd.ok()) << c.name;
    EXPECT_NE(sd.status().message().find(path), std::string::npos) << c.name << ": " << sd.status();
    EXPECT_NE(sd.status().message().find(c.expected), std::string::npos)
        << c.name << ": " << sd.status();
  }
  auto missing = ReadTorchStateDict(dir + "/absent.bin");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(dir + "/absent.bin"), std::string::npos);
  auto directory = ReadTorchStateDict(dir);
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.status().message().find("not a regular file"), std::string::npos);
}

TEST(TorchCheckpointTest, EveryTruncationAndPickleMutationFailsCleanly) {
  // Every prefix of a small archive, and every byte of its pickle replaced by a few values (the
  // zip is rebuilt so the CRC matches and the pickle machine sees the damage): an error or a
  // result, never a crash (AddressSanitizer builds check the reads).
  const std::string storage = Floats({1, 2, 3, 4, 5, 6});
  const std::string pickle =
      PStateDict({{"a", PTensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1})},
                  {"b", PTensor("FloatStorage", "0", 6, 0, {3, 2}, {1, 3})}});
  const std::string good = TorchZip("m", pickle, {{"0", storage}}, /*zip64=*/true);
  const std::string dir = MakeTempDir("tc_fuzz");
  const std::string path = dir + "/m.bin";
  WriteFile(path, good);
  auto sd = ReadTorchStateDict(path);
  ASSERT_TRUE(sd.ok()) << sd.status();
  ASSERT_EQ(sd->size(), 2u);
  EXPECT_EQ(FloatValues((*sd)[1]), std::vector<double>({1, 4, 2, 5, 3, 6}));
  int failures = 0;
  for (size_t n = 0; n < good.size(); ++n) {
    WriteFile(path, good.substr(0, n));
    auto r = ReadTorchStateDict(path);
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes";
    ASSERT_NE(r.status().message().find(path), std::string::npos) << r.status();
    ++failures;
  }
  for (size_t i = 0; i < pickle.size(); ++i) {
    for (char v : {'\0', '\x7f', '\xff', static_cast<char>(pickle[i] ^ 1)}) {
      std::string mutated = pickle;
      mutated[i] = v;
      WriteFile(path, TorchZip("m", mutated, {{"0", storage}}));
      auto r = ReadTorchStateDict(path);
      if (!r.ok()) {
        ASSERT_NE(r.status().message().find(path), std::string::npos) << r.status();
        ++failures;
      }
    }
  }
  EXPECT_GT(failures, static_cast<int>(good.size()));
}

}  // namespace
}  // namespace pmpd::models
