"""snnfast: fused spiking-neuron kernels for PyTorch."""
from . import reference, surrogate
from .ops import lif
from .linear_lif import LinearLIF
from .lowmem import lif_checkpointed, lif_saved_bf16, run_chunked, truncated_backward

__all__ = ["lif", "reference", "surrogate", "LinearLIF", "lif_checkpointed", "lif_saved_bf16", "run_chunked", "truncated_backward"]
__version__ = "0.1.0"
