"""snnfast.nn: drop-in spiking layers over time-major sequences [T, B, *F].

Neuron layers (LIF, IF, DALIF, RecurrentLIF) hold parameters and call snnfast.lif;
TimeDistributed and TimeDropout apply ordinary layers to sequences.
"""
from .container import TimeDistributed, TimeDropout
from .neuron import DALIF, IF, LIF
from .recurrent import RecurrentLIF

__all__ = ["LIF", "IF", "DALIF", "RecurrentLIF", "TimeDistributed", "TimeDropout"]
