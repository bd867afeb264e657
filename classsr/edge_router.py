"""A training-free router, the baseline for ClassSR's learned Class-Module.

ARM (Chen et al., ECCV 2022) routes sub-images by an edge score instead of a trained classifier:
flat sub-images to the narrow branch, busy ones to the wide. Here the score is the log of the mean
absolute Laplacian of the sub-image's luma (``edge_score``), and the class is the number of
thresholds it exceeds. The thresholds are fitted on the training sub-images so that the classes
take the shares the PSNR split gives them (``fit_thresholds``: a third each for ClassSR's split);
``scripts/prepare_classsr.py`` prints them, and the test config takes them as
``options.edge_thresholds``.

``EdgeRouter`` returns *ordinal* logits, ``l_k = k * score - (t_1 + ... + t_k)``, whose argmax is
that class. So the same test-time knob applies as to the Class-Module: adding ``bias x k`` to
class k's logit lowers every threshold by ``bias`` (in log edge-score units).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from srlab.classsr.infer import Router
from srlab.color import rgb_to_ycbcr

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def edge_score(tiles: torch.Tensor) -> torch.Tensor:
    """``(N, 3, h, w)`` RGB in [0, 1] -> ``(N,)``: log of the mean |Laplacian| of the luma (valid part)."""
    luma = rgb_to_ycbcr(tiles.float())[:, :1] if tiles.shape[1] == 3 else tiles.float()
    lap = F.conv2d(luma, _LAPLACIAN.to(luma.device)[None, None])
    return torch.log(lap.abs().mean(dim=(1, 2, 3)) + 1e-4)


def fit_thresholds(scores: torch.Tensor, shares: list[float]) -> list[float]:
    """Thresholds that give the classes these ``shares`` of ``scores`` (class 0 the lowest scores)."""
    if len(shares) < 2 or abs(sum(shares) - 1) > 1e-6 or min(shares) <= 0:
        raise ValueError(f"shares must be >= 2 positive fractions summing to 1, got {shares}")
    cumulative = torch.tensor(shares, dtype=torch.float64).cumsum(0)[:-1]
    return torch.quantile(scores.double(), cumulative).tolist()


class EdgeRouter(Router):
    """Class logits from the edge score: ``len(thresholds) + 1`` classes, no weights to train."""

    def __init__(self, thresholds: list[float]):
        super().__init__()
        if not thresholds or any(b <= a for a, b in zip(thresholds, thresholds[1:])):
            raise ValueError(f"edge thresholds must be increasing, got {thresholds}")
        self.register_buffer("offsets", torch.cat([torch.zeros(1), torch.tensor(thresholds).cumsum(0)]))

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        score = edge_score(tiles)
        k = torch.arange(len(self.offsets), device=tiles.device, dtype=score.dtype)
        return k[None, :] * score[:, None] - self.offsets.to(score.dtype)[None, :]
