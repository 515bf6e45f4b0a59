// GPU tests (label `gpu`): the decode-step kernels against their CPU references over shapes.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/argmax.cuh"
#include "kernels/causal_softmax.cuh"
#include "kernels/decode_attention.cuh"
#include "kernels/dense_f16_gemv.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/half.h"
#include "kernels/random_fill.cuh"
#include "kernels/ref/decode_ops_ref.h"
#include "kernels/ref/random_fill_ref.h"
#include "kernels/rotary_kv.cuh"
#include "tests/kernels/gpu_test_util.h"

namespace pmpd::kernels {
namespace {

using ::pmpd::testing::Dev;

constexpr double kEps32 = 1.1920928955078125e-07;

std::vector<float> Random(size_t n, std::mt19937& rng, float sigma = 1.f) {
  std::normal_distribution<float> g(0.f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, double rel,
                 const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], rel * (std::fabs(want[i]) + 1.0)) << what << " index " << i;
  }
}

TEST(DecodeOpsGpuTest, ElementwiseEmbeddingRotaryArgmax) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(5);
  for (int64_t n : {1, 255, 4097, 1 << 20}) {
    auto y = Random(n, rng), x = Random(n, rng), g = Random(n, rng), u = Random(n, rng);
    Dev<float> dy(y), dx(x), dg(g), du(u), dout(std::vector<float>(n, NAN));
    AddInPlace(dy.p, dx.p, n, nullptr);
    SwiGlu(dg.p, du.p, dout.p, n, nullptr);
    AddInPlaceRef(y.data(), x.data(), n);
    std::vector<float> o(n);
    SwiGluRef(g.data(), u.data(), o.data(), n);
    ExpectClose(dy.Get(), y, 0, "add");
    ExpectClose(dout.Get(), o, 1e-5, "swiglu");  // __expf vs std::exp
  }
  for (auto [vocab, dim, n] :
       {std::tuple<int, int, int>{512, 64, 1}, {32000, 4096, 3}, {17, 5, 8}}) {
    auto table = Random(static_cast<size_t>(vocab) * dim, rng);
    std::vector<int32_t> ids(n);
    for (auto& i : ids) i = rng() % vocab;
    Dev<float> dt(table), dout(std::vector<float>(static_cast<size_t>(n) * dim, NAN));
    Dev<int32_t> di(ids);
    EmbeddingLookup(dt.p, di.p, n, dim, dout.p, nullptr);
    std::vector<float> want(static_cast<size_t>(n) * dim);
    EmbeddingLookupRef(table.data(), ids.data(), n, dim, want.data());
    ExpectClose(dout.Get(), want, 0, "embedding");
  }
  for (auto [n, heads, hd] : {std::tuple<int, int, int>{1, 32, 128}, {5, 8, 8}, {3, 4, 16}}) {
    const int max_pos = 64;
    auto x = Random(static_cast<size_t>(n) * heads * hd, rng), cs = Random(max_pos * hd, rng),
         sn = Random(max_pos * hd, rng);
    std::vector<int32_t> pos(n);
    for (auto& p : pos) p = rng() % max_pos;
    Dev<float> dx(x), dc(cs), ds(sn);
    Dev<int32_t> dp(pos);
    RotaryInPlace(dx.p, dp.p, dc.p, ds.p, n, heads, hd, nullptr);
    RotaryInPlaceRef(x.data(), pos.data(), cs.data(), sn.data(), n, heads, hd);
    ExpectClose(dx.Get(), x, 1e-6, "rotary");
  }
  for (auto [rows, cols] : {std::pair<int, int>{1, 512}, {3, 32000}, {8, 7}, {2, 32001}}) {
    auto x = Random(static_cast<size_t>(rows) * cols, rng);
    if (cols > 3) x[1] = x[2] = 100.f;   // a tie in row 0: the lower index wins
    if (cols > 30000) x[29999] = 100.f;  // the same value in another thread's range
    Dev<float> dx(x);
    Dev<int32_t> dout(std::vector<int32_t>(rows, -1));
    ArgmaxRows(dx.p, rows, cols, dout.p, nullptr);
    std::vector<int32_t> want(rows);
    ArgmaxRowsRef(x.data(), rows, cols, want.data());
    EXPECT_EQ(dout.Get(), want) << rows << "x" << cols;
  }
}

// Long caches: 7B shapes, and lengths past the old single-block kernel's 51200-position cap (its
// shared-memory score buffer), up to 100000 positions.
TEST(DecodeOpsGpuTest, DecodeAttentionMatchesReferenceOnLongCaches) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(6);
  for (auto [heads, kv_heads, hd, max_len, len] :
       {std::tuple<int, int, int, int, int>{8, 4, 8, 512, 1},
        {8, 4, 8, 512, 377},
        {32, 32, 128, 4096, 4096},
        {32, 8, 128, 20000, 15000},
        {4, 1, 16, 64, 33},
        {8, 4, 8, 65536, 65536},
        {4, 2, 64, 100000, 99999}}) {
    auto q = Random(static_cast<size_t>(heads) * hd, rng);
    auto k = Random(static_cast<size_t>(kv_heads) * max_len * hd, rng, 0.3f);
    auto v = Random(static_cast<size_t>(kv_heads) * max_len * hd, rng);
    Dev<float> dq(q), dk(k), dv(v), dout(std::vector<float>(static_cast<size_t>(heads) * hd, NAN));
    Dev<float> dws(std::vector<float>(DecodeAttentionWorkspaceFloats(heads, hd, max_len)));
    Dev<int32_t> dlen(std::vector<int32_t>{len});
    DecodeAttention(dq.p, dk.p, dv.p, heads, kv_heads, hd, max_len, dlen.p, dws.p, dout.p, nullptr);
    std::vector<float> want(static_cast<size_t>(heads) * hd);
    DecodeAttentionRef(q.data(), k.data(), v.data(), heads, kv_heads, hd, max_len, len,
                       want.data());
    // fp32 sums over hd and len terms against a double reference: ~1e-5 relative.
    ExpectClose(dout.Get(), want, 2e-4, "attention");
  }
}

// The random-weight kernels draw the values their references draw from the same hash: words bit
// for bit, floats within an ulp of the range (the GPU may fuse lo + (hi - lo) * u), sizes that are
// not multiples of the block and larger than the grid.
TEST(DecodeOpsGpuTest, RandomFillMatchesReference) {
  PMPD_REQUIRE_GPU();
  for (size_t n : {size_t{1}, size_t{1000}, size_t{65535} * 256 + 77}) {
    const uint64_t seed = 12345 + n;
    Dev<uint32_t> dw{std::vector<uint32_t>(n)};
    FillRandomWords(dw.p, n, seed, nullptr);
    std::vector<uint32_t> words(n);
    FillRandomWordsRef(words.data(), n, seed);
    EXPECT_EQ(dw.Get(), words) << n;
    Dev<float> df{std::vector<float>(n)};
    FillUniformF32(df.p, n, -0.5f, 1.5f, seed, nullptr);
    std::vector<float> f(n);
    FillUniformF32Ref(f.data(), n, -0.5f, 1.5f, seed);
    ExpectClose(df.Get(), f, 2 * kEps32, "uniform f32");
    Dev<uint16_t> dh{std::vector<uint16_t>(n)};
    FillUniformF16(reinterpret_cast<__half*>(dh.p), n, -0.5f, 1.5f, seed, nullptr);
    std::vector<uint16_t> h(n);
    FillUniformF16Ref(h.data(), n, -0.5f, 1.5f, seed);
    const std::vector<uint16_t> got = dh.Get();
    for (size_t i = 0; i < n; ++i) {
      ASSERT_NEAR(F16ToF32(got[i]), F16ToF32(h[i]), 1e-3) << "uniform f16 index " << i;
    }
  }
  for (auto [rows, bits] : {std::pair{1, 2}, std::pair{4097, 4}, std::pair{300, 8}}) {
    const size_t n = static_cast<size_t>(rows) << bits;
    Dev<uint16_t> dl{std::vector<uint16_t>(n)};
    FillGridLut(reinterpret_cast<__half*>(dl.p), rows, bits, 0.25f, 99, nullptr);
    std::vector<uint16_t> want(n);
    FillGridLutRef(want.data(), rows, bits, 0.25f, 99);
    const std::vector<uint16_t> got = dl.Get();
    for (size_t i = 0; i < n; ++i) {
      ASSERT_NEAR(F16ToF32(got[i]), F16ToF32(want[i]), 2e-4)
          << "grid LUT " << rows << "x" << bits << " index " << i;
    }
  }
}

TEST(DecodeOpsGpuTest, DenseF16GemvMatchesReference) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(8);
  int cases = 0;
  for (auto [N, K] :
       {std::pair<int, int>{1, 8}, {7, 172}, {33, 1000}, {5, 1001}, {4096, 4096}, {13, 11008}}) {
    std::vector<uint16_t> w(static_cast<size_t>(N) * K);
    for (auto& v : w) v = F32ToF16(std::normal_distribution<float>(0.f, 0.05f)(rng));
    Dev<uint16_t> dw(w);
    for (int M : {1, 2, 3, 8}) {
      auto x = Random(static_cast<size_t>(M) * K + 1, rng);
      // M == 3 reads x from an address that is not 16-byte aligned (the scalar path).
      const int offset = M == 3 ? 1 : 0;
      Dev<float> dx(x), dy(std::vector<float>(static_cast<size_t>(M) * N, NAN));
      DenseF16Gemv(dx.p + offset, M, reinterpret_cast<const __half*>(dw.p), N, K, dy.p, nullptr);
      std::vector<float> want(static_cast<size_t>(M) * N);
      DenseF16GemvRef(x.data() + offset, M, w.data(), N, K, want.data());
      // fp32 sums of K products against a double reference.
      ExpectClose(dy.Get(), want, 4e-5 * std::sqrt(static_cast<double>(K)), "dense fp16 GEMV");
      ++cases;
    }
  }
  EXPECT_EQ(cases, 24);
}

TEST(DecodeOpsGpuTest, CausalSoftmaxRowsMatchesReference) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(7);
  for (auto [heads, n, first_pos] :
       {std::tuple<int, int, int>{1, 1, 0}, {4, 7, 0}, {32, 256, 300}, {3, 33, 5}}) {
    const int len = first_pos + n;
    auto s = Random(static_cast<size_t>(heads) * n * len, rng, 4.f);
    Dev<float> ds(s);
    CausalSoftmaxRows(ds.p, heads, n, first_pos, nullptr);
    CausalSoftmaxRowsRef(s.data(), heads, n, first_pos);
    const std::vector<float> got = ds.Get();
    for (int r = 0; r < heads * n; ++r) {  // masked positions are exactly 0, rows sum to 1
      const int valid = first_pos + r % n + 1;
      double sum = 0;
      for (int j = 0; j < len; ++j) {
        const float g = got[static_cast<size_t>(r) * len + j];
        if (j >= valid) {
          ASSERT_EQ(g, 0.f) << "row " << r << " position " << j;
        }
        sum += g;
      }
      ASSERT_NEAR(sum, 1.0, 1e-5) << "row " << r;
    }
    ExpectClose(got, s, 1e-5, "causal softmax");
  }
}

// The decode step's fused rotary + cache append equals RotaryInPlace on q and k followed by
// KvCacheWrite of k and v (references), bit for bit in the rotated values' math.
TEST(DecodeOpsGpuTest, RotaryKvAppendEqualsRotaryThenCacheWrite) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(6);
  std::normal_distribution<float> g(0.f, 1.f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = g(rng);
    return v;
  };
  const int max_len = 37;
  for (int hd : {2, 8, 48, 128}) {
    for (auto [heads, kvh] : {std::pair{6, 2}, std::pair{4, 4}}) {
      for (int pos : {0, 11, max_len - 1}) {
        std::vector<float> q = random(heads * hd), k = random(kvh * hd), v = random(kvh * hd);
        std::vector<float> cs = random(static_cast<size_t>(max_len) * hd),
                           sn = random(static_cast<size_t>(max_len) * hd);
        std::vector<float> kc = random(static_cast<size_t>(kvh) * max_len * hd),
                           vc = random(kc.size());
        Dev<float> dq(q), dk(k), dv(v), dcs(cs), dsn(sn), dkc(kc), dvc(vc);
        Dev<int32_t> dpos(std::vector<int32_t>{pos});
        RotaryKvAppend(dq.p, dk.p, dv.p, dpos.p, dcs.p, dsn.p, heads, kvh, hd, max_len, dkc.p,
                       dvc.p, nullptr);
        const int32_t positions[1] = {pos};
        RotaryInPlaceRef(q.data(), positions, cs.data(), sn.data(), 1, heads, hd);
        RotaryInPlaceRef(k.data(), positions, cs.data(), sn.data(), 1, kvh, hd);
        KvCacheWriteRef(k.data(), positions, 1, kvh, hd, max_len, kc.data());
        KvCacheWriteRef(v.data(), positions, 1, kvh, hd, max_len, vc.data());
        // a*c - b*s in fp32 on both sides: at most one rounding apart when the compiler fuses the
        // FMA.
        auto close = [&](const std::vector<float>& got, const std::vector<float>& want,
                         const char* what) {
          for (size_t i = 0; i < want.size(); ++i) {
            ASSERT_NEAR(got[i], want[i], 4e-7 * (std::fabs(want[i]) + 4))
                << what << " hd " << hd << " pos " << pos << " index " << i;
          }
        };
        close(dq.Get(), q, "q");
        close(dkc.Get(), kc, "k cache");
        EXPECT_EQ(dvc.Get(), vc) << "v cache";
      }
    }
  }
}

TEST(DecodeOpsGpuTest, KvCacheWriteAndConvert) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(3);
  auto random = [&](size_t n) { return Random(n, rng); };
  const int n = 3, kvh = 2, hd = 12, max_len = 40;
  const std::vector<int32_t> pos = {5, 6, 39};
  std::vector<float> x = random(static_cast<size_t>(n) * kvh * hd),
                     cache = random(static_cast<size_t>(kvh) * max_len * hd);
  Dev<float> dx(x), dc(cache);
  Dev<int32_t> dp(pos);
  KvCacheWrite(dx.p, dp.p, n, kvh, hd, max_len, dc.p, nullptr);
  KvCacheWriteRef(x.data(), pos.data(), n, kvh, hd, max_len, cache.data());
  EXPECT_EQ(dc.Get(), cache);

  std::vector<float> big = random(1000);
  big[0] = 70000.f, big[1] = -1e-8f, big[2] = 65519.f;
  Dev<float> db(big);
  Dev<uint16_t> dh(std::vector<uint16_t>(big.size()));
  ConvertF32ToF16(db.p, reinterpret_cast<__half*>(dh.p), static_cast<int64_t>(big.size()), nullptr);
  std::vector<uint16_t> want(big.size());
  ConvertF32ToF16Ref(big.data(), want.data(), static_cast<int64_t>(big.size()));
  EXPECT_EQ(dh.Get(), want);
}

// fp16 caches: RotaryKvAppend and KvCacheWrite store the fp32 results rounded to fp16 (the
// rotated K within one fp16 step of the reference's rounding, for the FMA the compiler may fuse; V
// and written values exactly), and KvCacheToF32 reads positions [0, len) back exactly.
std::vector<uint16_t> ToF16(const std::vector<float>& x) {
  std::vector<uint16_t> h(x.size());
  ConvertF32ToF16Ref(x.data(), h.data(), static_cast<int64_t>(x.size()));
  return h;
}
std::vector<float> FromF16(const std::vector<uint16_t>& h) {
  std::vector<float> x(h.size());
  for (size_t i = 0; i < h.size(); ++i) x[i] = F16ToF32(h[i]);
  return x;
}

TEST(DecodeOpsGpuTest, Fp16CacheAppendWriteAndRead) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(8);
  const int max_len = 29;
  for (int hd : {2, 48, 128}) {
    const int heads = 6, kvh = 2;
    for (int pos : {0, 13, max_len - 1}) {
      std::vector<float> q = Random(heads * hd, rng), k = Random(kvh * hd, rng),
                         v = Random(kvh * hd, rng, 300.f);  // large values: coarse fp16 steps
      std::vector<float> cs = Random(static_cast<size_t>(max_len) * hd, rng),
                         sn = Random(static_cast<size_t>(max_len) * hd, rng);
      const std::vector<uint16_t> kc16 =
                                      ToF16(Random(static_cast<size_t>(kvh) * max_len * hd, rng)),
                                  vc16 = ToF16(Random(kc16.size(), rng));
      Dev<float> dq(q), dk(k), dv(v), dcs(cs), dsn(sn);
      Dev<uint16_t> dkc(kc16), dvc(vc16);
      Dev<int32_t> dpos(std::vector<int32_t>{pos});
      RotaryKvAppend(dq.p, dk.p, dv.p, dpos.p, dcs.p, dsn.p, heads, kvh, hd, max_len,
                     reinterpret_cast<__half*>(dkc.p), reinterpret_cast<__half*>(dvc.p), nullptr);
      const int32_t positions[1] = {pos};
      RotaryInPlaceRef(k.data(), positions, cs.data(), sn.data(), 1, kvh, hd);
      std::vector<float> kc = FromF16(kc16), vc = FromF16(vc16);
      KvCacheWriteRef(k.data(), positions, 1, kvh, hd, max_len, kc.data());
      KvCacheWriteRef(v.data(), positions, 1, kvh, hd, max_len, vc.data());
      const std::vector<float> got_k = FromF16(dkc.Get());
      for (size_t i = 0; i < kc.size(); ++i) {
        const float want = F16ToF32(F32ToF16(kc[i]));
        ASSERT_NEAR(got_k[i], want, std::ldexp(std::fabs(want), -10) + 6e-8)
            << "k cache hd " << hd << " pos " << pos << " index " << i;
      }
      EXPECT_EQ(dvc.Get(), ToF16(vc)) << "v cache hd " << hd << " pos " << pos;
    }
  }
  const int n = 3, kvh = 2, hd = 12;
  const std::vector<int32_t> pos = {5, 6, max_len - 1};
  std::vector<float> x = Random(static_cast<size_t>(n) * kvh * hd, rng, 1000.f);
  x[0] = 70000.f;  // beyond fp16: stored as infinity, as the host conversion rounds it
  std::vector<float> cache = FromF16(ToF16(Random(static_cast<size_t>(kvh) * max_len * hd, rng)));
  Dev<float> dx(x);
  Dev<uint16_t> dc(ToF16(cache));
  Dev<int32_t> dp(pos);
  KvCacheWrite(dx.p, dp.p, n, kvh, hd, max_len, reinterpret_cast<__half*>(dc.p), nullptr);
  KvCacheWriteRef(x.data(), pos.data(), n, kvh, hd, max_len, cache.data());
  const std::vector<uint16_t> stored = dc.Get();
  EXPECT_EQ(stored, ToF16(cache));
  for (int len : {0, 1, 6, max_len}) {
    Dev<float> dout(std::vector<float>(static_cast<size_t>(kvh) * max_len * hd, -1.f));
    KvCacheToF32(reinterpret_cast<const __half*>(dc.p), kvh, len, hd, max_len, dout.p, nullptr);
    const std::vector<float> got = dout.Get(), all = FromF16(stored);
    for (int h = 0; h < kvh; ++h) {
      for (int t = 0; t < max_len; ++t) {
        for (int d = 0; d < hd; ++d) {
          const size_t at = (static_cast<size_t>(h) * max_len + t) * hd + d;
          if (t < len) {
            ASSERT_EQ(got[at], all[at]) << "len " << len << " h " << h << " t " << t;
          } else {
            ASSERT_EQ(got[at], -1.f) << "len " << len << " wrote past it at t " << t;
          }
        }
      }
    }
  }
}

// Split-K decode attention against the reference over lengths around multiples of the chunk size
// (kDecodeAttentionChunk = 32), several chunks, a full cache, and head dims below, between and at
// multiples of the 32 lanes; over an fp32 and an fp16 cache.
TEST(DecodeOpsGpuTest, SplitDecodeAttentionSweep) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(4);
  auto random = [&](size_t n) { return Random(n, rng, 2.f); };
  const int max_len = 300;
  for (int hd : {8, 48, 128, 256}) {
    for (auto [heads, kvh] : {std::pair{6, 2}, std::pair{4, 4}}) {
      const std::vector<float> q = random(static_cast<size_t>(heads) * hd),
                               k = random(static_cast<size_t>(kvh) * max_len * hd),
                               v = random(static_cast<size_t>(kvh) * max_len * hd);
      // The fp16-cache kernel reads K and V rounded to fp16: its reference sees the same values.
      const std::vector<uint16_t> k16 = ToF16(k), v16 = ToF16(v);
      const std::vector<float> kr = FromF16(k16), vr = FromF16(v16);
      Dev<float> dq(q), dk(k), dv(v), dout(std::vector<float>(q.size()));
      Dev<uint16_t> dk16(k16), dv16(v16);
      Dev<float> dws(std::vector<float>(DecodeAttentionWorkspaceFloats(heads, hd, max_len)));
      for (int len : {1, 23, 63, 64, 65, 128, 129, 200, max_len}) {
        for (bool fp16 : {false, true}) {
          Dev<int32_t> dlen(std::vector<int32_t>{len});
          ASSERT_EQ(cudaMemset(dout.p, 0xff, q.size() * sizeof(float)), cudaSuccess);  // NaN
          if (fp16) {
            DecodeAttention(dq.p, reinterpret_cast<const __half*>(dk16.p),
                            reinterpret_cast<const __half*>(dv16.p), heads, kvh, hd, max_len,
                            dlen.p, dws.p, dout.p, nullptr);
          } else {
            DecodeAttention(dq.p, dk.p, dv.p, heads, kvh, hd, max_len, dlen.p, dws.p, dout.p,
                            nullptr);
          }
          std::vector<float> ref(q.size());
          DecodeAttentionRef(q.data(), fp16 ? kr.data() : k.data(), fp16 ? vr.data() : v.data(),
                             heads, kvh, hd, max_len, len, ref.data());
          const std::vector<float> got = dout.Get();
          double worst = 0;
          size_t at = 0;
          for (size_t i = 0; i < ref.size(); ++i) {
            if (std::fabs(got[i] - ref[i]) > worst) worst = std::fabs(got[i] - ref[i]), at = i;
          }
          // Scores q.k of N(0,4) entries summed over hd, softmax, weighted mean of |v| <~ 8:
          // fp32 error ~ eps * (hd * |q||k| + len) * max|v|, with __expf's few-ulp error.
          const double tol = 16 * kEps32 * (hd * 4.0 + len) * 8;
          EXPECT_LE(worst, tol) << "hd " << hd << " heads " << heads << "/" << kvh << " len " << len
                                << (fp16 ? " fp16 cache" : "") << ": index " << at << " got "
                                << got[at] << " want " << ref[at];
        }
      }
    }
  }
}

}  // namespace
}  // namespace pmpd::kernels
