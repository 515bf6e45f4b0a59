#include "kernels/ref/anyprec_quantize_ref.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/check.h"

namespace pmpd::kernels {
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
  // k-means++: first centre by weight, then proportional to f * D^2. One draw per centre.
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
  // + 0.0: a centre picked at -0 becomes +0, so that sorting equal centres cannot order them by
  // sign (std::sort and the GPU's insertion sort would differ, and the LUT keeps the sign).
  c.push_back(st.x[pick(w)] + 0.0);
  while (static_cast<int>(c.size()) < k) {
    for (int i = 0; i < n; ++i) {
      const double d = st.x[i] - c.back();
      d2[i] = std::min(d2[i], d * d);
      w[i] = (st.sf[i + 1] - st.sf[i]) * d2[i];
    }
    c.push_back(st.x[pick(w)] + 0.0);
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

// Best weighted two-way split of [lo, hi): the first split point minimising SSE(lo,s) +
// SSE(s,hi). O(hi-lo).
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

}  // namespace

void AnyprecQuantizeRowRef(const float* w, const float* f, int K, int S, int P,
                           int max_lloyd_iterations, uint64_t row_seed, uint8_t* codes,
                           float* luts) {
  PMPD_CHECK(S >= 1 && S <= P && P <= 8 && K >= 1);
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
  SeedKmeans(st, 1 << S, max_lloyd_iterations, rng, &borders, &cent);
  for (int c = 0; c < (1 << S); ++c) luts[c] = static_cast<float>(cent[c]);
  for (int b = S; b < P; ++b) {
    const int clusters = 1 << b;
    std::vector<int> next(2 * clusters + 1);
    const float* parent_lut = luts + AnyprecLutOffset(S, b);
    float* lut = luts + AnyprecLutOffset(S, b + 1);
    for (int c = 0; c < clusters; ++c) {
      const int lo = borders[c], hi = borders[c + 1];
      const int s = BestSplit(st, lo, hi);
      next[2 * c] = lo;
      next[2 * c + 1] = s;
      const double parent = parent_lut[c];  // the float LUT entry, as stored
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

}  // namespace pmpd::kernels
