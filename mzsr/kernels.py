"""Kernel maths for MZSR's kernel estimation, and what an estimator returns.

* ``kernel_covariance``: a kernel's second central moments (xx, xy, yy): the quantity the
  ``edges`` estimator fits and is calibrated on, the ``prior`` estimator's mean covariance
  (``srlab.mzsr.estimate``), and KernelNet's training loss (``srlab.mzsr.kernel_net``).
* ``gaussian_with_covariance``: the centred Gaussian of a covariance, its eigenvalues clipped: the
  kernel the ``edges`` and ``prior`` estimators answer with.
* ``KernelEstimate`` / ``Estimator``: the one interface of every estimator,
  ``estimator(lr, scale) -> KernelEstimate`` (``srlab.mzsr.estimate`` builds them; KernelGAN's is
  ``srlab.mzsr.kernelgan``), and how an estimate becomes the degradation MZSR adapts to.

The kernel geometry the core needs too stays in ``srlab.degradation``: ``gaussian_from_precision``
(its Gaussian kernels, and KernelNet's differentiable kernels), ``centre_kernel`` and
``analytic_x4`` (the ``blind_div2krk`` benchmark's kernels, and KernelGAN's final kernel).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from srlab.degradation import Degradation, gaussian_from_precision


def gaussian_with_covariance(covariance: torch.Tensor, size: int,
                             eigen_range: tuple[float, float] = (1e-6, math.inf)) -> torch.Tensor:
    """The centred Gaussian of covariance (xx, xy, yy), its eigenvalues clipped to ``eigen_range``."""
    matrix = torch.stack([covariance[:2], covariance[1:]])
    values, vectors = torch.linalg.eigh(matrix)
    values = values.clamp(*eigen_range)
    precision = vectors @ torch.diag(1 / values) @ vectors.T
    return gaussian_from_precision(size, precision[None])[0]


def kernel_covariance(kernels: torch.Tensor) -> torch.Tensor:
    """``(B, k, k)`` kernels -> ``(B, 3)``: their second central moments (xx, xy, yy), in pixels^2."""
    coords = torch.arange(kernels.shape[-1], dtype=kernels.dtype, device=kernels.device)
    x, y = coords.view(1, 1, -1), coords.view(1, -1, 1)
    mean_x, mean_y = (kernels * x).sum((-2, -1), keepdim=True), (kernels * y).sum((-2, -1), keepdim=True)
    dx, dy = x - mean_x, y - mean_y
    return torch.stack([(kernels * dx * dx).sum((-2, -1)), (kernels * dx * dy).sum((-2, -1)),
                        (kernels * dy * dy).sum((-2, -1))], -1)


@dataclass
class KernelEstimate:
    kernel: torch.Tensor  # (k, k), sums to 1, centred
    estimator: str
    seconds: float
    unreliable: str = ""  # why the estimate should not be used (then MZSR runs unadapted), or ""
    # How blurred the image looks: the estimated kernel's variance (HR pixels^2, the mean of its two
    # axes) before it was clipped to the kernels MZSR adapts to; None: the kernel's own.
    blur: float | None = None
    tool: str = ""  # the kernel is this tool's downscaling (then MZSR adapts to the tool), or "": a blur

    def describe(self) -> str:
        if self.tool:
            return f"{self.tool} ({self.estimator})"
        return f"Gaussian blur of variance {self.variance:.2f} ({self.estimator})"

    @property
    def variance(self) -> float:
        if self.blur is not None:
            return self.blur
        covariance = kernel_covariance(self.kernel[None].double())[0]
        return float(covariance[0] + covariance[2]) / 2

    def degradation(self, mode: str = "direct") -> Degradation | None:
        """What MZSR adapts to: the estimated kernel with ``mode`` subsampling, or None (no
        adaptation, MZSR(0)) when the estimate is unreliable: a wrong kernel can do worse."""
        if self.unreliable:
            return None
        if self.tool:  # a tool subsamples directly: its kernel says all (mode is a blur's)
            return Degradation(f"{self.tool} (estimated by {self.estimator})", self.kernel, "direct")
        return Degradation(f"estimated by {self.estimator}", self.kernel, mode)


Estimator = Callable[[torch.Tensor, int], KernelEstimate]
