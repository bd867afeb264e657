"""Kernel estimation for blind MZSR: ``estimator(lr, scale) -> KernelEstimate``, one interface.

* ``"photo"`` (``PhotoEstimator``, the default for photographs): what photographs have, a tool's
  downscaling (bicubic: Pillow, MATLAB, area averaging are all close to it) unless the image looks
  more blurred than any tool makes an image look, then the ``edges`` Gaussian.
* ``"edges"`` (``EdgeEstimator``, the default on the blind benchmarks, whose kernels are all
  Gaussian): the blur of the image's sharpest edges, calibrated on training images: hundredths of
  a second, no network.
* ``"net"`` (``NetEstimator``): KernelNet (``mzsr/kernel_net.py``), trained by this project on
  MZSR's own kernel distribution: one forward pass over the image.
* ``"kernelgan"`` (``KernelGANEstimator``): KernelGAN (``mzsr/kernelgan.py``), the reference:
  an internal GAN trained on the image alone for 3,000 steps.
* ``"prior"`` (``PriorEstimator``): the mean of MZSR's kernel distribution, without looking at the
  image: the baseline an estimator has to beat.

Every estimate is centred (``centre_kernel``): MZSR's kernels are centred, and adaptation with a
kernel whose centre of mass is off would teach the network a shift.

The result type and the interface (``KernelEstimate``, ``Estimator``) live in ``srlab.mzsr.kernels``,
which ``srlab.mzsr.kernelgan`` imports too; they are importable from here as well.
"""
from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from srlab.checkpoint import load_checkpoint, load_weights, model_state
from srlab.degradation import blur, centre_kernel, gaussian_kernel, named_degradation, random_kernels
from srlab.degradation.named import PHOTO_SUITE
from srlab.degradation.photo import tool_kernel
from srlab.errors import UserError
from srlab.metrics import quantize
from srlab.mzsr.kernelgan import KernelGANEstimator
from srlab.mzsr.kernels import Estimator, KernelEstimate, gaussian_with_covariance, kernel_covariance
from srlab.registry import build_model


class NetEstimator:
    """KernelNet's estimate: the network's kernel for the whole LR image."""

    name = "net"

    def __init__(self, path: str | Path, device: torch.device | str = "cpu"):
        state = load_checkpoint(path)
        config = state.get("config") or {}
        if not isinstance(config.get("model"), dict) or config["model"].get("type") != "kernel_net":
            raise UserError(f"{path}: not a kernel_net checkpoint (train one with configs/mzsr/kernel_net_x2_cpu.yaml)")
        self.net = build_model(config["model"], f"{path}: model")
        load_weights(self.net, model_state(state, str(path)), str(path))
        self.net.to(device).eval()
        self.path = path

    def __call__(self, lr: torch.Tensor, scale: int) -> KernelEstimate:
        if scale != self.net.scale:
            raise UserError(f"{self.path} estimates x{self.net.scale} kernels, not x{scale}")
        start = time.perf_counter()
        kernel = self.net.estimate(lr.to(next(self.net.parameters()).device))
        return KernelEstimate(centre_kernel(kernel.cpu()), self.name, time.perf_counter() - start)


class EdgeEstimator:
    """Blur read off the image's sharpest edges, calibrated on training images: fast, no network.

    An edge blurred by a Gaussian of covariance S has a gradient peak that falls, when the image
    is blurred again by an isotropic Gaussian of variance v, by the ratio r = sqrt((s + v) / s),
    where s = n^T S n is the variance across the edge (n: its normal). So at each edge pixel (a
    local maximum of the gradient magnitude across the edge, among the strongest 5 %), s =
    v / (r^2 - 1) is measured with v = 0.5. Per orientation (8 bins of the normal's angle), the
    median s; then S (3 numbers) by least squares over the bins. The LR image's edges also carry
    the scene's own blur and the sampling, so the kernel's covariance is an affine function of S
    (diagonal a S + b, off-diagonal c S), fitted on training images (``EDGE_CALIBRATION``,
    ``calibrate_edges``), and its eigenvalues are clipped to MZSR's training range [1, 2.5 scale].
    Measured on 40 BSD200 images (x2, MZSR's kernels), choosing v, the share of edges and the
    quantile: kernel L2 0.034 on the blind benchmark images against 0.052 for ``PriorEstimator``.
    """

    name = "edges"

    def __call__(self, lr: torch.Tensor, scale: int) -> KernelEstimate:
        if scale not in EDGE_CALIBRATION:
            raise UserError(f"the edges estimator is calibrated at x{sorted(EDGE_CALIBRATION)}, not x{scale}")
        start = time.perf_counter()
        covariance, orientations = edge_covariance(lr)
        a, b, c = EDGE_CALIBRATION[scale]
        calibrated = [a * covariance[0] + b, c * covariance[1], a * covariance[2] + b]
        kernel = gaussian_with_covariance(torch.tensor(calibrated, dtype=torch.float64), 15, (1.0, 2.5 * scale))
        unreliable = "" if orientations >= 3 else f"edges in {orientations} of 8 orientations (3 needed)"
        return KernelEstimate(kernel.float(), self.name, time.perf_counter() - start, unreliable=unreliable,
                              blur=(calibrated[0] + calibrated[2]) / 2)


# (a, b, c) per scale: kernel covariance = (a S_xx + b, c S_xy, a S_yy + b), from calibrate_edges on
# the first 40 BSD200 training images (sorted by name) with kernels of blind_mzsr ("train/<i>" keys).
EDGE_CALIBRATION = {2: (2.648, -0.208, 3.404), 4: (5.32, 0.326, 8.606)}
_REBLUR_VARIANCE = 0.5
_STRONGEST = 0.05
_QUANTILE = 0.5
_SOBEL = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64) / 8


def _gradients(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, _SOBEL.view(1, 1, 3, 3)), F.conv2d(padded, _SOBEL.t().reshape(1, 1, 3, 3))


def edge_covariance(lr: torch.Tensor, bins: int = 8) -> tuple[list[float], int]:
    """The blur covariance (xx, xy, yy; LR pixels^2) of the sharpest edges of ``lr (1, 3, h, w)``,
    and the number of orientation bins that had edges (the fit needs 3)."""
    grey = (lr.double().cpu() * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)).sum(1, True)
    reblurred = blur(grey, gaussian_kernel(5, _REBLUR_VARIANCE, _REBLUR_VARIANCE, dtype=torch.float64))
    gx, gy = _gradients(grey)
    magnitude = (gx**2 + gy**2).sqrt()[0, 0]
    magnitude_reblurred = torch.hypot(*_gradients(reblurred))[0, 0]
    angle = torch.atan2(gy, gx)[0, 0]
    # Local maxima across the edge: the magnitude is not below its two neighbours along the
    # gradient direction (rounded to one of four), away from the border.
    h, w = magnitude.shape
    direction = torch.round(angle / (math.pi / 4)).long() % 4
    padded = F.pad(magnitude[None, None], (1, 1, 1, 1))[0, 0]
    peak = torch.zeros_like(magnitude, dtype=torch.bool)
    for i, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        behind = padded[1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
        peak |= (direction == i) & (magnitude >= ahead) & (magnitude >= behind)
    peak[:4], peak[-4:], peak[:, :4], peak[:, -4:] = False, False, False, False
    if peak.sum() < 20:
        return [0.0, 0.0, 0.0], 0
    strong = peak & (magnitude >= torch.quantile(magnitude[peak], 1 - _STRONGEST)) & (magnitude > 0)
    ratio = magnitude[strong] / magnitude_reblurred[strong].clamp(min=1e-12)
    across = _REBLUR_VARIANCE / (ratio**2 - 1).clamp(min=1e-3)
    orientation = angle[strong] % math.pi
    rows, values = [], []
    for b in range(bins):
        inside = (orientation >= b * math.pi / bins) & (orientation < (b + 1) * math.pi / bins)
        if inside.sum() < 5:
            continue
        centre = (b + 0.5) * math.pi / bins
        rows.append([math.cos(centre) ** 2, 2 * math.cos(centre) * math.sin(centre), math.sin(centre) ** 2])
        values.append(torch.quantile(across[inside], _QUANTILE).item())
    if len(rows) < 3:
        return [0.0, 0.0, 0.0], len(rows)
    solution = torch.linalg.lstsq(torch.tensor(rows, dtype=torch.float64), torch.tensor(values, dtype=torch.float64)[:, None])
    return solution.solution[:, 0].tolist(), len(rows)


def calibrate_edges(hr_images: list[torch.Tensor], scale: int, family: str = "blind_mzsr") -> tuple[float, float, float]:
    """``EDGE_CALIBRATION[scale]`` from HR training images ``(1, 3, H, W)`` (named "train/<i>" for
    their kernels): each is degraded with its kernel of ``family``, and (a, b) are the least-squares
    line from the edges' diagonal covariance to the kernel's, c the slope through 0 of the
    off-diagonal one."""
    blind = named_degradation(family)
    measured, truth = [], []
    for i, hr in enumerate(hr_images):
        true = blind.for_image(f"train/{i}", scale)
        measured.append(edge_covariance(quantize(true.apply(hr, scale)))[0])
        truth.append(kernel_covariance(true.kernel[None].double())[0].tolist())
    x, y = torch.tensor(measured, dtype=torch.float64), torch.tensor(truth, dtype=torch.float64)
    diagonal_x, diagonal_y = torch.cat([x[:, 0], x[:, 2]]), torch.cat([y[:, 0], y[:, 2]])
    design = torch.stack([diagonal_x, torch.ones_like(diagonal_x)], 1)
    a, b = torch.linalg.lstsq(design, diagonal_y[:, None]).solution[:, 0].tolist()
    c = ((x[:, 1] @ y[:, 1]) / (x[:, 1] @ x[:, 1])).item()
    return a, b, c


class PriorEstimator:
    """The answer without looking at the image: the Gaussian whose covariance is the mean covariance
    of MZSR's training kernels at the scale (a baseline for the estimators that look)."""

    name = "prior"

    def __call__(self, lr: torch.Tensor, scale: int) -> KernelEstimate:
        start = time.perf_counter()
        return KernelEstimate(prior_kernel(scale), self.name, time.perf_counter() - start)


@functools.lru_cache
def prior_kernel(scale: int, size: int = 15, samples: int = 20000) -> torch.Tensor:
    """The Gaussian with the mean covariance of ``samples`` draws of ``random_kernels`` (seeded);
    computed once per scale."""
    generator = torch.Generator().manual_seed(0)
    covariance = kernel_covariance(random_kernels(samples, scale, size, generator=generator).double()).mean(0)
    return gaussian_with_covariance(covariance, size).float()


class PhotoEstimator:
    """A photograph's degradation from a family that has what photographs have: MATLAB-bicubic
    downscaling (a tool; Pillow's bicubic, Lanczos and area averaging differ from it by less than
    from any Gaussian MZSR knows), or a Gaussian blur as ``EdgeEstimator`` measures it.

    The image's blur (``EdgeEstimator``'s, before clipping) decides: above ``BLUR_EVIDENCE``, the most
    any tool-shrunk training image looked, a Gaussian; else the tool. A Gaussian for a tool-shrunk
    photo is the costly mistake (measured on the photographs bundled with scikit-image: MZSR
    adapted to it falls 2-7 dB below the stage-1 network and below bicubic interpolation); a tool
    for a mildly blurred one costs the adaptation's gain only. JPEG blocks barely move the measure
    (its strongest 5 % of edges are the scene's: measured, quality 75 changes it by 0.02 on average).
    """

    name = "photo"

    def __call__(self, lr: torch.Tensor, scale: int) -> KernelEstimate:
        start = time.perf_counter()
        edges = EdgeEstimator()(lr, scale)
        if not edges.unreliable and edges.variance > BLUR_EVIDENCE[scale]:
            return KernelEstimate(edges.kernel, self.name, time.perf_counter() - start, blur=edges.blur)
        return KernelEstimate(tool_kernel("matlab", scale), self.name, time.perf_counter() - start, blur=edges.blur,
                              tool="bicubic")


# How blurred an image must look (``KernelEstimate.variance``, HR pixels^2) before ``PhotoEstimator``
# calls it a Gaussian blur: the most that any photo shrunk by a tool looked, on the first 40 BSD200
# training images shrunk by every tool of the photo suite, JPEG included (``fit_blur_evidence``).
BLUR_EVIDENCE = {2: 2.43, 4: 5.10}


def fit_blur_evidence(hr_images: list[torch.Tensor], scale: int) -> float:
    """``BLUR_EVIDENCE[scale]`` from HR training images ``(1, 3, H, W)`` (a multiple of ``scale``)."""
    tools = [name for name in PHOTO_SUITE if not name.startswith("photo_gauss")]
    estimate = EdgeEstimator()
    return max(estimate(quantize(named_degradation(t).for_image("train", scale).apply(hr, scale)), scale).variance
               for hr in hr_images for t in tools)


ESTIMATORS = ("photo", "edges", "net", "kernelgan", "prior")


def build_estimator(name: str, kernel_net: str | Path | None = None, kernelgan_iters: int = 3000,
                    device: torch.device | str = "cpu", seed: int = 0) -> Estimator:
    """The estimator called ``name`` (``ESTIMATORS``); "net" needs the KernelNet weights."""
    if name == "net":
        if kernel_net is None:
            raise UserError("the net estimator needs KernelNet weights (options.kernel_net / --kernel-net)")
        return NetEstimator(kernel_net, device)
    if name == "prior":
        return PriorEstimator()
    if name == "edges":
        return EdgeEstimator()
    if name == "photo":
        return PhotoEstimator()
    if name == "kernelgan":
        return KernelGANEstimator(iters=kernelgan_iters, seed=seed)
    raise UserError(f"unknown kernel estimator {name!r}; allowed: {', '.join(ESTIMATORS)}")
