"""snnfast: fused spiking-neuron kernels for PyTorch."""
from . import reference, surrogate
from .ops import lif
from .recurrent import recurrent_lif

__all__ = ["lif", "reference", "surrogate"]
__version__ = "0.1.0"
