// The CUDA kernels on the emulated device (csrc/emulated/cuda_emulation.h) over a small
// matrix of sizes, options and launch shapes, with exactly sized buffers, for the sanitizers
// (.ci/sanitize.sh): ASan reports a read or write past a buffer or past the block's shared
// memory, UBSan undefined arithmetic, TSan a missing barrier in the kernels that meet at
// __syncthreads (the recurrent persistent kernels). Without a GEMM between the per-step
// kernels the recurrent values are not the op's, and need not be: the tests check those.
//
// It checks two things itself: every output element is written (outputs start as NaN), and
// the LIF kernels give the same bits whatever the launch shape. Exit status 0: clean.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#if SANITIZE_LIF
#include "cuda/lif_kernel.cuh"
#endif
#if SANITIZE_RECURRENT
#include "cuda/recurrent_lif_kernel.cuh"
#endif

namespace {

using snnfast::Reset;
using snnfast::Surrogate;

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

constexpr Reset kResets[] = {Reset::Hard, Reset::Soft, Reset::None};
constexpr Surrogate kSurrogates[] = {Surrogate::Rectangle, Surrogate::Triangle, Surrogate::Sigmoid,
                                     Surrogate::ATan};

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
  if (failures) {
    std::fprintf(stderr, "sanitize_kernels: %d failures\n", failures);
    return 1;
  }
  std::printf("sanitize_kernels: clean\n");
  return 0;
}
