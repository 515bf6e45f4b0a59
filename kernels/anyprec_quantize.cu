// Any-precision quantization on the GPU (contract in anyprec_quantize.cuh). Each kernel step names
// the lines of kernels/ref/anyprec_quantize_ref.cc it reproduces; compiled with -fmad=false so
// that every double expression rounds exactly as the reference's.
//
// Per batch of rows:
//   1. PrepareSortKernel: keys = w + 0 (so -0 sorts with +0, as the reference's `<` does), values
//      = column, segment offsets.
//   2. cub segmented radix sort (stable: equal values keep column order, the reference's tie rule).
//   3. TransposeSortedKernel: each row's sorted values (original signs) and columns, stored
//      column-major ([position][row]) so that the next kernel's lanes read consecutive addresses.
//   4. QuantizeRowKernel: one thread per row runs the reference's algorithm as it is written there,
//      its arrays (prefix sums, k-means++ weights, generator state, centres, borders) in scratch
//      laid out [index][row]. The rows of a warp share every instruction; the per-row serial sums
//      cost no more than the CPU's.
//   5. AnyprecPackCuda: codes -> bitplanes.
#include <cub/device/device_segmented_radix_sort.cuh>

#include "kernels/anyprec_quantize.cuh"
#include "kernels/check.h"
#include "kernels/cuda_check.cuh"
#include "kernels/grid_stride.cuh"
#include "kernels/ref/anyprec_quantize_ref.h"
#include "kernels/ref/anyprec_ref.h"

namespace pmpd::kernels {
namespace {

// Element i of a row's array in scratch laid out [index][row] (row r of a batch of `rows`).
template <typename T>
struct Column {
  T* base;
  int rows;
  __device__ T& operator[](int64_t i) const { return base[i * rows]; }
};

// Prefix sums of one row over its sorted order; a cluster is a range [lo, hi). As RowStats.
struct RowStats {
  Column<double> sf, sfx, sfxx;
  __device__ double W(int lo, int hi) const { return sf[hi] - sf[lo]; }
  __device__ double Mean(int lo, int hi, double fallback) const {
    const double wsum = W(lo, hi);
    return wsum > 0 ? (sfx[hi] - sfx[lo]) / wsum : fallback;
  }
  __device__ double Sse(int lo, int hi) const {
    const double wsum = W(lo, hi);
    if (wsum <= 0) return 0;
    const double m = (sfx[hi] - sfx[lo]);
    return (sfxx[hi] - sfxx[lo]) - m * m / wsum;
  }
};

__global__ void PrepareSortKernel(const float* w, int rows, int K, float* keys, int* columns,
                                  int* offsets) {
  const size_t n = static_cast<size_t>(rows) * K;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    keys[i] = w[i] + 0.0f;  // -0 + 0 = +0: the radix sort would otherwise put -0 before +0
    columns[i] = static_cast<int>(i % K);
    if (i % K == 0) offsets[i / K] = static_cast<int>(i);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) offsets[rows] = static_cast<int>(n);
}

// Sorted columns [row][position] -> x (the original values, signs of zero kept) and columns,
// both [position][row].
__global__ void TransposeSortedKernel(const float* w, int rows, int K, const int* cols_sorted,
                                      float* x, int* cols) {
  const size_t n = static_cast<size_t>(rows) * K;
  for (size_t t = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; t < n;
       t += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t i = t / rows, r = t % rows;
    const int c = cols_sorted[r * K + i];
    cols[t] = c;
    x[t] = w[r * K + c];
  }
}

struct Scratch {
  void* sort_temp;
  size_t sort_temp_bytes;
  float *keys_in, *keys_out, *x;
  int *cols_in, *cols_out, *cols, *offsets, *borders;
  double *sf, *sfx, *sfxx, *weight, *d2, *centre;
  uint64_t* mt;
};

constexpr int kMtWords = 312;
constexpr int kMaxBorders = 257;  // 2^P + 1, P <= 8

// Carves `base` into the buffers for `rows` rows (base nullptr: only sizes). Returns total bytes.
size_t Layout(void* base, int rows, int K, Scratch* s) {
  const size_t n = static_cast<size_t>(rows) * K, n1 = static_cast<size_t>(rows) * (K + 1);
  size_t sort_bytes = 0;
  PMPD_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
      nullptr, sort_bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int*>(nullptr), static_cast<int*>(nullptr), static_cast<int>(n), rows,
      static_cast<const int*>(nullptr), static_cast<const int*>(nullptr)));
  size_t off = 0;
  char* b = static_cast<char*>(base);
  auto take = [&](size_t bytes) {
    void* p = b ? b + off : nullptr;
    off += (bytes + 255) / 256 * 256;
    return p;
  };
  s->sort_temp_bytes = sort_bytes;
  s->sort_temp = take(sort_bytes);
  s->keys_in = static_cast<float*>(take(n * 4));
  s->keys_out = static_cast<float*>(take(n * 4));
  s->x = static_cast<float*>(take(n * 4));
  s->cols_in = static_cast<int*>(take(n * 4));
  s->cols_out = static_cast<int*>(take(n * 4));
  s->cols = static_cast<int*>(take(n * 4));
  s->offsets = static_cast<int*>(take((rows + 1) * 4));
  s->sf = static_cast<double*>(take(n1 * 8));
  s->sfx = static_cast<double*>(take(n1 * 8));
  s->sfxx = static_cast<double*>(take(n1 * 8));
  s->weight = static_cast<double*>(take(n * 8));
  s->d2 = static_cast<double*>(take(n * 8));
  s->centre = static_cast<double*>(take(static_cast<size_t>(rows) * 256 * 8));
  s->borders = static_cast<int*>(take(static_cast<size_t>(rows) * 2 * kMaxBorders * 4));
  s->mt = static_cast<uint64_t*>(take(static_cast<size_t>(rows) * kMtWords * 8));
  return off;
}

// std::mt19937_64 (the reference's generator) with its state in a Column.
struct Mt19937_64 {
  static constexpr int kM = 156;
  Column<uint64_t> mt;
  int index = kMtWords;
  __device__ Mt19937_64(Column<uint64_t> state, uint64_t seed) : mt(state) {
    mt[0] = seed;
    for (int i = 1; i < kMtWords; ++i)
      mt[i] = 6364136223846793005ULL * (mt[i - 1] ^ (mt[i - 1] >> 62)) + i;
  }
  __device__ uint64_t Next() {
    if (index >= kMtWords) {
      constexpr uint64_t kUpper = ~uint64_t{0} << 31, kLower = ~kUpper;
      for (int i = 0; i < kMtWords; ++i) {
        const uint64_t y = (mt[i] & kUpper) | (mt[(i + 1) % kMtWords] & kLower);
        mt[i] = mt[(i + kM) % kMtWords] ^ (y >> 1) ^ ((y & 1) ? 0xb5026f5aa96619e9ULL : 0);
      }
      index = 0;
    }
    uint64_t y = mt[index++];
    y ^= (y >> 29) & 0x5555555555555555ULL;
    y ^= (y << 17) & 0x71d67fffeda60000ULL;
    y ^= (y << 37) & 0xfff7eee000000000ULL;
    y ^= y >> 43;
    return y;
  }
  // std::uniform_real_distribution<double>(0, 1) on this engine: libstdc++'s generate_canonical
  // takes one draw and divides it by 2^64, keeping the result below 1.
  __device__ double Uniform() {
    const double u = static_cast<double>(Next()) * 0x1p-64;
    return u >= 1.0 ? 0x1.fffffffffffffp-1 : u;
  }
};

// First index in sorted x[0, n) whose value is > v (std::upper_bound).
template <typename X, typename V>
__device__ int UpperBound(const X& x, int n, V v) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (v < x[mid]) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// One thread per row of the batch (row0 + r of the matrix): AnyprecQuantizeRowRef after its sort.
__global__ void QuantizeRowKernel(const float* f, int rows, int row0, int K, int S, int P,
                                  int max_iter, uint64_t seed, Scratch s, uint8_t* codes,
                                  float* luts) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const int grow = row0 + r;
  const float* frow = f ? f + static_cast<size_t>(grow) * K : nullptr;
  const Column<float> x{s.x + r, rows};
  const Column<int> col{s.cols + r, rows};
  const RowStats st{{s.sf + r, rows}, {s.sfx + r, rows}, {s.sfxx + r, rows}};
  const Column<double> weight{s.weight + r, rows}, d2{s.d2 + r, rows}, c{s.centre + r, rows};
  Column<int> borders[2] = {{s.borders + r, rows}, {s.borders + r + rows * kMaxBorders, rows}};

  double fmax = 0;
  for (int i = 0; i < K; ++i) {
    const double v = frow ? static_cast<double>(frow[col[i]]) : 1.0;
    fmax = fmax < v ? v : fmax;  // std::max(fmax, v)
  }
  const double floor = fmax > 0 ? 1e-8 * fmax : 1.0;
  st.sf[0] = st.sfx[0] = st.sfxx[0] = 0;
  for (int i = 0; i < K; ++i) {
    const double xi = x[i];
    const double fv = frow ? static_cast<double>(frow[col[i]]) : 1.0;
    const double fi = (frow ? (0.0 < fv ? fv : 0.0) : 1.0) + floor;
    st.sf[i + 1] = st.sf[i] + fi;
    st.sfx[i + 1] = st.sfx[i] + fi * xi;
    st.sfxx[i + 1] = st.sfxx[i] + fi * xi * xi;
  }
  // SeedKmeans: k-means++, one draw per centre.
  const int k = 1 << S;
  Mt19937_64 rng({s.mt + r, rows}, seed ^ static_cast<uint64_t>(grow));
  auto pick = [&]() {
    double total = 0;
    for (int i = 0; i < K; ++i) total += weight[i];
    if (!(total > 0)) return static_cast<int>(rng.Uniform() * K) % K;
    double rem = rng.Uniform() * total;
    for (int i = 0; i < K; ++i) {
      rem -= weight[i];
      if (rem <= 0) return i;
    }
    return K - 1;
  };
  for (int i = 0; i < K; ++i) {
    d2[i] = INFINITY;
    weight[i] = st.sf[i + 1] - st.sf[i];
  }
  c[0] = static_cast<double>(x[pick()]) + 0.0;  // -0 -> +0, as the reference
  for (int j = 1; j < k; ++j) {
    const double last = c[j - 1];
    for (int i = 0; i < K; ++i) {
      const double d = static_cast<double>(x[i]) - last;
      const double dd = d * d;
      d2[i] = dd < d2[i] ? dd : d2[i];  // std::min(d2, dd)
      weight[i] = (st.sf[i + 1] - st.sf[i]) * d2[i];
    }
    c[j] = static_cast<double>(x[pick()]) + 0.0;
  }
  // Insertion sort: std::sort's result, as equal centres are identical doubles (no -0: see above).
  auto sort_centres = [&] {
    for (int a = 1; a < k; ++a) {
      const double v = c[a];
      int b = a - 1;
      while (b >= 0 && v < c[b]) {
        c[b + 1] = c[b];
        --b;
      }
      c[b + 1] = v;
    }
  };
  sort_centres();
  Column<int> bo = borders[0];
  for (int j = 0; j <= k; ++j) bo[j] = 0;  // the reference's zero-initialised borders
  for (int it = 0; it < max_iter; ++it) {
    bo[0] = 0;
    bo[k] = K;
    for (int j = 1; j < k; ++j) {
      const double mid = 0.5 * (c[j - 1] + c[j]);
      const int b = UpperBound(x, K, mid);
      bo[j] = bo[j - 1] < b ? b : bo[j - 1];  // std::max(b, previous)
    }
    bool changed = false;
    for (int j = 0; j < k; ++j) {
      const double m = st.Mean(bo[j], bo[j + 1], c[j]);
      changed |= m != c[j];
      c[j] = m;
    }
    sort_centres();
    if (!changed) break;
  }
  // The upscaling loop: level S's LUT, then the best split of every cluster up to P.
  float* lut_row = luts + static_cast<size_t>(grow) * AnyprecLutFloats(S, P);
  for (int j = 0; j < k; ++j) lut_row[j] = static_cast<float>(c[j]);
  int cur = 0;
  for (int b = S; b < P; ++b) {
    const int clusters = 1 << b;
    const Column<int> from = borders[cur], next = borders[cur ^ 1];
    const float* parent_lut = lut_row + AnyprecLutOffset(S, b);
    float* lut = lut_row + AnyprecLutOffset(S, b + 1);
    for (int cl = 0; cl < clusters; ++cl) {
      const int lo = from[cl], hi = from[cl + 1];
      int split = hi;  // BestSplit
      if (hi - lo >= 2) {
        int best = lo + 1;
        double best_cost = INFINITY;
        for (int p = lo + 1; p < hi; ++p) {
          if (x[p] == x[p - 1]) continue;
          const double cost = st.Sse(lo, p) + st.Sse(p, hi);
          if (cost < best_cost) best_cost = cost, best = p;
        }
        split = best_cost == INFINITY ? hi : best;
      }
      next[2 * cl] = lo;
      next[2 * cl + 1] = split;
      const double parent = parent_lut[cl];
      lut[2 * cl] = static_cast<float>(st.Mean(lo, split, parent));
      lut[2 * cl + 1] = static_cast<float>(st.Mean(split, hi, parent));
    }
    next[2 * clusters] = K;
    cur ^= 1;
  }
  const Column<int> final_borders = borders[cur];
  uint8_t* code_row = codes + static_cast<size_t>(grow) * K;
  for (int cl = 0; cl < (1 << P); ++cl) {
    for (int i = final_borders[cl]; i < final_borders[cl + 1]; ++i)
      code_row[col[i]] = static_cast<uint8_t>(cl);
  }
}

// One thread per (row, word): the P plane words of that word position.
__global__ void PackKernel(const uint8_t* codes, int N, int K, int P, uint32_t* qweight) {
  const int kw = AnyprecWordsPerRow(K), kpad = kw * 32;
  const size_t n = static_cast<size_t>(N) * kw;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int row = static_cast<int>(i / kw), word = static_cast<int>(i % kw);
    const int chunk = word / 32, t = word % 32;
    const int T = (chunk + 1) * 1024 <= kpad ? 32 : (kpad % 1024) / 32;
    uint32_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int sr = 0; sr < 32; ++sr) {
      const int run = sr / 8, r = sr % 8;
      const int k = chunk * 1024 + 8 * T * run + 8 * t + r;
      if (k >= K) continue;
      const int code = codes[static_cast<size_t>(row) * K + k];
      const int bit = 31 - 8 * run - r;
      for (int b = 0; b < P; ++b)
        planes[b] |= static_cast<uint32_t>((code >> (P - 1 - b)) & 1) << bit;
    }
    for (int b = 0; b < P; ++b) qweight[(static_cast<size_t>(b) * N + row) * kw + word] = planes[b];
  }
}

}  // namespace

size_t AnyprecQuantizeScratchBytes(int rows_per_batch, int K) {
  Scratch s;
  return Layout(nullptr, rows_per_batch, K, &s);
}

void AnyprecQuantizeRowsCuda(const float* w, const float* f, int N, int K, int S, int P,
                             int max_lloyd_iterations, uint64_t seed, int rows_per_batch,
                             void* scratch, size_t scratch_bytes, uint8_t* codes, float* luts,
                             cudaStream_t stream) {
  PMPD_CHECK(S >= 1 && S <= P && P <= 8 && N >= 1 && K >= 1 && rows_per_batch >= 1);
  PMPD_CHECK(static_cast<int64_t>(rows_per_batch) * K < (int64_t{1} << 31));
  Scratch s;
  PMPD_CHECK(Layout(scratch, rows_per_batch, K, &s) <= scratch_bytes, "scratch too small");
  for (int row0 = 0; row0 < N; row0 += rows_per_batch) {
    const int rows = N - row0 < rows_per_batch ? N - row0 : rows_per_batch;
    const int64_t n = static_cast<int64_t>(rows) * K;
    const float* wb = w + static_cast<size_t>(row0) * K;
    PrepareSortKernel<<<GridStrideBlocks(n), kGridStrideThreads, 0, stream>>>(
        wb, rows, K, s.keys_in, s.cols_in, s.offsets);
    PMPD_CUDA_CHECK(cudaGetLastError());
    size_t temp = s.sort_temp_bytes;
    PMPD_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
        s.sort_temp, temp, s.keys_in, s.keys_out, s.cols_in, s.cols_out, static_cast<int>(n), rows,
        s.offsets, s.offsets + 1, 0, 32, stream));
    TransposeSortedKernel<<<GridStrideBlocks(n), kGridStrideThreads, 0, stream>>>(
        wb, rows, K, s.cols_out, s.x, s.cols);
    PMPD_CUDA_CHECK(cudaGetLastError());
    constexpr int kThreads = 128;
    QuantizeRowKernel<<<(rows + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
        f, rows, row0, K, S, P, max_lloyd_iterations, seed, s, codes, luts);
    PMPD_CUDA_CHECK(cudaGetLastError());
  }
}

void AnyprecPackCuda(const uint8_t* codes, int N, int K, int P, uint32_t* qweight,
                     cudaStream_t stream) {
  PMPD_CHECK(P >= 1 && P <= 8 && N >= 1 && K >= 1);
  const int64_t n = static_cast<int64_t>(N) * AnyprecWordsPerRow(K);
  PackKernel<<<GridStrideBlocks(n), kGridStrideThreads, 0, stream>>>(codes, N, K, P, qweight);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::kernels
