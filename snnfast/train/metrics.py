"""Accuracy counters for the Trainer: each returns (correct, count) for one batch."""
from __future__ import annotations

import torch


def class_accuracy(output: torch.Tensor, labels: torch.Tensor):
    """Classifies by the output averaged over time (``[T, B, C]``) or as it is (``[B, C]``)."""
    scores = output.mean(0) if output.dim() == 3 else output
    return (scores.argmax(-1) == labels).sum(), labels.numel()


class StepAccuracy:
    """Counts the prediction at each of ``steps`` (a slice of the time axis of ``[T, B, C]``)
    separately, as the DH-SNN XOR code does for steps 191-199."""

    def __init__(self, steps: slice):
        self.steps = steps

    def __call__(self, output: torch.Tensor, labels: torch.Tensor):
        correct = self.per_step(output, labels)
        return correct.sum(), correct.numel() * labels.numel()

    def per_step(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The number of samples right at each of the steps, ``[S]``."""
        predicted = output[self.steps].argmax(-1)  # [S, B]
        return (predicted == labels.unsqueeze(0)).sum(1)
