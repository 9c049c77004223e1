// The sum of an event row: bias plus the rows of W^T of a row's events, what event_linear
// computes for each row (event_linear_kernel.cpp) and the fused event_linear_lif op for each
// step of the LIF kernel (lif_kernel.cpp), in the same order, so that both give the same bits.
#pragma once

#include <cstdint>
#include <cstring>
#include <algorithm>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace snnfast {
namespace {

// Adds the weight rows of the events k0 .. k1 (w: their tile of features o0 ..) to row[0 .. len).
template <typename T>
inline void gather_add(const T* __restrict w, int64_t out, const int32_t* idx, int64_t k0, int64_t k1,
                       T* __restrict row, int64_t len) {
  for (int64_t k = k0; k < k1; ++k) {
    const T* __restrict wr = w + static_cast<int64_t>(idx[k]) * out;
    for (int64_t o = 0; o < len; ++o) row[o] += wr[o];
  }
}

#if defined(__AVX2__)
// A register tile: the sums of kVectors vectors of output features stay in registers over
// all the events of a row, stored once (the loop above loads and stores the row at every
// event: 1.45x slower, 700 -> 256 float32 features at 3 %, this project's benchmark machine).
constexpr int kVectors = 8;

template <typename T>
struct Lanes;
template <>
struct Lanes<float> {
  using V = __m256;
  static constexpr int64_t kWidth = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
};
template <>
struct Lanes<double> {
  using V = __m256d;
  static constexpr int64_t kWidth = 4;
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
};

// row[0 .. kVectors * kWidth) = its current values + the weight rows of events k0 .. k1.
template <typename T>
inline void gather_add_tile(const T* w, int64_t out, const int32_t* idx, int64_t k0, int64_t k1, T* row) {
  using L = Lanes<T>;
  typename L::V acc[kVectors];
  for (int v = 0; v < kVectors; ++v) acc[v] = L::load(row + v * L::kWidth);
  for (int64_t k = k0; k < k1; ++k) {
    const T* wr = w + static_cast<int64_t>(idx[k]) * out;
    for (int v = 0; v < kVectors; ++v) acc[v] = L::add(acc[v], L::load(wr + v * L::kWidth));
  }
  for (int v = 0; v < kVectors; ++v) L::store(row + v * L::kWidth, acc[v]);
}
#endif

// row[0 .. len) = bias[0 .. len) (none: 0) + the rows of w (their features 0 .. len, rows
// `stride` apart) of the events k0 .. k1, ascending: 64 features at a time in registers.
template <typename T>
inline void event_row(const T* w, int64_t stride, const T* bias, const int32_t* idx, int64_t k0, int64_t k1,
                      T* row, int64_t len) {
  if (bias != nullptr) {
    std::memcpy(row, bias, len * sizeof(T));
  } else {
    std::fill(row, row + len, T(0));
  }
  int64_t o0 = 0;
#if defined(__AVX2__)
  constexpr int64_t kTile = kVectors * Lanes<T>::kWidth;
  for (; o0 + kTile <= len; o0 += kTile) gather_add_tile(w + o0, stride, idx, k0, k1, row + o0);
#endif
  gather_add(w + o0, stride, idx, k0, k1, row + o0, len - o0);
}

}  // namespace
}  // namespace snnfast
