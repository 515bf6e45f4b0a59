#include "models/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/half.h"
#include "tests/test_util.h"

namespace pmpd::models {
namespace {

using pmpd::testing::MakeTempDir;
using pmpd::testing::WriteFile;

std::string Bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// A raw safetensors file from a header string and a data section.
std::string RawFile(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST(SafetensorsTest, WriteThenReadRoundTrips) {
  const std::string dir = MakeTempDir("st_roundtrip");
  const std::string path = dir + "/model.safetensors";
  std::vector<TensorToWrite> ts = {{"a", DType::kF32, {2, 3}, Bytes({1, 2, 3, 4, 5, 6})},
                                   {"b.weight", DType::kF32, {1}, Bytes({-7.5f})},
                                   {"empty", DType::kF32, {0, 4}, ""}};
  ASSERT_TRUE(WriteSafetensors(path, ts, {{"format", "pt"}}).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), 3u);
  const TensorView& a = (*f)->tensors().at("a");
  EXPECT_EQ(a.shape, std::vector<int64_t>({2, 3}));
  std::vector<float> out(6);
  ASSERT_TRUE(ToFloat32(a, out.data()).ok());
  EXPECT_EQ(out, std::vector<float>({1, 2, 3, 4, 5, 6}));
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  auto ck = SafetensorsCheckpoint::Open(dir);
  ASSERT_TRUE(ck.ok()) << ck.status();
  auto b = (*ck)->Find("b.weight");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->numel(), 1);
  auto missing = (*ck)->Find("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing tensor \"nope\""), std::string::npos);
}

TEST(SafetensorsTest, HalfAndBfloat16ConvertExactly) {
  const std::string path = MakeTempDir("st_half") + "/h.safetensors";
  std::string f16(4, '\0'), bf16(4, '\0');
  const uint16_t h[2] = {kernels::F32ToF16(1.5f), kernels::F32ToF16(-0.000123f)};
  const uint16_t b[2] = {kernels::F32ToBf16(3.0f), kernels::F32ToBf16(-1e30f)};
  std::memcpy(f16.data(), h, 4);
  std::memcpy(bf16.data(), b, 4);
  ASSERT_TRUE(
      WriteSafetensors(path, {{"h", DType::kF16, {2}, f16}, {"b", DType::kBF16, {2}, bf16}}).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok());
  float out[2];
  ASSERT_TRUE(ToFloat32((*f)->tensors().at("h"), out).ok());
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], kernels::F16ToF32(h[1]));
  ASSERT_TRUE(ToFloat32((*f)->tensors().at("b"), out).ok());
  EXPECT_EQ(out[0], 3.0f);
  EXPECT_EQ(out[1], kernels::Bf16ToF32(b[1]));
}

TEST(SafetensorsTest, UnsupportedDtypeForWeightsIsAnError) {
  const std::string path = MakeTempDir("st_f64") + "/d.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"w", DType::kF64, {1}, std::string(8, '\0')}}).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok());
  float out[1];
  auto st = ToFloat32((*f)->tensors().at("w"), out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("dtype F64"), std::string::npos) << st;
  EXPECT_NE(st.message().find(path), std::string::npos) << st;
}

TEST(SafetensorsTest, ShardedCheckpointWithIndex) {
  const std::string dir = MakeTempDir("st_shards");
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00001-of-00002.safetensors",
                               {{"x", DType::kF32, {1}, Bytes({1})}})
                  .ok());
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00002-of-00002.safetensors",
                               {{"y", DType::kF32, {1}, Bytes({2})}})
                  .ok());
  WriteFile(dir + "/model.safetensors.index.json",
            R"({"metadata": {}, "weight_map": {"x": "model-00001-of-00002.safetensors",
                                              "y": "model-00002-of-00002.safetensors"}})");
  auto ck = SafetensorsCheckpoint::Open(dir);
  ASSERT_TRUE(ck.ok()) << ck.status();
  EXPECT_EQ((*ck)->Names(), std::vector<std::string>({"x", "y"}));
  float v;
  ASSERT_TRUE(ToFloat32(**(*ck)->Find("y"), &v).ok());
  EXPECT_EQ(v, 2.f);

  // The index names a tensor its shard does not hold.
  WriteFile(
      dir + "/model.safetensors.index.json",
      R"({"weight_map": {"x": "model-00001-of-00002.safetensors", "z": "model-00002-of-00002.safetensors"}})");
  auto bad = SafetensorsCheckpoint::Open(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"z\""), std::string::npos) << bad.status();
}

struct BadFile {
  std::string name;
  std::string bytes;
  std::string expected;
};

TEST(SafetensorsTest, MalformedFilesGiveClearErrors) {
  const std::string good_header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string good = RawFile(good_header, std::string(8, '\1'));
  std::string huge_len = good;
  huge_len[6] = 1;  // header length ~2^48
  const std::vector<BadFile> cases = {
      {"tiny", "abc", "shorter than the 8-byte header length"},
      {"truncated_data", good.substr(0, good.size() - 3), "out of range"},
      {"truncated_header", good.substr(0, 20), "runs past the end of the file"},
      {"huge_header_len", huge_len, "exceeds the limit"},
      {"not_json", RawFile("{oops", ""), "header is not a JSON object"},
      {"offsets_out_of_range",
       RawFile(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", std::string(8, 0)),
       "out of range"},
      {"offsets_reversed",
       RawFile(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", std::string(8, 0)),
       "out of range"},
      {"shape_mismatch",
       RawFile(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 0)),
       "needs 12 bytes but data_offsets span 8"},
      {"overlap",
       RawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
               std::string(8, 0)),
       "overlap"},
      {"unknown_dtype",
       RawFile(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", std::string(8, 0)),
       "unknown dtype \"Q4\""},
      {"missing_shape", RawFile(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", std::string(8, 0)),
       "missing or non-array shape"},
      {"negative_dim",
       RawFile(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, 0)),
       "non-negative"},
  };
  const std::string dir = MakeTempDir("st_bad");
  for (const auto& c : cases) {
    const std::string path = dir + "/" + c.name + ".safetensors";
    WriteFile(path, c.bytes);
    auto f = SafetensorsFile::Open(path);
    ASSERT_FALSE(f.ok()) << c.name;
    EXPECT_NE(f.status().message().find(path), std::string::npos) << c.name << ": " << f.status();
    EXPECT_NE(f.status().message().find(c.expected), std::string::npos)
        << c.name << ": " << f.status();
  }
  auto missing = SafetensorsFile::Open(dir + "/absent.safetensors");
  EXPECT_FALSE(missing.ok());
  auto no_ck = SafetensorsCheckpoint::Open(MakeTempDir("st_empty"));
  ASSERT_FALSE(no_ck.ok());
  EXPECT_NE(no_ck.status().message().find("no model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace pmpd::models
