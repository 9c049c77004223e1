"""snnfast.ops: the fused neuron ops (lif, recurrent_lif: compiled kernels with their autograd
and fake kernels), their pure-PyTorch reference, the checks of their arguments and the
loading of the compiled library. Everything else in snnfast builds on these."""
from . import _library, event_conv, event_linear, reference
from ._lif import lif
from ._recurrent_lif import recurrent_lif

__all__ = ["lif", "recurrent_lif", "reference"]
