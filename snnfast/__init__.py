"""snnfast: fused spiking-neuron kernels for PyTorch."""
from . import reference, surrogate
from .ops import lif
from . import losses, nn

__all__ = ["lif", "reference", "surrogate", "nn", "losses"]
__version__ = "0.1.0"
