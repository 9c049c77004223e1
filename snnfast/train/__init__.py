"""Training infrastructure: the paper's setups, a model-agnostic Trainer (exact resume,
atomic checkpoints, DDP), and the ``python -m snnfast.train`` command."""
from .config import SETUPS, Setup, get_setup
from .metrics import StepAccuracy, class_accuracy
from .trainer import Trainer

__all__ = ["SETUPS", "Setup", "StepAccuracy", "Trainer", "class_accuracy", "get_setup"]
