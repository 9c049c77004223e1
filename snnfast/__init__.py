"""snnfast: fused spiking-neuron kernels for PyTorch."""
from . import reference, surrogate
from .ops import lif
from . import losses, models, nn
from ._convert import convert

__all__ = ["lif", "reference", "surrogate", "nn", "losses", "models", "convert"]
__version__ = "0.1.0"
