"""snnfast.nn: drop-in spiking layers over time-major sequences [T, B, *F].

Neuron layers (LIF, IF, DALIF, RecurrentLIF) hold parameters and call snnfast.lif;
LinearLIF fuses a Linear layer into the neuron and saves its input spikes as bits;
EventConv2d is nn.Conv2d computing on the events of its input spikes at low rates;
LeakyReadout is a non-spiking readout; TimeDistributed and TimeDropout apply ordinary
layers to sequences.
"""
from .container import TimeDistributed, TimeDropout
from .neuron import DALIF, IF, LIF
from .readout import LeakyReadout
from .recurrent import RecurrentLIF
from .linear import LinearLIF
from .conv import EventConv2d

__all__ = ["LIF", "IF", "DALIF", "RecurrentLIF", "LinearLIF", "EventConv2d", "LeakyReadout", "TimeDistributed", "TimeDropout"]
