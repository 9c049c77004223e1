"""Fused LIF op vs the reference loop, SpikingJelly 2.0 and snnTorch, beside the memory floor.

    python bench/bench_lif.py [--device cpu|cuda] [--out FILE]

Shapes of the CPU issue: T in {8, 100, 1000}, B = 64, N = 1024, float32, fwd and fwd+bwd.
The peers are timed when installed (see install.sh). Paste the table into docs/benchmarks.md.
"""
import sys

from snnfast.utils import benchmark

if __name__ == "__main__":
    benchmark.main(["--full"] + sys.argv[1:])
