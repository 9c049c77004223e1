// Event-driven Linear layers: spikes as events, and y = S W^T + b computed only on them.
//
// Events are a compressed-row format of a [M, N] tensor of 0/1 spikes (M = T x B rows):
//   offsets [M + 1] int64: row m's events are indices[offsets[m] .. offsets[m + 1]);
//   indices [nnz]   int32: the neurons that fired, ascending within a row (deterministic).
// offsets are int64 because they count events over the whole sequence (T x B x N x rate
// passes 2^31 at T = 10,000, B = 256, N = 2,312, 40 %) and cost 8 bytes per row beside the
// 4 x N x rate bytes of its indices; indices are int32 because a neuron index fits, and they
// are most of the bytes. offsets may start above 0 (a slice of rows of a longer sequence):
// the kernels read them as absolute positions in indices.
//
// The glue (event_linear.cpp) checks the arguments, allocates and does the device-independent
// parts (the prefix sum of the counts); a device file supplies the kernels below and
// registers the ops through the *_with templates, as lif.h does for the LIF op.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <tuple>

namespace snnfast {

// Which values of a spike dtype are 0 and 1, as bit patterns of its element: a value v is 0
// when (v & zero_mask) == 0 (so that -0.0 is 0 too), 1 when v == one_bits.
struct SpikeBits {
  int element_bytes;
  uint64_t zero_mask, one_bits;
};
SpikeBits spike_bits(at::ScalarType dtype);

// The kernels trust offsets and indices to stay inside indices and the weight's rows: a
// wrong one would read out of bounds. Checks that offsets (int64, rows + 1) do not decrease
// and stay inside indices (int32), that the indices they span lie in [0, in_features), and
// that both are on like's device; one pass over each (small beside the dense tensors).
// extent names in_features in the error (event_conv's indices span a sample's
// in_channels x height x width).
void check_events(const char* op, const at::Tensor& offsets, const at::Tensor& indices, int64_t in_features,
                  const at::Tensor& like, const char* extent = "the layer's in_features");

// t (named name in the error) is float32 or float64, the event kernels' dtypes.
void check_float(const char* op, const char* name, const at::Tensor& t);

// at::empty for the index outputs (offsets, indices); filled with -1, which no kernel
// writes, under SNNFAST_POISON=1 (the tests: index outputs cannot hold new_output's NaN).
at::Tensor new_index_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// Runs f(U{}) with U the unsigned integer of the spike dtype's element size (the kernels
// test the bits of each element).
template <typename F>
void with_spike_bits(const SpikeBits& bits, F&& f) {
  switch (bits.element_bytes) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    default: return f(uint64_t{});
  }
}

struct EventKernels {
  // The conversion of spikes [M, N] (contiguous, M, N > 0) to events, in one of two ways.
  // Either convert, one pass: fills offsets [M + 1] and returns the indices (allocated with
  // new_index_output once their number is known); or count and fill, two passes around the
  // glue's prefix sum: counts[m] = the nonzero elements of row m, then indices[offsets[m] + k]
  // = the k-th nonzero column of row m. The other way's pointers are null. Both set
  // *not_binary = 1 where some element is neither 0 nor 1 (never clearing it).
  void (*count)(const at::Tensor& spikes, SpikeBits bits, at::Tensor& counts, at::Tensor& not_binary);
  void (*fill)(const at::Tensor& spikes, SpikeBits bits, const at::Tensor& offsets, at::Tensor& indices);
  at::Tensor (*convert)(const at::Tensor& spikes, SpikeBits bits, at::Tensor& offsets, at::Tensor& not_binary);
  // packed [M, ceil(N / 8)] uint8 = spikes [M, N] (contiguous, M, N > 0) as bits in
  // snnfast.longseq.bitpack's format (spike n of a row is bit n % 8, least significant first,
  // of byte n / 8; the padding bits 0); *not_binary as above. Null where a device has none.
  void (*pack)(const at::Tensor& spikes, SpikeBits bits, at::Tensor& packed, at::Tensor& not_binary);
  // spikes [M, N] (0 and 1 in its dtype) = packed [M, ceil(N / 8)] (contiguous) unpacked. Null
  // where a device has none.
  void (*unpack)(const at::Tensor& packed, at::Tensor& spikes);
  // y [M, out] = bias + sum over the events of row m of weight_t[i] (weight_t [in, out]).
  void (*linear)(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                 const at::Tensor& bias, at::Tensor& y);
  // grad_weight_t [in, out] = sum over the events (m, i) of grad_y[m] in row i, in ascending m
  // for every element (deterministic whatever the parallelisation), 0 where no event.
  void (*weight_grad)(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& grad_y,
                      at::Tensor& grad_weight_t);
  // weight_t [in, out] = weight [out, in] transposed (both contiguous), for event_linear's
  // weight_t given as the view weight.t(). Null where the device has none (the glue then
  // copies the view with torch's contiguous()).
  void (*transpose)(const at::Tensor& weight, at::Tensor& weight_t);
};

// The CUDA device's kernels (csrc/cuda/event_linear_kernel.cu; the emulated device's in its
// own build), also for the events of the LIF op there (lif_events_with, csrc/lif.h).
extern const EventKernels cuda_event_kernels;
// The CPU's (csrc/cpu/event_linear_kernel.cpp), for the fused event_linear_lif there.
extern const EventKernels cpu_event_kernels;

std::tuple<at::Tensor, at::Tensor> spikes_to_events(const at::Tensor& spikes, bool check_binary,
                                                    const EventKernels& kernels);
at::Tensor spikes_to_bits(const at::Tensor& spikes, bool check_binary, const EventKernels& kernels);
at::Tensor bits_to_spikes(const at::Tensor& packed, int64_t n, at::ScalarType dtype, const EventKernels& kernels);
at::Tensor event_linear(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                        const std::optional<at::Tensor>& bias, const EventKernels& kernels);
at::Tensor event_linear_weight_grad(const at::Tensor& offsets, const at::Tensor& indices,
                                    const at::Tensor& grad_y, int64_t in_features,
                                    const EventKernels& kernels);

// The registered ops' signatures, bound to one device's kernels.
template <const EventKernels* kernels>
std::tuple<at::Tensor, at::Tensor> spikes_to_events_with(const at::Tensor& spikes, bool check_binary) {
  return spikes_to_events(spikes, check_binary, *kernels);
}
template <const EventKernels* kernels>
at::Tensor spikes_to_bits_with(const at::Tensor& spikes, bool check_binary) {
  return spikes_to_bits(spikes, check_binary, *kernels);
}
template <const EventKernels* kernels>
at::Tensor bits_to_spikes_with(const at::Tensor& packed, int64_t n, at::ScalarType dtype) {
  return bits_to_spikes(packed, n, dtype, *kernels);
}
template <const EventKernels* kernels>
at::Tensor event_linear_with(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                             const std::optional<at::Tensor>& bias) {
  return event_linear(offsets, indices, weight_t, bias, *kernels);
}
template <const EventKernels* kernels>
at::Tensor event_linear_weight_grad_with(const at::Tensor& offsets, const at::Tensor& indices,
                                         const at::Tensor& grad_y, int64_t in_features) {
  return event_linear_weight_grad(offsets, indices, grad_y, in_features, *kernels);
}

}  // namespace snnfast
