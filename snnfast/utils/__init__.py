"""snnfast.utils: tools around the library rather than parts of a network: benchmark.py and
benchmark_imp.py (`snnfast bench`, the timer and machine description every bench uses),
memory.py (bytes saved for backward, peak memory) and seeding.py (per-epoch seeds).
Nothing in snnfast's ops, nn or models imports from here."""
