"""ClassSR's two classifier losses on class probabilities ``probs (B, M)`` (rows sum to 1).

* ``class_loss``: pushes each sub-image towards one confident class. Per sample
  ``(M - 1) - sum_{i<j} |P_i - P_j|``: 0 for a one-hot row, ``M - 1`` for a uniform one;
  averaged over the batch.
* ``average_loss``: keeps the classes equally used across the batch (otherwise everything goes to
  the largest, best branch). ``sum_j |sum_b P_bj - B/M|``, divided by its largest possible value
  ``2B(M - 1)/M`` (all samples sure of one class), so it lies in [0, 1].
"""
from __future__ import annotations

import torch


def _check(probs: torch.Tensor) -> None:
    if probs.dim() != 2 or probs.shape[1] < 2:
        raise ValueError(f"expected class probabilities (B, M) with M >= 2, got shape {tuple(probs.shape)}")


def class_loss(probs: torch.Tensor) -> torch.Tensor:
    _check(probs)
    m = probs.shape[1]
    pairwise = (probs[:, :, None] - probs[:, None, :]).abs().sum(dim=(1, 2)) / 2  # sum over i < j
    return (m - 1 - pairwise).mean()


def average_loss(probs: torch.Tensor) -> torch.Tensor:
    _check(probs)
    b, m = probs.shape
    return (probs.sum(dim=0) - b / m).abs().sum() / (2 * b * (m - 1) / m)
