#include "models/anyprec_quantizer.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>
#include <thread>

#include "kernels/check.h"
#include "kernels/half.h"
#include "kernels/ref/anyprec_ref.h"

namespace pmpd::models {
namespace {

// Prefix sums over a row sorted by value: weight f, f*x, f*x^2. A cluster is a range [lo, hi).
struct RowStats {
  std::vector<double> x, sf, sfx, sfxx;  // sf[i] = sum of f over sorted[0, i)

  double W(int lo, int hi) const { return sf[hi] - sf[lo]; }
  double Mean(int lo, int hi, double fallback) const {
    const double wsum = W(lo, hi);
    return wsum > 0 ? (sfx[hi] - sfx[lo]) / wsum : fallback;
  }
  // Weighted squared error of the range around its weighted mean.
  double Sse(int lo, int hi) const {
    const double wsum = W(lo, hi);
    if (wsum <= 0) return 0;
    const double m = (sfx[hi] - sfx[lo]);
    return (sfxx[hi] - sfxx[lo]) - m * m / wsum;
  }
};

// Weighted 1-D k-means on sorted data: k-means++ init, then Lloyd with borders at centroid
// midpoints (each cluster a contiguous range). Writes k+1 borders (starts of each range).
void SeedKmeans(const RowStats& st, int k, int max_iter, std::mt19937_64& rng,
                std::vector<int>* borders, std::vector<double>* centroids) {
  const int n = static_cast<int>(st.x.size());
  std::vector<double> c;
  // k-means++: first centre by weight, then proportional to f * D^2.
  std::vector<double> d2(n, INFINITY);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto pick = [&](const std::vector<double>& weight) {
    double total = 0;
    for (int i = 0; i < n; ++i) total += weight[i];
    if (!(total > 0)) return static_cast<int>(u(rng) * n) % n;
    double r = u(rng) * total;
    for (int i = 0; i < n; ++i) {
      r -= weight[i];
      if (r <= 0) return i;
    }
    return n - 1;
  };
  std::vector<double> w(n);
  for (int i = 0; i < n; ++i) w[i] = st.sf[i + 1] - st.sf[i];
  c.push_back(st.x[pick(w)]);
  while (static_cast<int>(c.size()) < k) {
    for (int i = 0; i < n; ++i) {
      const double d = st.x[i] - c.back();
      d2[i] = std::min(d2[i], d * d);
      w[i] = (st.sf[i + 1] - st.sf[i]) * d2[i];
    }
    c.push_back(st.x[pick(w)]);
  }
  std::sort(c.begin(), c.end());
  std::vector<int> b(k + 1);
  for (int it = 0; it < max_iter; ++it) {
    b[0] = 0;
    b[k] = n;
    for (int j = 1; j < k; ++j) {
      const double mid = 0.5 * (c[j - 1] + c[j]);
      b[j] = static_cast<int>(std::upper_bound(st.x.begin(), st.x.end(), mid) - st.x.begin());
      b[j] = std::max(b[j], b[j - 1]);
    }
    bool changed = false;
    for (int j = 0; j < k; ++j) {
      const double m = st.Mean(b[j], b[j + 1], c[j]);
      changed |= m != c[j];
      c[j] = m;
    }
    std::sort(c.begin(), c.end());
    if (!changed) break;
  }
  *borders = b;
  *centroids = c;
}

// Best weighted two-way split of [lo, hi): the split point minimising SSE(lo,s) + SSE(s,hi).
// O(hi-lo).
int BestSplit(const RowStats& st, int lo, int hi) {
  if (hi - lo < 2) return hi;  // nothing to split: the upper child is empty
  int best = lo + 1;
  double best_cost = INFINITY;
  for (int s = lo + 1; s < hi; ++s) {
    if (st.x[s] == st.x[s - 1]) continue;  // equal values stay together
    const double cost = st.Sse(lo, s) + st.Sse(s, hi);
    if (cost < best_cost) best_cost = cost, best = s;
  }
  return best_cost == INFINITY ? hi : best;
}

void QuantizeRow(const float* w, const float* f, int K, const AnyprecQuantizeOptions& o,
                 uint64_t row_seed, uint8_t* codes,
                 std::vector<std::vector<float>>* luts /* per level b-S: 2^b */) {
  const int S = o.seed_bits, P = o.parent_bits;
  std::vector<int> order(K);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return w[a] < w[b] || (w[a] == w[b] && a < b); });
  RowStats st;
  st.x.resize(K);
  st.sf.assign(K + 1, 0);
  st.sfx.assign(K + 1, 0);
  st.sfxx.assign(K + 1, 0);
  double fmax = 0;
  for (int i = 0; i < K; ++i) fmax = std::max(fmax, f ? static_cast<double>(f[order[i]]) : 1.0);
  // A floor on the weights keeps zero-sensitivity weights from being ignored entirely.
  const double floor = fmax > 0 ? 1e-8 * fmax : 1.0;
  for (int i = 0; i < K; ++i) {
    const double x = w[order[i]],
                 fi = (f ? std::max(0.0, static_cast<double>(f[order[i]])) : 1.0) + floor;
    st.x[i] = x;
    st.sf[i + 1] = st.sf[i] + fi;
    st.sfx[i + 1] = st.sfx[i] + fi * x;
    st.sfxx[i + 1] = st.sfxx[i] + fi * x * x;
  }
  std::mt19937_64 rng(row_seed);
  std::vector<int> borders;
  std::vector<double> cent;
  SeedKmeans(st, 1 << S, o.max_lloyd_iterations, rng, &borders, &cent);
  (*luts)[0].assign(cent.begin(), cent.end());
  for (int b = S; b < P; ++b) {
    const int clusters = 1 << b;
    std::vector<int> next(2 * clusters + 1);
    std::vector<float>& lut = (*luts)[b + 1 - S];
    lut.resize(2 * clusters);
    for (int c = 0; c < clusters; ++c) {
      const int lo = borders[c], hi = borders[c + 1];
      const int s = BestSplit(st, lo, hi);
      next[2 * c] = lo;
      next[2 * c + 1] = s;
      const double parent = (*luts)[b - S][c];
      lut[2 * c] = static_cast<float>(st.Mean(lo, s, parent));
      lut[2 * c + 1] = static_cast<float>(st.Mean(s, hi, parent));
    }
    next[2 * clusters] = K;
    borders.swap(next);
  }
  for (int c = 0; c < (1 << P); ++c) {
    for (int i = borders[c]; i < borders[c + 1]; ++i) codes[order[i]] = static_cast<uint8_t>(c);
  }
}

}  // namespace

AnyprecMatrix QuantizeAnyprec(const float* w, const float* sensitivity, int N, int K,
                              const AnyprecQuantizeOptions& o) {
  PMPD_CHECK(o.seed_bits >= 1 && o.seed_bits <= o.parent_bits &&
             o.parent_bits <= kernels::kAnyprecMaxBits);
  PMPD_CHECK(N > 0 && K > 0);
  const int S = o.seed_bits, P = o.parent_bits;
  AnyprecMatrix m;
  m.n = N;
  m.k = K;
  m.seed_bits = S;
  m.parent_bits = P;
  m.luts.resize(P - S + 1);
  for (int b = S; b <= P; ++b) m.luts[b - S].resize(static_cast<size_t>(N) << b);
  std::vector<uint8_t> codes(static_cast<size_t>(N) * K);
  std::atomic<int> next_row{0};
  auto worker = [&]() {
    std::vector<std::vector<float>> luts(P - S + 1);
    for (int b = S; b <= P; ++b) luts[b - S].resize(size_t{1} << b);
    for (int r; (r = next_row.fetch_add(1)) < N;) {
      const size_t off = static_cast<size_t>(r) * K;
      QuantizeRow(w + off, sensitivity ? sensitivity + off : nullptr, K, o,
                  o.seed ^ static_cast<uint64_t>(r), codes.data() + off, &luts);
      for (int b = S; b <= P; ++b) {
        for (int c = 0; c < (1 << b); ++c) {
          m.luts[b - S][(static_cast<size_t>(r) << b) + c] = kernels::F32ToF16(luts[b - S][c]);
        }
      }
    }
  };
  const int threads = std::max(1, std::min(o.threads, N));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();  // the calling thread works too
  for (auto& t : pool) t.join();
  m.qweight.resize(static_cast<size_t>(P) * N * kernels::AnyprecWordsPerRow(K));
  kernels::AnyprecPackRef(codes.data(), N, K, P, m.qweight.data());
  return m;
}

std::vector<float> QuantizeRtn(const float* w, int N, int K, int bits) {
  std::vector<float> out(static_cast<size_t>(N) * K);
  const int levels = (1 << bits) - 1;
  for (int n = 0; n < N; ++n) {
    const float* row = w + static_cast<size_t>(n) * K;
    const auto [lo_it, hi_it] = std::minmax_element(row, row + K);
    const float lo = *lo_it, hi = *hi_it;
    const float scale = hi > lo ? (hi - lo) / levels : 1.f;
    for (int k = 0; k < K; ++k) {
      const float q = std::round((row[k] - lo) / scale);
      out[static_cast<size_t>(n) * K + k] =
          lo + std::clamp(q, 0.f, static_cast<float>(levels)) * scale;
    }
  }
  return out;
}

}  // namespace pmpd::models
