"""snnfast.longseq: training over long sequences in less memory.

bptt.py: the LIF op with less saved for the backward pass (lif_checkpointed, lif_saved_bf16)
and sequences run in chunks (run_chunked, truncated_backward); _segments.py: the op run
segment by segment, shared by lif_checkpointed and snnfast.nn.LinearLIF; bitpack.py: spikes
packed as bits, which LinearLIF saves instead of its input.
"""
from .bptt import lif_checkpointed, lif_saved_bf16, run_chunked, truncated_backward

__all__ = ["lif_checkpointed", "lif_saved_bf16", "run_chunked", "truncated_backward"]
