"""The IMP overhead benchmark of the IMP paper's Figure 6: `snnfast bench imp` on the full grid.

    python bench/bench_imp.py [--device cpu|cuda] [--out FILE] [--plot docs/imp_overhead.png]

IF neuron (beta = 1, soft reset, detach_reset) with and without a learnable per-neuron u0,
T in {2, 4, 8, 16, 32}, N in {2^8, 2^12, 2^16, 2^20}, snnfast beside SpikingJelly 2.0's IFNode.
"""
import sys

from snnfast.utils import benchmark_imp

if __name__ == "__main__":
    benchmark_imp.main(sys.argv[1:])
