// Finding the spikes of a row fast, for the conversion of a dense spike tensor to events
// (event_linear_kernel.cpp) and for the events the LIF kernel emits from its own pass
// (lif_kernel.cpp): 32 elements at a time into a bit mask (AVX2 compares where the build has
// them), then one index per set bit. A test per element and a branch per spike, as the
// plain loop has, costs 3x more at the 3 % rates of trained networks (the branch on each
// element is mispredicted at every spike).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace snnfast {
namespace {

// Elements per mask.
constexpr int64_t kMaskBlock = 32;

// The unsigned integer of T's size, whose bit patterns nonzero_mask tests.
template <typename T>
using BitsOf = std::conditional_t<
    sizeof(T) == 1, uint8_t,
    std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;

// Bit j of the result is set where element j of p[0 .. len) (len <= kMaskBlock) is nonzero,
// (v & zero_mask) != 0 for the bit pattern v of the element (so that -0.0 is 0); with
// kCheckOne, bad gets the bits of the nonzero elements that are not `one` (a value other than
// 0 and 1). Without it (spikes a LIF kernel has just written, which are 0 or 1) the compare
// with `one` is skipped: it is half the work of a block.
//
// Always inlined: it is called once per 32 elements, a few dozen instructions each. The last,
// partial block of a row goes to partial_mask instead.
template <bool kCheckOne, typename U>
uint32_t partial_mask(const U* p, int64_t len, U zero_mask, U one, uint32_t& bad);

template <bool kCheckOne = true, typename U>
[[gnu::always_inline]] inline uint32_t nonzero_mask(const U* p, int64_t len, U zero_mask, U one, uint32_t& bad) {
#if defined(__AVX2__)
  if constexpr (sizeof(U) != 2) {
    if (len < kMaskBlock) return partial_mask<kCheckOne>(p, len, zero_mask, one, bad);
  }
  if (len == kMaskBlock) {
    if constexpr (sizeof(U) == 4) {
      const __m256i mask = _mm256_set1_epi32(static_cast<int32_t>(zero_mask));
      const __m256i ones = _mm256_set1_epi32(static_cast<int32_t>(one));
      uint32_t nonzero = 0, is_one = 0;
      for (int j = 0; j < 4; ++j) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8 * j));
        const __m256i zero = _mm256_cmpeq_epi32(_mm256_and_si256(v, mask), _mm256_setzero_si256());
        nonzero |= static_cast<uint32_t>(~_mm256_movemask_ps(_mm256_castsi256_ps(zero)) & 0xFF) << (8 * j);
        if constexpr (kCheckOne)
          is_one |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(v, ones))))
                    << (8 * j);
      }
      if constexpr (kCheckOne) bad |= nonzero & ~is_one;
      return nonzero;
    } else if constexpr (sizeof(U) == 8) {
      const __m256i mask = _mm256_set1_epi64x(static_cast<int64_t>(zero_mask));
      const __m256i ones = _mm256_set1_epi64x(static_cast<int64_t>(one));
      uint32_t nonzero = 0, is_one = 0;
      for (int j = 0; j < 8; ++j) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 4 * j));
        const __m256i zero = _mm256_cmpeq_epi64(_mm256_and_si256(v, mask), _mm256_setzero_si256());
        nonzero |= static_cast<uint32_t>(~_mm256_movemask_pd(_mm256_castsi256_pd(zero)) & 0xF) << (4 * j);
        if constexpr (kCheckOne)
          is_one |= static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(v, ones))))
                    << (4 * j);
      }
      if constexpr (kCheckOne) bad |= nonzero & ~is_one;
      return nonzero;
    } else if constexpr (sizeof(U) == 1) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      const __m256i zero = _mm256_cmpeq_epi8(_mm256_and_si256(v, _mm256_set1_epi8(static_cast<char>(zero_mask))),
                                             _mm256_setzero_si256());
      const uint32_t nonzero = ~static_cast<uint32_t>(_mm256_movemask_epi8(zero));
      const uint32_t is_one =
          static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(static_cast<char>(one)))));
      bad |= nonzero & ~is_one;
      return nonzero;
    }
  }
#endif
  uint32_t nonzero = 0, not_one = 0;
  for (int64_t j = 0; j < len; ++j) {
    const bool nz = (p[j] & zero_mask) != 0;
    nonzero |= static_cast<uint32_t>(nz) << j;
    not_one |= static_cast<uint32_t>(nz && p[j] != one) << j;
  }
  bad |= not_one;
  return nonzero;
}

// A partial block through the vector path on a zero-padded copy (zeros set no bit): in the
// scalar loop, a branch-free compare per element, it costs about as much as a whole vector
// block per four elements. Not inlined: once per row, and its padded copy would otherwise
// give every inlined block a frame to set up.
template <bool kCheckOne, typename U>
[[gnu::noinline]] uint32_t partial_mask(const U* p, int64_t len, U zero_mask, U one, uint32_t& bad) {
  U padded[kMaskBlock] = {};
  std::memcpy(padded, p, len * sizeof(U));
  return nonzero_mask<kCheckOne>(padded, kMaskBlock, zero_mask, one, bad);
}

// Writes base + the position of each set bit of mask to out, ascending, and returns how
// many. It writes in groups of 4, the first whatever the mask: a mask of up to 4 spikes (nearly
// every mask at the rates of trained networks) then takes no branch, where a test of
// mask == 0 is mispredicted at about every other block of 32 at a 3 % rate. So out must have
// room for kMaskBlock indices whatever the count.
inline int64_t write_set_bits(uint32_t mask, int32_t base, int32_t* out) {
  const int64_t count = __builtin_popcount(mask);
  // The ors keep ctz defined once mask runs out; what they write lies past the count.
  constexpr uint32_t kTop = 1u << 31;
  do {
    out[0] = base + __builtin_ctz(mask | kTop);
    mask &= mask - 1;
    out[1] = base + __builtin_ctz(mask | kTop);
    mask &= mask - 1;
    out[2] = base + __builtin_ctz(mask | kTop);
    mask &= mask - 1;
    out[3] = base + __builtin_ctz(mask | kTop);
    mask &= mask - 1;
    out += 4;
  } while (mask != 0);
  return count;
}

}  // namespace
}  // namespace snnfast
