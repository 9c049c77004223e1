// The events of the spikes, emitted by a CPU LIF kernel from its own forward pass
// (LIFParams::events, the format of csrc/event_linear.h): the lists of the neurons that
// fired, written while a step's spikes are still in L1, and their assembly into the offsets
// and indices of the T x B rows once the sequence is done (lif_kernel.cpp,
// recurrent_lif_kernel.cpp).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/spike_scan.h"
#include "event_linear.h"
#include "lif.h"
#include "snnfast/neuron.h"

namespace snnfast {
namespace {

// The events of the spikes, emitted from the forward pass (LIFParams::events): each block
// (kRow neighbouring neurons of the B x N, one thread's for the whole sequence) lists the
// neurons that fired at each step in a list of its own, right after computing them (the
// row of spikes is still in L1), with the count of each piece of the block at each step (a
// piece is the block's part of one sample b). Once every block is done, assemble() adds the
// counts into the offsets of the T x B rows and copies the lists into place: a second step
// that touches only the events. A row of several pieces (N > kRow, or a block ending within
// a sample) takes them in block order, so its indices ascend; nothing depends on the threads.
struct BlockEvents {
  std::vector<int32_t> list;    // the neurons n that fired, by step, then piece
  std::vector<int64_t> counts;  // [T, pieces]: how many of the list each piece has at each step
  std::vector<int64_t> starts;  // [T, pieces]: where they go in the indices (assemble)
  int64_t size = 0, first_sample = 0, pieces = 0;
};

// Makes e the block of the neurons m0 .. m0 + len of the B x N, with its lists empty and
// its counts 0.
inline void start_block_events(const LIFParams& p, int64_t m0, int64_t len, BlockEvents& e) {
  e.first_sample = m0 / p.N;
  e.pieces = (m0 + len - 1) / p.N - e.first_sample + 1;
  e.counts.resize(p.T * e.pieces);
  e.starts.resize(p.T * e.pieces);
  // Room for a 1/16 spike rate before the list first grows.
  e.list.resize(std::max<int64_t>(kMaskBlock, p.T * len / 16));
}

// Appends the neurons of spikes[0 .. len) that fired at step t, the neurons m0 .. m0 + len
// of the B x N, to block e, adding to the counts of its pieces: a span of whole pieces from
// the block's start (lif: the whole block at once), or of its one piece (recurrent_lif: a
// sample's row in kRow parts, in order), so that a piece may come in several parts.
template <typename scalar_t>
void emit_events(const LIFParams& p, int64_t m0, int64_t len, int64_t t, const scalar_t* spikes,
                 BlockEvents& e) {
  using U = BitsOf<scalar_t>;
  const U* bits = reinterpret_cast<const U*>(spikes);
  uint32_t not_binary = 0;  // unused: the kernel's spikes are 0 or 1
  for (int64_t q = 0, j = 0; q < e.pieces; ++q) {
    const int64_t end = std::min(len, (e.first_sample + q + 1) * p.N - m0);
    const int64_t before = e.size;
    const int32_t n_at_j = static_cast<int32_t>((m0 + j) % p.N);
    for (int64_t j0 = j; j0 < end; j0 += kMaskBlock) {
      const uint32_t mask = nonzero_mask</*kCheckOne=*/false>(bits + j0, std::min(kMaskBlock, end - j0),
                                                             static_cast<U>(~U(0)), U(0), not_binary);
      if (static_cast<int64_t>(e.list.size()) < e.size + kMaskBlock) e.list.resize(2 * e.list.size());
      e.size += write_set_bits(mask, n_at_j + static_cast<int32_t>(j0 - j), e.list.data() + e.size);
    }
    e.counts[t * e.pieces + q] += e.size - before;
    j = end;
  }
}

inline void assemble(const LIFParams& p, std::vector<BlockEvents>& blocks) {
  SpikeEvents& out = *static_cast<SpikeEvents*>(p.events);
  int64_t* off = out.offsets.data_ptr<int64_t>();
  const int64_t rows = p.T * p.B;
  // off[row + 1] first counts the row's events, so that each piece learns where in its row
  // it starts; the prefix sum then makes the counts offsets.
  std::fill(off, off + rows + 1, int64_t(0));
  for (int64_t t = 0; t < p.T; ++t) {
    for (BlockEvents& e : blocks) {
      for (int64_t q = 0; q < e.pieces; ++q) {
        const int64_t row = t * p.B + e.first_sample + q;
        e.starts[t * e.pieces + q] = off[row + 1];
        off[row + 1] += e.counts[t * e.pieces + q];
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) off[r + 1] += off[r];
  out.indices = new_index_output({off[rows]}, out.offsets.options().dtype(at::kInt));
  int32_t* idx = out.indices.data_ptr<int32_t>();
  at::parallel_for(0, static_cast<int64_t>(blocks.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      const BlockEvents& e = blocks[k];
      const int32_t* src = e.list.data();
      for (int64_t t = 0; t < p.T; ++t) {
        for (int64_t q = 0; q < e.pieces; ++q) {
          const int64_t row = t * p.B + e.first_sample + q;
          const int64_t n = e.counts[t * e.pieces + q];
          std::copy_n(src, n, idx + off[row] + e.starts[t * e.pieces + q]);
          src += n;
        }
      }
    }
  });
}

}  // namespace
}  // namespace snnfast
