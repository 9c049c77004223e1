"""snnfast: fused spiking-neuron kernels for PyTorch."""
import sys

from . import surrogate
from .ops import _args, _library, lif, recurrent_lif, reference
from .ops import _recurrent_lif as recurrent

# The op layer moved into snnfast.ops; the module names it had before stay importable
# (snnfast.reference, snnfast.recurrent, snnfast._args, snnfast._library), as the same modules.
for _name, _module in (("_args", _args), ("_library", _library), ("reference", reference),
                       ("recurrent", recurrent)):
    sys.modules[f"{__name__}.{_name}"] = _module
del _name, _module
from .lowmem import lif_checkpointed, lif_saved_bf16, run_chunked, truncated_backward
from . import losses, models, nn
from ._convert import convert
from .nir import from_nir, to_nir

__all__ = [
    "lif", "recurrent_lif", "reference", "surrogate", "nn", "losses", "models", "convert", "to_nir", "from_nir",
    "lif_checkpointed", "lif_saved_bf16", "run_chunked", "truncated_backward",
]
__version__ = "0.1.0"
