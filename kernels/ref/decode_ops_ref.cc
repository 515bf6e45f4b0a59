#include "kernels/ref/decode_ops_ref.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/half.h"

namespace pmpd::kernels {

void EmbeddingLookupRef(const float* table, const int32_t* ids, int n, int dim, float* out) {
  for (int t = 0; t < n; ++t)
    std::memcpy(out + static_cast<size_t>(t) * dim, table + static_cast<size_t>(ids[t]) * dim,
                dim * 4);
}

void AddInPlaceRef(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void SwiGluRef(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
}

void RotaryInPlaceRef(float* x, const int32_t* positions, const float* cos, const float* sin, int n,
                      int heads, int head_dim) {
  const int half = head_dim / 2;
  std::vector<float> tmp(head_dim);
  for (int t = 0; t < n; ++t) {
    const float* c = cos + static_cast<size_t>(positions[t]) * head_dim;
    const float* s = sin + static_cast<size_t>(positions[t]) * head_dim;
    for (int h = 0; h < heads; ++h) {
      float* v = x + (static_cast<size_t>(t) * heads + h) * head_dim;
      for (int i = 0; i < head_dim; ++i) {
        const float rot = i < half ? -v[i + half] : v[i - half];
        tmp[i] = v[i] * c[i] + rot * s[i];
      }
      std::memcpy(v, tmp.data(), head_dim * 4);
    }
  }
}

void DecodeAttentionRef(const float* q, const float* k, const float* v, int heads, int kv_heads,
                        int head_dim, int max_len, int len, float* out) {
  const int group = heads / kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  std::vector<double> p(len);
  for (int h = 0; h < heads; ++h) {
    const int kvh = h / group;
    const float* qh = q + static_cast<size_t>(h) * head_dim;
    double mx = -INFINITY;
    for (int j = 0; j < len; ++j) {
      const float* kj = k + (static_cast<size_t>(kvh) * max_len + j) * head_dim;
      double s = 0;
      for (int d = 0; d < head_dim; ++d) s += static_cast<double>(qh[d]) * kj[d];
      p[j] = s * scale;
      mx = std::max(mx, p[j]);
    }
    double z = 0;
    for (int j = 0; j < len; ++j) z += (p[j] = std::exp(p[j] - mx));
    for (int d = 0; d < head_dim; ++d) {
      double acc = 0;
      for (int j = 0; j < len; ++j)
        acc += p[j] * v[(static_cast<size_t>(kvh) * max_len + j) * head_dim + d];
      out[static_cast<size_t>(h) * head_dim + d] = static_cast<float>(acc / z);
    }
  }
}

void CausalSoftmaxRowsRef(float* s, int heads, int n, int first_pos) {
  const int len = first_pos + n;
  for (int r = 0; r < heads * n; ++r) {
    float* row = s + static_cast<size_t>(r) * len;
    const int valid = first_pos + r % n + 1;
    double mx = -INFINITY, z = 0;
    for (int j = 0; j < valid; ++j) mx = std::max(mx, static_cast<double>(row[j]));
    for (int j = 0; j < valid; ++j) z += std::exp(row[j] - mx);
    for (int j = 0; j < len; ++j)
      row[j] = j < valid ? static_cast<float>(std::exp(row[j] - mx) / z) : 0.f;
  }
}

void DenseF16GemvRef(const float* x, int M, const uint16_t* w, int N, int K, float* y) {
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      double acc = 0;
      for (int k = 0; k < K; ++k)
        acc += static_cast<double>(x[static_cast<size_t>(m) * K + k]) *
               F16ToF32(w[static_cast<size_t>(n) * K + k]);
      y[static_cast<size_t>(m) * N + n] = static_cast<float>(acc);
    }
  }
}

void ArgmaxRowsRef(const float* x, int rows, int cols, int32_t* out) {
  for (int r = 0; r < rows; ++r) {
    const float* row = x + static_cast<size_t>(r) * cols;
    int best = 0;
    for (int c = 1; c < cols; ++c) {
      if (row[c] > row[best]) best = c;
    }
    out[r] = best;
  }
}

void KvCacheWriteRef(const float* x, const int32_t* positions, int n, int kv_heads, int head_dim,
                     int max_len, float* cache) {
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < kv_heads; ++h) {
      std::memcpy(cache + (static_cast<size_t>(h) * max_len + positions[t]) * head_dim,
                  x + (static_cast<size_t>(t) * kv_heads + h) * head_dim,
                  static_cast<size_t>(head_dim) * 4);
    }
  }
}

void ConvertF32ToF16Ref(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = F32ToF16(x[i]);
}

}  // namespace pmpd::kernels
