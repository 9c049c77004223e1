"""snnfast: fused spiking-neuron kernels for PyTorch."""
from . import reference, surrogate
from .ops import lif
from . import losses, models, nn
from ._convert import convert
from .recurrent import recurrent_lif

__all__ = ["lif", "recurrent_lif", "reference", "surrogate", "nn", "losses", "models", "convert"]
__version__ = "0.1.0"
