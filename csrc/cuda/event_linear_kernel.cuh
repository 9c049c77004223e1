// The event ops on CUDA (event_linear.h) and their launch code, built by nvcc for a GPU
// (event_linear_kernel.cu registers them) and by the host compiler for the emulated device of
// the tests (csrc/emulated/event_linear_kernel.cpp).
//
// Forward: one warp per (row, tile of 32 output features); lane o of the warp owns feature o
// of the tile and adds weight_t[i][o] for the row's active inputs i, so each gather is one
// coalesced 32-element read of a weight row, and the row's indices are the same address for
// every lane (a broadcast). The sum is bias first, then the events in ascending order: the
// CPU kernel's order, so both give the same bits.
//
// Weight gradient, without atomics: a thread owns one output feature o and a chunk of rows,
// and adds grad_y[m][o] into row i of its chunk's partial sum for each event (m, i) of its
// rows, in ascending m; the partials of the chunks are then summed in a fixed order (at::sum),
// so two runs give the same bits. The chunks exist only to give the GPU enough threads.
//
// Conversion to events: one warp per row, in two passes around the glue's prefix sum of the
// counts (count, then fill): each pass reads the row in coalesced tiles of 32 columns, and a
// warp vote (ballot + popc) gives each spike its place, so the indices of a row come out
// ascending with no atomics and no scan across warps. The LIF op's events on CUDA are these
// passes over the spikes the forward kernel wrote (lif_events_with, csrc/lif.h says why).
//
// Bits (snnfast.longseq.bitpack's format): one thread per byte to pack, one per spike to
// unpack.
#pragma once

#include <ATen/Dispatch.h>

#include <algorithm>
#include <limits>

#include "cuda/device.cuh"
#include "event_linear.h"

namespace snnfast {
// Included by one file of each build: the kernels are private to it.
namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullWarp = 0xFFFFFFFFu;  // every lane of a warp, for its votes
constexpr int kRowsPerBlock = 4;  // warps per block of the forward and conversion kernels
constexpr int kConvertThreads = 128;  // threads per block of the bit packing

// One warp per row, lane l reading the columns l, l + 32, ... of it: each tile of 32 columns
// is one coalesced read, and the warp's vote on it tells every lane how many of the tile's
// spikes there are (the count) and how many lie left of its own column (where it writes).
template <typename U>
__global__ void __launch_bounds__(kWarp * kRowsPerBlock)
    count_kernel(const U* spikes, int64_t M, int64_t N, U zero_mask, U one, int64_t* counts, int32_t* not_binary) {
  const int64_t m = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  if (m >= M) return;  // the whole warp: every vote below has all its lanes
  const unsigned lane = threadIdx.x % kWarp;
  const U* row = spikes + m * N;
  int64_t count = 0;
  bool bad = false;
  for (int64_t n0 = 0; n0 < N; n0 += kWarp) {
    const U value = n0 + lane < N ? row[n0 + lane] : U(0);
    const bool nonzero = (value & zero_mask) != 0;
    bad |= nonzero && value != one;
    count += __popc(__ballot_sync(kFullWarp, nonzero));
  }
  if (lane == 0) counts[m] = count;
  // Lanes of every warp and block may find a value at once, and plain stores of even the same
  // value from several threads are a data race (undefined in CUDA's memory model as in C++'s):
  // one atomic per warp, after a vote, so that a tensor of rates does not serialise on it.
  if (__ballot_sync(kFullWarp, bad) != 0 && lane == 0) atomicExch(not_binary, 1);
}

template <typename U>
__global__ void __launch_bounds__(kWarp * kRowsPerBlock)
    fill_kernel(const U* spikes, int64_t M, int64_t N, U zero_mask, const int64_t* offsets, int32_t* indices) {
  const int64_t m = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  if (m >= M) return;
  const unsigned lane = threadIdx.x % kWarp, lanes_below = (1u << lane) - 1;
  const U* row = spikes + m * N;
  int64_t next = offsets[m];  // where the tile's first spike goes
  for (int64_t n0 = 0; n0 < N; n0 += kWarp) {
    const bool nonzero = n0 + lane < N && (row[n0 + lane] & zero_mask) != 0;
    const unsigned votes = __ballot_sync(kFullWarp, nonzero);
    if (nonzero) indices[next + __popc(votes & lanes_below)] = static_cast<int32_t>(n0 + lane);
    next += __popc(votes);
  }
}

// One thread per byte of the bits: it reads its 8 spikes (neighbouring threads, neighbouring
// 8-element runs: the warp reads one contiguous span) and writes one byte.
template <typename U>
__global__ void __launch_bounds__(kConvertThreads)
    pack_kernel(const U* spikes, int64_t M, int64_t N, int64_t bytes, U zero_mask, U one, uint8_t* packed,
                int32_t* not_binary) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= M * bytes) return;
  const int64_t m = i / bytes, n0 = i % bytes * 8;
  const U* row = spikes + m * N;
  unsigned byte = 0;
  bool bad = false;
  for (int j = 0; j < 8 && n0 + j < N; ++j) {
    const U value = row[n0 + j];
    const bool nonzero = (value & zero_mask) != 0;
    bad |= nonzero && value != one;
    byte |= static_cast<unsigned>(nonzero) << j;
  }
  packed[i] = static_cast<uint8_t>(byte);  // the padding bits stay 0
  if (bad) atomicExch(not_binary, 1);  // atomic: other threads may set it at once (count_kernel)
}

// One thread per spike: coalesced writes; the 8 threads of a byte read the same address.
template <typename T>
__global__ void __launch_bounds__(kConvertThreads)
    unpack_kernel(const uint8_t* packed, int64_t M, int64_t N, int64_t bytes, T* spikes) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= M * N) return;
  const int64_t m = i / N, n = i % N;
  spikes[i] = (packed[m * bytes + n / 8] >> (n % 8)) & 1 ? T(1.0f) : T(0.0f);
}

template <typename T>
__global__ void __launch_bounds__(kWarp * kRowsPerBlock)
    linear_kernel(const int64_t* offsets, const int32_t* indices, const T* weight_t, const T* bias, int64_t M,
                  int64_t out, T* y) {
  const int64_t m = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const int64_t o = static_cast<int64_t>(blockIdx.y) * kWarp + threadIdx.x % kWarp;
  if (m >= M || o >= out) return;
  T acc = bias != nullptr ? bias[o] : T(0);
  for (int64_t k = offsets[m]; k < offsets[m + 1]; ++k) acc += weight_t[static_cast<int64_t>(indices[k]) * out + o];
  y[m * out + o] = acc;
}

// partial [chunks, in, out]: chunk c covers rows [c * rows_per_chunk, ...).
template <typename T>
__global__ void __launch_bounds__(kWarp)
    weight_grad_kernel(const int64_t* offsets, const int32_t* indices, const T* grad_y, int64_t M, int64_t in,
                       int64_t out, int64_t rows_per_chunk, T* partial) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kWarp + threadIdx.x;
  if (o >= out) return;
  const int64_t c = blockIdx.y;
  T* gw = partial + c * in * out;
  for (int64_t i = 0; i < in; ++i) gw[i * out + o] = T(0);
  const int64_t m1 = std::min(M, (c + 1) * rows_per_chunk);
  for (int64_t m = c * rows_per_chunk; m < m1; ++m) {
    const T g = grad_y[m * out + o];
    for (int64_t k = offsets[m]; k < offsets[m + 1]; ++k) gw[static_cast<int64_t>(indices[k]) * out + o] += g;
  }
}

unsigned int grid_size(int64_t n, const char* what) {
  TORCH_CHECK(n <= std::numeric_limits<int32_t>::max(), "snnfast: ", n, " ", what,
              " are too many for one CUDA launch");
  return static_cast<unsigned int>(n);
}

// The glue holds a device guard for the tensors' device: the current device and stream are theirs.
void count_cuda(const at::Tensor& spikes, SpikeBits bits, at::Tensor& counts, at::Tensor& not_binary) {
  const int64_t M = spikes.size(0), N = spikes.size(1);
  const unsigned int blocks = grid_size((M + kRowsPerBlock - 1) / kRowsPerBlock, "rows");
  with_spike_bits(bits, [&](auto u) {
    using U = decltype(u);
    const auto kernel = count_kernel<U>;
    SNNFAST_LAUNCH(kernel, blocks, kWarp * kRowsPerBlock, 0, Sync::Warp, static_cast<const U*>(spikes.data_ptr()),
                   M, N, static_cast<U>(bits.zero_mask), static_cast<U>(bits.one_bits), counts.data_ptr<int64_t>(),
                   not_binary.data_ptr<int32_t>());
  });
}

void fill_cuda(const at::Tensor& spikes, SpikeBits bits, const at::Tensor& offsets, at::Tensor& indices) {
  const int64_t M = spikes.size(0), N = spikes.size(1);
  const unsigned int blocks = grid_size((M + kRowsPerBlock - 1) / kRowsPerBlock, "rows");
  with_spike_bits(bits, [&](auto u) {
    using U = decltype(u);
    const auto kernel = fill_kernel<U>;
    SNNFAST_LAUNCH(kernel, blocks, kWarp * kRowsPerBlock, 0, Sync::Warp, static_cast<const U*>(spikes.data_ptr()),
                   M, N, static_cast<U>(bits.zero_mask), offsets.data_ptr<int64_t>(), indices.data_ptr<int32_t>());
  });
}

void pack_cuda(const at::Tensor& spikes, SpikeBits bits, at::Tensor& packed, at::Tensor& not_binary) {
  const int64_t M = spikes.size(0), N = spikes.size(1), bytes = packed.size(1);
  const unsigned int blocks = grid_size((M * bytes + kConvertThreads - 1) / kConvertThreads, "blocks of bytes");
  with_spike_bits(bits, [&](auto u) {
    using U = decltype(u);
    const auto kernel = pack_kernel<U>;
    SNNFAST_LAUNCH(kernel, blocks, kConvertThreads, 0, Sync::None, static_cast<const U*>(spikes.data_ptr()), M, N,
                   bytes, static_cast<U>(bits.zero_mask), static_cast<U>(bits.one_bits),
                   packed.data_ptr<uint8_t>(), not_binary.data_ptr<int32_t>());
  });
}

void unpack_cuda(const at::Tensor& packed, at::Tensor& spikes) {
  const int64_t M = spikes.size(0), N = spikes.size(1), bytes = packed.size(1);
  const unsigned int blocks = grid_size((M * N + kConvertThreads - 1) / kConvertThreads, "blocks of spikes");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, spikes.scalar_type(), "bits_to_spikes_cuda", [&] {
    const auto kernel = unpack_kernel<scalar_t>;
    SNNFAST_LAUNCH(kernel, blocks, kConvertThreads, 0, Sync::None, packed.data_ptr<uint8_t>(), M, N, bytes,
                   spikes.data_ptr<scalar_t>());
  });
}

void linear_cuda(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                 const at::Tensor& bias, at::Tensor& y) {
  const int64_t M = y.size(0), out = y.size(1);
  const dim3 blocks(grid_size((M + kRowsPerBlock - 1) / kRowsPerBlock, "rows"), (out + kWarp - 1) / kWarp);
  TORCH_CHECK((out + kWarp - 1) / kWarp <= 65535, "snnfast.event_linear: ", out,
              " output features are too many for one CUDA launch");
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "event_linear_cuda", [&] {
    const auto kernel = linear_kernel<scalar_t>;
    SNNFAST_LAUNCH(kernel, blocks, kWarp * kRowsPerBlock, 0, Sync::None, offsets.data_ptr<int64_t>(),
                   indices.data_ptr<int32_t>(), weight_t.data_ptr<scalar_t>(),
                   bias.defined() ? bias.data_ptr<scalar_t>() : nullptr, M, out, y.data_ptr<scalar_t>());
  });
}

void weight_grad_cuda(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& grad_y,
                      at::Tensor& grad_weight_t) {
  const int64_t M = grad_y.size(0), out = grad_y.size(1), in = grad_weight_t.size(0);
  const int64_t tiles = (out + kWarp - 1) / kWarp;
  // Enough warps for every multiprocessor several times over, the partials at most 32 copies.
  const int64_t chunks = std::clamp<int64_t>((4 * multiprocessor_count() + tiles - 1) / tiles, 1,
                                             std::clamp<int64_t>(M, 1, 32));
  const int64_t rows_per_chunk = (M + chunks - 1) / chunks;
  TORCH_CHECK(chunks <= 65535, "snnfast.event_linear_weight_grad: too many chunks");
  at::Tensor partial = chunks == 1 ? grad_weight_t : at::empty({chunks, in, out}, grad_y.options());
  AT_DISPATCH_FLOATING_TYPES(grad_y.scalar_type(), "event_linear_weight_grad_cuda", [&] {
    const auto kernel = weight_grad_kernel<scalar_t>;
    SNNFAST_LAUNCH(kernel, dim3(grid_size(tiles, "output tiles"), chunks), kWarp, 0, Sync::None,
                   offsets.data_ptr<int64_t>(), indices.data_ptr<int32_t>(), grad_y.data_ptr<scalar_t>(), M, in,
                   out, rows_per_chunk, partial.data_ptr<scalar_t>());
  });
  if (chunks > 1) at::sum_out(grad_weight_t, partial, {0});
}

// No transpose: torch's contiguous() of a transposed view is already a tiled kernel there.
constexpr EventKernels kCUDAEventKernels{count_cuda, fill_cuda, nullptr, pack_cuda, unpack_cuda, linear_cuda,
                                         weight_grad_cuda, nullptr};

}  // namespace
}  // namespace snnfast
