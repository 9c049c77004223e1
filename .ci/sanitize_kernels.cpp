// The CUDA kernels on the emulated device (csrc/emulated/cuda_emulation.h) over a small
// matrix of sizes, options and launch shapes, with exactly sized buffers, for the sanitizers
// (.ci/sanitize.sh): ASan reports a read or write past a buffer or past the block's shared
// memory, UBSan undefined arithmetic, TSan a missing barrier in the kernels that meet at
// __syncthreads (the recurrent persistent kernels) or at warp votes (the event kernels).
// Without a GEMM between the per-step kernels the recurrent values are not the op's, and need
// not be: the tests check those.
//
// It checks itself that every output element is written (outputs start as NaN), that the LIF
// kernels give the same bits whatever the launch shape, and that the event kernels give what
// a plain host loop gives (SANITIZE_EVENTS, which alone needs ATen: their launch code takes
// tensors). Exit status 0: clean; else each failure names the kernel and the shape.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#if SANITIZE_LIF
#include "cuda/lif_kernel.cuh"
#endif
#if SANITIZE_RECURRENT
#include "cuda/recurrent_lif_kernel.cuh"
#endif
#if SANITIZE_EVENTS
#include <c10/util/Half.h>

#include <type_traits>

#include "cuda/event_linear_kernel.cuh"
#endif

namespace {

int failures = 0;

void fail(const char* what, const char* where) {
  std::fprintf(stderr, "sanitize_kernels: %s (%s)\n", what, where);
  ++failures;
}

std::mt19937 rng(7);

template <typename T>
std::vector<T> random(size_t n, double low, double high) {
  std::uniform_real_distribution<double> dist(low, high);
  std::vector<T> v(n);
  for (T& e : v) e = static_cast<T>(dist(rng));
  return v;
}

template <typename T>
std::vector<T> poisoned(size_t n) {
  return std::vector<T>(n, static_cast<T>(NAN));
}

template <typename T>
bool all_written(const std::vector<T>& v) {
  for (const T& e : v)
    if (std::isnan(static_cast<double>(e))) return false;
  return true;
}

#if SANITIZE_LIF || SANITIZE_RECURRENT
using snnfast::Reset;
using snnfast::Surrogate;

constexpr Reset kResets[] = {Reset::Hard, Reset::Soft, Reset::None};
constexpr Surrogate kSurrogates[] = {Surrogate::Rectangle, Surrogate::Triangle, Surrogate::Sigmoid,
                                     Surrogate::ATan};
#endif

#if SANITIZE_LIF
// One forward and one backward pass of the LIF kernels; `full` asks for every optional
// input and output. Returns the outputs, concatenated as bytes, to compare launch shapes.
template <typename acc_t>
std::vector<unsigned char> lif_once(int64_t T, int64_t B, int64_t N, Reset reset, Surrogate surrogate,
                                    bool full, bool detach_reset, at::ScalarType dtype, const char* where) {
  const size_t M = B * N, TM = T * M;
  auto beta = random<acc_t>(N, 0.5, 0.95), alpha = random<acc_t>(N, 0.6, 1.4);
  auto threshold = random<acc_t>(N, 0.6, 1.4), u0 = random<acc_t>(full ? M : N, -0.5, 0.9);
  auto x = random<acc_t>(TM, -0.5, 1.5);
  auto spikes = poisoned<acc_t>(TM), membrane = poisoned<acc_t>(TM), u_last = poisoned<acc_t>(M);
  snnfast::LIFParams p;
  p.T = T;
  p.B = B;
  p.N = N;
  p.reset = reset;
  p.surrogate = surrogate;
  p.detach_reset = detach_reset;
  p.v_reset = -0.1;
  p.surrogate_param = 1.3;
  p.beta = beta.data();
  p.alpha = alpha.data();
  p.threshold = threshold.data();
  p.u0 = u0.data();
  p.u0_batch_stride = full ? N : 0;
  p.x = x.data();
  p.spikes = spikes.data();
  p.membrane = membrane.data();
  p.u_last = u_last.data();
  snnfast::lif_forward_cuda(p, dtype);
  if (!all_written(spikes) || !all_written(membrane) || !all_written(u_last))
    fail("the forward kernel left an output element unwritten", where);

  auto grad_spikes = random<acc_t>(TM, -1, 1), grad_membrane = random<acc_t>(TM, -1, 1);
  auto grad_u_last = random<acc_t>(M, -1, 1);
  auto grad_x = poisoned<acc_t>(TM);
  auto grad_beta = poisoned<acc_t>(M), grad_alpha = poisoned<acc_t>(M);
  auto grad_threshold = poisoned<acc_t>(M), grad_u0 = poisoned<acc_t>(M);
  p.x = full ? x.data() : nullptr;
  p.grad_spikes = grad_spikes.data();
  p.grad_membrane = full ? grad_membrane.data() : nullptr;
  p.grad_u_last = full ? grad_u_last.data() : nullptr;
  p.grad_x = grad_x.data();
  p.grad_beta = grad_beta.data();
  p.grad_alpha = full ? grad_alpha.data() : nullptr;
  p.grad_threshold = grad_threshold.data();
  p.grad_u0 = grad_u0.data();
  snnfast::lif_backward_cuda(p, dtype);
  if (!all_written(grad_x) || !all_written(grad_beta) || !all_written(grad_threshold) ||
      !all_written(grad_u0) || (full && !all_written(grad_alpha)))
    fail("the backward kernel left an output element unwritten", where);

  std::vector<unsigned char> bytes;
  for (const std::vector<acc_t>* v : {&spikes, &membrane, &u_last, &grad_x, &grad_beta, &grad_threshold, &grad_u0}) {
    const auto* b = reinterpret_cast<const unsigned char*>(v->data());
    bytes.insert(bytes.end(), b, b + v->size() * sizeof(acc_t));
  }
  return bytes;
}

template <typename acc_t>
void lif_matrix(at::ScalarType dtype) {
  // T = 0, 1 and sizes that go round the look-ahead rings (32 or 16 steps forward, 16 or 8
  // back) once and more than twice; odd neuron counts and partial blocks.
  const int64_t sizes[][3] = {{0, 2, 3}, {1, 1, 1}, {17, 3, 37}, {70, 2, 67}};
  int option = 0;
  for (const auto& size : sizes)
    for (Reset reset : kResets)
      for (Surrogate surrogate : kSurrogates) {
        const bool full = option % 2 == 0, detach = option % 3 == 0;
        ++option;
        char where[128];
        std::snprintf(where, sizeof(where), "lif %s T=%lld B=%lld N=%lld reset=%d surrogate=%d",
                      sizeof(acc_t) == 8 ? "double" : "float", (long long)size[0],
                      (long long)size[1], (long long)size[2], int(reset), int(surrogate));
        std::vector<unsigned char> first;
        for (int multiprocessors : {1, 4, 132}) {  // 128, 64 and 32 threads per block
          snnfast::emulated::device().multiprocessors = multiprocessors;
          rng.seed(option);
          auto bytes = lif_once<acc_t>(size[0], size[1], size[2], reset, surrogate, full, detach, dtype, where);
          if (first.empty()) first = bytes;
          else if (bytes != first) fail("the launch shape changed the results", where);
        }
      }
}
#endif

#if SANITIZE_RECURRENT
template <typename acc_t>
void recurrent_once(int64_t T, int64_t B, int64_t N, Reset reset, Surrogate surrogate, bool full,
                    bool persistent, at::ScalarType dtype, const char* where) {
  const size_t M = B * N, TM = T * M;
  auto beta = random<acc_t>(N, 0.5, 0.95), alpha = random<acc_t>(N, 0.6, 1.4);
  auto threshold = random<acc_t>(N, 0.6, 1.4), u0 = random<acc_t>(M, -0.5, 0.9);
  auto x = random<acc_t>(TM, -0.5, 1.5), V = random<acc_t>(N * N, -0.5, 0.5);
  auto spikes = poisoned<acc_t>(TM), membrane = poisoned<acc_t>(TM), u_last = poisoned<acc_t>(M);
  std::vector<acc_t> recurrent(M, acc_t(0)), grad_recurrent(M, acc_t(0));
  snnfast::RecurrentLIFParams p;
  p.T = T;
  p.B = B;
  p.N = N;
  p.reset = reset;
  p.surrogate = surrogate;
  p.detach_reset = !full;
  p.v_reset = -0.1;
  p.surrogate_param = 1.3;
  p.beta = beta.data();
  p.alpha = alpha.data();
  p.threshold = threshold.data();
  p.u0 = u0.data();
  p.u0_batch_stride = N;
  p.x = x.data();
  p.spikes = spikes.data();
  p.membrane = membrane.data();
  p.u_last = u_last.data();
  p.V = V.data();
  p.recurrent = recurrent.data();
  if (persistent) {
    if (!snnfast::forward_sequence_cuda(p, dtype)) fail("the persistent forward kernel did not run", where);
  } else {
    for (int64_t t = 0; t < T; ++t) snnfast::forward_step_cuda(p, t, 0, B, dtype);
  }
  if (!all_written(spikes) || !all_written(membrane) || !all_written(u_last))
    fail("the forward kernel left an output element unwritten", where);

  auto grad_spikes = random<acc_t>(TM, -1, 1), grad_membrane = random<acc_t>(TM, -1, 1);
  auto grad_u = random<acc_t>(M, -1, 1);
  auto grad_x = poisoned<acc_t>(TM), grad_h = poisoned<acc_t>(TM);
  std::vector<acc_t> grad_beta(M, 0), grad_alpha(M, 0), grad_threshold(M, 0);
  p.grad_spikes = grad_spikes.data();
  p.grad_membrane = full ? grad_membrane.data() : nullptr;
  p.grad_u = grad_u.data();
  p.grad_x = grad_x.data();
  p.grad_h = full ? grad_h.data() : nullptr;
  p.grad_beta = grad_beta.data();
  p.grad_alpha = full ? grad_alpha.data() : nullptr;
  p.x = full ? x.data() : nullptr;
  p.grad_threshold = grad_threshold.data();
  p.grad_recurrent = grad_recurrent.data();
  if (persistent) {
    if (!snnfast::backward_sequence_cuda(p, dtype)) fail("the persistent backward kernel did not run", where);
  } else {
    for (int64_t t = T - 1; t >= 0; --t) snnfast::backward_step_cuda(p, t, 0, B, dtype);
  }
  if (!all_written(grad_x) || (full && !all_written(grad_h)) || !all_written(grad_beta) ||
      !all_written(grad_threshold) || !all_written(grad_u))
    fail("the backward kernel left an output element unwritten", where);
}

template <typename acc_t>
void recurrent_matrix(at::ScalarType dtype) {
  const int64_t sizes[][3] = {{1, 1, 1}, {7, 3, 5}, {4, 2, 33}, {3, 1, 64}};
  int option = 0;
  for (const auto& size : sizes)
    for (Reset reset : kResets)
      for (Surrogate surrogate : kSurrogates) {
        const bool full = option % 2 == 0;
        ++option;
        for (bool persistent : {true, false}) {
          char where[128];
          std::snprintf(where, sizeof(where), "recurrent %s %s T=%lld B=%lld N=%lld reset=%d surrogate=%d",
                        sizeof(acc_t) == 8 ? "double" : "float", persistent ? "persistent" : "per-step",
                        (long long)size[0], (long long)size[1], (long long)size[2], int(reset), int(surrogate));
          // Exactly the persistent kernel's shared memory: a byte past it is an ASan report.
          snnfast::emulated::device().shared_memory_per_block =
              static_cast<int>(snnfast::persistent_smem_bytes<acc_t>(size[2]));
          recurrent_once<acc_t>(size[0], size[1], size[2], reset, surrogate, full, persistent, dtype, where);
        }
      }
}
#endif

#if SANITIZE_EVENTS
// The event kernels (csrc/cuda/event_linear_kernel.cuh) through their launch code, on
// at::Tensor views of exactly sized host buffers, each result checked against a plain host
// loop here. Indices, offsets, counts, bits and the non-binary flag must match exactly; so
// must the forward (bias first, then the row's events in ascending order: the loop's order).
// The weight gradient matches the loop exactly when the launch has one chunk of rows (its
// sum is then the loop's, ascending m); with several, at::sum adds the chunks' partials in an
// order of its own, so it is checked within the rounding bound of that many additions.

template <typename S>
using ElementBits = std::conditional_t<sizeof(S) == 1, uint8_t,
                                       std::conditional_t<sizeof(S) == 2, uint16_t,
                                                          std::conditional_t<sizeof(S) == 4, uint32_t, uint64_t>>>;

template <typename S>
uint64_t bits_of(S value) {
  ElementBits<S> b;
  std::memcpy(&b, &value, sizeof(b));
  return b;
}

template <typename S> constexpr at::ScalarType kDtype = at::kFloat;
template <> constexpr at::ScalarType kDtype<double> = at::kDouble;
template <> constexpr at::ScalarType kDtype<c10::Half> = at::kHalf;
template <> constexpr at::ScalarType kDtype<uint8_t> = at::kByte;

template <typename S> const char* const kName = "float";
template <> const char* const kName<double> = "double";
template <> const char* const kName<c10::Half> = "half";
template <> const char* const kName<uint8_t> = "uint8";

// Which bit patterns are 0 and 1, from the type itself (spike_bits, in event_linear.cpp, is
// not in this build): every bit but a float's sign tells 0 from not 0, so -0.0 is 0.
template <typename S>
snnfast::SpikeBits spike_bits_of() {
  const uint64_t sign = std::is_integral_v<S> ? 0 : uint64_t(1) << (8 * sizeof(S) - 1);
  const uint64_t all = sizeof(S) == 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * sizeof(S))) - 1;
  return {static_cast<int>(sizeof(S)), all & ~sign, bits_of(S(1))};
}

template <typename T>
at::Tensor view(std::vector<T>& v, std::vector<int64_t> sizes, at::ScalarType dtype) {
  return at::from_blob(v.data(), sizes, at::TensorOptions().dtype(dtype));
}

template <typename T>
std::vector<T> poisoned_bytes(size_t n) {  // 0xFF bytes: -1 in an index, 255 in a byte of bits
  std::vector<T> v(n);
  std::memset(v.data(), 0xFF, n * sizeof(T));
  return v;
}

// Spikes [M, N] with the rows the kernels must get right: row 0 silent, row 1 all spikes, the
// last row silent (where there are more rows than those), the others at random (a third of
// them spikes, some zeros -0.0); with `non_binary`, a 0.5 (2 in uint8) in every other row, and
// row 2 all 0.5 (rates): every lane of its warp and warps of its block then flag at once,
// which was a data race that TSan saw before the kernels set the flag with an atomic.
template <typename S>
std::vector<S> event_spikes(int64_t M, int64_t N, bool non_binary) {
  std::bernoulli_distribution fires(0.3), negative(0.2);
  std::vector<S> s(M * N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const bool silent = (m == 0 && M > 1) || (m == M - 1 && M > 2);  // one row: at random
      const bool spike = m == 1 || (!silent && fires(rng));
      s[m * N + n] = spike ? S(1) : (!std::is_integral_v<S> && negative(rng)) ? S(-0.0f) : S(0);
    }
  const S half = std::is_integral_v<S> ? S(2) : S(0.5f);
  if (non_binary) {
    for (int64_t m = 1; m < M; m += 2) s[m * N + (m * 7) % N] = half;
    if (M > 2) std::fill(s.begin() + 2 * N, s.begin() + 3 * N, half);
  }
  return s;
}

struct HostEvents {
  std::vector<int64_t> counts, offsets;  // offsets from 0
  std::vector<int32_t> indices;
  int32_t not_binary = 0;
};

template <typename S>
HostEvents host_events(const std::vector<S>& spikes, int64_t M, int64_t N, const snnfast::SpikeBits& bits) {
  HostEvents e;
  e.offsets.push_back(0);
  for (int64_t m = 0; m < M; ++m) {
    int64_t count = 0;
    for (int64_t n = 0; n < N; ++n) {
      const uint64_t b = bits_of(spikes[m * N + n]);
      if ((b & bits.zero_mask) == 0) continue;
      ++count;
      e.indices.push_back(static_cast<int32_t>(n));
      if (b != bits.one_bits) e.not_binary = 1;
    }
    e.counts.push_back(count);
    e.offsets.push_back(e.offsets.back() + count);
  }
  return e;
}

// The first element where got and expected differ, as a failure naming it.
template <typename T>
void check_equal(const std::vector<T>& got, const std::vector<T>& expected, const char* what, const char* where) {
  for (size_t i = 0; i < expected.size(); ++i)
    if (std::memcmp(&got[i], &expected[i], sizeof(T)) != 0) {
      char message[160];
      std::snprintf(message, sizeof(message), "%s: element %zu is %.17g, expected %.17g", what, i,
                    static_cast<double>(got[i]), static_cast<double>(expected[i]));
      fail(message, where);
      return;
    }
}

// Events start at this position of indices, as for a slice of rows of a longer sequence
// (event_linear.h): the entries before it stay poisoned, and a kernel that read one would
// read the weight at row -1 (an ASan report).
constexpr int64_t kEventBase = 3;

template <typename S>
void conversion_once(int64_t M, int64_t N, bool non_binary) {
  char where[96];
  std::snprintf(where, sizeof(where), "%s M=%lld N=%lld%s", kName<S>, (long long)M, (long long)N,
                non_binary ? " with a 0.5" : "");
  const snnfast::SpikeBits bits = spike_bits_of<S>();
  auto spikes = event_spikes<S>(M, N, non_binary);
  const HostEvents expected = host_events(spikes, M, N, bits);
  const at::Tensor spikes_t = view(spikes, {M, N}, kDtype<S>);

  auto counts = poisoned_bytes<int64_t>(M);
  std::vector<int32_t> not_binary(1, 0);  // the glue zeroes it; the kernels only ever set it
  auto counts_t = view(counts, {M}, at::kLong), not_binary_t = view(not_binary, {1}, at::kInt);
  snnfast::count_cuda(spikes_t, bits, counts_t, not_binary_t);
  check_equal(counts, expected.counts, "count_kernel's counts", where);
  check_equal(not_binary, {expected.not_binary}, "count_kernel's not_binary flag", where);

  std::vector<int64_t> offsets(expected.offsets);
  for (int64_t& o : offsets) o += kEventBase;
  auto indices = poisoned_bytes<int32_t>(kEventBase + expected.indices.size());
  std::vector<int32_t> expected_indices(kEventBase, -1);
  expected_indices.insert(expected_indices.end(), expected.indices.begin(), expected.indices.end());
  auto offsets_t = view(offsets, {M + 1}, at::kLong);
  auto indices_t = view(indices, {static_cast<int64_t>(indices.size())}, at::kInt);
  snnfast::fill_cuda(spikes_t, bits, offsets_t, indices_t);
  check_equal(indices, expected_indices, "fill_kernel's indices", where);

  const int64_t bytes = (N + 7) / 8;
  std::vector<uint8_t> expected_packed(M * bytes, 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = expected.offsets[m]; k < expected.offsets[m + 1]; ++k) {
      const int32_t n = expected.indices[k];
      expected_packed[m * bytes + n / 8] |= uint8_t(1u << (n % 8));
    }
  auto packed = poisoned_bytes<uint8_t>(M * bytes);
  not_binary[0] = 0;
  auto packed_t = view(packed, {M, bytes}, at::kByte);
  snnfast::pack_cuda(spikes_t, bits, packed_t, not_binary_t);
  check_equal(packed, expected_packed, "pack_kernel's bits", where);
  check_equal(not_binary, {expected.not_binary}, "pack_kernel's not_binary flag", where);

  // Back to spikes in the dtypes unpack takes that are checked here (integers it does not).
  auto unpack_into = [&](auto zero) {
    using T = decltype(zero);
    std::vector<T> expected_spikes(M * N, T(0));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = expected.offsets[m]; k < expected.offsets[m + 1]; ++k)
        expected_spikes[m * N + expected.indices[k]] = T(1);
    auto out = poisoned<T>(M * N);
    auto out_t = view(out, {M, N}, kDtype<T>);
    snnfast::unpack_cuda(view(expected_packed, {M, bytes}, at::kByte), out_t);
    char what[64];
    std::snprintf(what, sizeof(what), "unpack_kernel's %s spikes", kName<T>);
    check_equal(out, expected_spikes, what, where);
  };
  if constexpr (!std::is_integral_v<S>) unpack_into(S(0));
}

// The chunks of rows weight_grad_cuda splits M rows into, as it chooses them, only to know
// whether its sum is the loop's (one chunk): were its choice to change, the exact check of a
// one-chunk case that became several would fail loudly, not pass silently.
int64_t weight_grad_chunks(int64_t M, int64_t out) {
  const int64_t tiles = (out + 31) / 32;
  return std::clamp<int64_t>((4 * snnfast::emulated::device().multiprocessors + tiles - 1) / tiles, 1,
                             std::clamp<int64_t>(M, 1, 32));
}

template <typename T>
void linear_once(int64_t M, int64_t N, int64_t out, bool bias, int multiprocessors) {
  char where[112];
  std::snprintf(where, sizeof(where), "%s M=%lld in=%lld out=%lld%s multiprocessors=%d", kName<T>,
                (long long)M, (long long)N, (long long)out, bias ? " bias" : "", multiprocessors);
  const snnfast::SpikeBits bits = spike_bits_of<T>();
  const auto spikes = event_spikes<T>(M, N, false);
  const HostEvents events = host_events(spikes, M, N, bits);
  std::vector<int64_t> offsets(events.offsets);
  for (int64_t& o : offsets) o += kEventBase;
  std::vector<int32_t> indices(kEventBase, -1);  // never to be read (see kEventBase)
  indices.insert(indices.end(), events.indices.begin(), events.indices.end());
  auto offsets_t = view(offsets, {M + 1}, at::kLong);
  auto indices_t = view(indices, {static_cast<int64_t>(indices.size())}, at::kInt);

  auto weight_t = random<T>(N * out, -1, 1), bias_v = random<T>(bias ? out : 0, -1, 1);
  std::vector<T> expected_y(M * out);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = 0; o < out; ++o) {
      T acc = bias ? bias_v[o] : T(0);
      for (int64_t k = events.offsets[m]; k < events.offsets[m + 1]; ++k) acc += weight_t[events.indices[k] * out + o];
      expected_y[m * out + o] = acc;
    }
  auto y = poisoned<T>(M * out);
  auto y_t = view(y, {M, out}, kDtype<T>);
  snnfast::linear_cuda(offsets_t, indices_t, view(weight_t, {N, out}, kDtype<T>),
                       bias ? view(bias_v, {out}, kDtype<T>) : at::Tensor(), y_t);
  check_equal(y, expected_y, "linear_kernel's y", where);

  const int saved = snnfast::emulated::device().multiprocessors;
  snnfast::emulated::device().multiprocessors = multiprocessors;
  const int64_t chunks = weight_grad_chunks(M, out);
  auto grad_y = random<T>(M * out, -1, 1);
  // In T in ascending m (the one-chunk order), and in long double with the terms' size and
  // number for the bound: n additions in T are within n * eps * sum |terms| of the exact sum.
  std::vector<T> expected_gw(N * out, T(0));
  std::vector<long double> exact(N * out, 0), magnitude(N * out, 0), terms(N * out, 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = events.offsets[m]; k < events.offsets[m + 1]; ++k)
      for (int64_t o = 0; o < out; ++o) {
        const int64_t e = events.indices[k] * out + o;
        const T g = grad_y[m * out + o];
        expected_gw[e] += g;
        exact[e] += g;
        magnitude[e] += std::fabs(static_cast<long double>(g));
        terms[e] += 1;
      }
  auto gw = poisoned<T>(N * out);
  auto gw_t = view(gw, {N, out}, kDtype<T>);
  snnfast::weight_grad_cuda(offsets_t, indices_t, view(grad_y, {M, out}, kDtype<T>), gw_t);
  snnfast::emulated::device().multiprocessors = saved;
  if (chunks == 1) {
    check_equal(gw, expected_gw, "weight_grad_kernel's grad (one chunk)", where);
    return;
  }
  const long double eps = std::numeric_limits<T>::epsilon();
  for (int64_t e = 0; e < N * out; ++e) {
    const long double bound = (terms[e] + chunks) * eps * magnitude[e];
    if (!(std::fabs(static_cast<long double>(gw[e]) - exact[e]) <= bound)) {
      char message[160];
      std::snprintf(message, sizeof(message), "weight_grad_kernel's grad (%lld chunks): element %lld is %.17g, "
                    "expected %.17Lg within %.3Lg", (long long)chunks, (long long)e, static_cast<double>(gw[e]),
                    exact[e], bound);
      fail(message, where);
      return;
    }
  }
}

void events_matrix() {
  // N < 32 (1, 5, 13), a multiple of 32, not a multiple of 32 and of 8 (13, 37, 67) or of
  // 32 only (100); M past one block of 4 warps, with a last block of fewer (9) or full (8).
  const int64_t conversions[][2] = {{1, 1}, {2, 5}, {9, 13}, {8, 32}, {9, 37}, {5, 67}, {3, 100}};
  for (const auto& size : conversions)
    for (bool non_binary : {false, true}) {
      conversion_once<float>(size[0], size[1], non_binary);
      conversion_once<double>(size[0], size[1], non_binary);
#if !defined(__SANITIZE_THREAD__)
      // Not under TSan, whose run is mostly the host threads of these launches: the width of
      // the element changes which bits the kernels test, not how their lanes meet.
      conversion_once<c10::Half>(size[0], size[1], non_binary);
      conversion_once<uint8_t>(size[0], size[1], non_binary);
#endif
    }
  // out below 32, a multiple of it, and past it by a partial tile; one chunk of rows for the
  // weight gradient (M = 1, or enough output tiles for one multiprocessor) and several.
  const int64_t linears[][4] = {{9, 37, 33, 1}, {5, 13, 1, 0}, {6, 67, 70, 1}, {2, 5, 32, 0},
                                {1, 13, 40, 1}, {7, 20, 130, 0}};
  for (const auto& size : linears)
    for (int multiprocessors : {1, 4}) {
      linear_once<float>(size[0], size[1], size[2], size[3], multiprocessors);
      linear_once<double>(size[0], size[1], size[2], size[3], multiprocessors);
    }
}
#endif

}  // namespace

int main() {
#if SANITIZE_LIF
  lif_matrix<double>(at::kDouble);
  lif_matrix<float>(at::kFloat);
#endif
#if SANITIZE_RECURRENT
  recurrent_matrix<double>(at::kDouble);
  recurrent_matrix<float>(at::kFloat);
#endif
#if SANITIZE_EVENTS
  events_matrix();
#endif
  if (failures) {
    std::fprintf(stderr, "sanitize_kernels: %d failures\n", failures);
    return 1;
  }
  std::printf("sanitize_kernels: clean\n");
  return 0;
}
