"""snnfast: fused spiking-neuron kernels for PyTorch."""
from . import _moved

_moved.install()  # the old module paths (snnfast.lowmem, snnfast.reference, ...) keep importing

from . import surrogate
from .ops import lif, recurrent_lif, reference
from .ops.event_linear import Events, event_linear, to_events
from .longseq import lif_checkpointed, lif_saved_bf16, run_chunked, truncated_backward
from . import losses, models, nn
from ._convert import convert
from .nir import from_nir, to_nir

__all__ = [
    "lif", "recurrent_lif", "reference", "Events", "event_linear", "to_events", "surrogate", "nn", "losses", "models", "convert", "to_nir", "from_nir",
    "lif_checkpointed", "lif_saved_bf16", "run_chunked", "truncated_backward",
]
__version__ = "0.1.0"


def __getattr__(name):
    return _moved.old_attribute(name)
