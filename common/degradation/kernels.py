"""Blur kernels: Gaussians, MZSR's training distribution, re-centring, the x4 kernel of an x2
one, kernels read from files, and how far an estimated kernel is from the true one.

* ``gaussian_kernel(size, lambda1, lambda2, theta)``: anisotropic Gaussian with covariance
  ``R(theta) diag(lambda1, lambda2) R(theta)^T`` (lambdas are variances, in pixels^2), centred at
  ``((size - 1) / 2, (size - 1) / 2)``, summing to 1.
* ``random_kernels(n, scale)``: MZSR's training distribution of kernels (also ``blind_mzsr``'s).
* ``gaussian_from_precision``: centred Gaussians from inverse covariances (differentiable).
* ``centre_kernel``, ``analytic_x4``: a kernel moved to its centre pixel, and the x4 kernel of an
  x2 one (the ``blind_div2krk`` kernels are made with them).
* ``kernel_error``: how far an estimated kernel is from the true one (the evaluator's score).
* ``load_kernel``: a kernel from a ``.npy`` / ``.mat`` file, checked.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from srlab.errors import UserError


def gaussian_kernel(
    size: int,
    lambda1: float,
    lambda2: float,
    theta: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A ``(size, size)`` Gaussian with covariance eigenvalues ``lambda1``, ``lambda2`` (variances)."""
    return _gaussian_kernels(
        size,
        torch.tensor([lambda1], dtype=torch.float64),
        torch.tensor([lambda2], dtype=torch.float64),
        torch.tensor([theta], dtype=torch.float64),
    )[0].to(dtype)


def _gaussian_kernels(size: int, lambda1: torch.Tensor, lambda2: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Batched kernels ``(n, size, size)`` from ``(n,)`` parameter tensors."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    # Sigma = R diag(l1, l2) R^T; the exponent needs Sigma^-1 = R diag(1/l1, 1/l2) R^T.
    precision = torch.stack([
        torch.stack([cos**2 / lambda1 + sin**2 / lambda2, cos * sin * (1 / lambda1 - 1 / lambda2)], -1),
        torch.stack([cos * sin * (1 / lambda1 - 1 / lambda2), sin**2 / lambda1 + cos**2 / lambda2], -1),
    ], -2)
    return gaussian_from_precision(size, precision)


def gaussian_from_precision(size: int, precision: torch.Tensor) -> torch.Tensor:
    """Centred Gaussian kernels ``(n, size, size)`` from inverse covariances ``(n, 2, 2)`` (x, y
    order), summing to 1; differentiable (kernel estimators fit through it)."""
    coords = torch.arange(size, dtype=precision.dtype, device=precision.device) - (size - 1) / 2
    x = coords.view(1, 1, size)  # column offset
    y = coords.view(1, size, 1)  # row offset
    # Axis convention: x runs along columns (width), y along rows (height), theta from the x axis.
    a, b, c = (precision[:, 0, 0].view(-1, 1, 1), precision[:, 0, 1].view(-1, 1, 1), precision[:, 1, 1].view(-1, 1, 1))
    k = torch.exp(-0.5 * (a * x**2 + 2 * b * x * y + c * y**2))
    return k / k.sum(dim=(-2, -1), keepdim=True)


def random_kernels(
    n: int,
    scale: int | torch.Tensor,
    size: int = 15,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """MZSR's kernel sampler: theta ~ U[0, pi), l1 ~ 1 + (2.5 s - 1) U, l2 ~ 1 + (l1 - 1) U.

    ``scale`` is one factor for all ``n`` kernels, or a tensor of ``n`` factors (one per kernel,
    for multi-scale meta-training); the random numbers drawn are the same either way.
    """
    u = torch.rand(3, n, generator=generator, dtype=torch.float64, device=getattr(generator, "device", None))
    theta = math.pi * u[0]
    scale = torch.as_tensor(scale, dtype=torch.float64, device=u.device)
    lambda1 = 1 + (2.5 * scale - 1) * u[1]
    lambda2 = 1 + (lambda1 - 1) * u[2]
    kernels = _gaussian_kernels(size, lambda1, lambda2, theta).float()
    return kernels.to(device) if device is not None else kernels


def centre_kernel(k: torch.Tensor) -> torch.Tensor:
    """``k`` shifted (cubic-spline, sub-pixel) so that its centre of mass is its centre pixel, as
    ``degrade``'s centred kernels are; negative taps from the interpolation are dropped and the sum
    is made 1 again. An estimated kernel's position is arbitrary (a shift of the whole image is
    not observable), but adaptation needs it where the degradation assumes it."""
    from scipy import ndimage

    arr = k.detach().double().cpu().numpy()
    centre = (np.array(arr.shape) - 1) / 2
    shifted = np.clip(ndimage.shift(arr, centre - np.array(ndimage.center_of_mass(arr)), order=3), 0, None)
    return torch.from_numpy(shifted / shifted.sum()).to(k.dtype)


def analytic_x4(k2: torch.Tensor) -> torch.Tensor:
    """The x4 kernel of degrading twice with the x2 kernel ``k2`` (n x n -> (3n - 2) x (3n - 2)):
    (x * k2) subsampled by 2, then * k2 and subsampled by 2 again, equals x * K subsampled by 4
    with K = k2 convolved with k2 dilated by 2 (KernelGAN's appendix)."""
    k = k2[None, None]
    return F.conv_transpose2d(k, k, stride=2)[0, 0]


def kernel_error(estimate: torch.Tensor, truth: torch.Tensor, max_shift: float = 2.0,
                 step: float = 0.25) -> dict[str, float]:
    """How far ``estimate`` is from ``truth`` after the best sub-pixel shift (a shift is not
    observable from the LR image): both are centred on one odd canvas that holds either, the
    estimate is shifted by every multiple of ``step`` up to ``max_shift`` pixels on each axis
    (Fourier shift), and the closest one counts. ``kernel_l2``: the Euclidean norm of the
    difference; ``kernel_psnr``: 10 log10(max(truth)^2 / mean squared difference on the canvas)."""
    side = max(*estimate.shape, *truth.shape)
    side += 1 - side % 2
    margin = math.ceil(max_shift) + 1  # room for the shift, so that nothing wraps around
    est = _on_canvas(estimate.double().cpu(), side + 2 * margin)
    ref = _on_canvas(truth.double().cpu(), side)
    shifts = torch.arange(-max_shift, max_shift + step / 2, step, dtype=torch.float64)
    n = est.shape[-1]
    freq = torch.fft.fftfreq(n, dtype=torch.float64)
    ramp = torch.exp(-2j * math.pi * shifts[:, None] * freq[None, :])  # (shifts, n)
    spectrum = torch.fft.fft2(est)
    moved = torch.fft.ifft2(spectrum[None, None] * ramp[:, None, :, None] * ramp[None, :, None, :]).real
    moved = moved[..., margin : margin + side, margin : margin + side]
    squared = ((moved - ref) ** 2).sum(dim=(-2, -1))
    best = squared.min()
    mse = best / side**2
    return {"kernel_l2": best.sqrt().item(), "kernel_psnr": (10 * torch.log10(truth.max().double() ** 2 / mse)).item()}


def _on_canvas(k: torch.Tensor, side: int) -> torch.Tensor:
    """``k`` centred on a ``side x side`` zero canvas (an even-sized kernel sits half a pixel off)."""
    out = torch.zeros(side, side, dtype=k.dtype)
    top, left = (side - k.shape[0]) // 2, (side - k.shape[1]) // 2
    out[top : top + k.shape[0], left : left + k.shape[1]] = k
    return out


def load_kernel(path: str | Path) -> torch.Tensor:
    """A 2-D kernel from ``.npy`` or ``.mat`` (the first 2-D numeric array in it), normalised to sum 1."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: kernel file not found")
    if path.suffix not in (".npy", ".mat"):
        raise UserError(f"{path}: kernel files must be .npy or .mat")
    expected = f"expected a {path.suffix} file holding a 2-D numeric array"
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)  # never unpickle: a pickle can run any code
            if not isinstance(arr, np.ndarray):  # np.load opens an .npz archive whatever the file's name
                arr.close()
                raise ValueError("an .npz archive, not one array")
        else:
            from scipy.io import loadmat

            variables = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    except Exception as exc:  # any parse failure of a user's file (numpy and scipy raise several kinds)
        reason = str(exc).split("\n")[0] or type(exc).__name__
        raise UserError(f"{path}: cannot read a 2-D kernel ({reason}); {expected}") from None
    if path.suffix == ".mat":
        arrays = [v for v in variables.values()
                  if isinstance(v, np.ndarray) and v.ndim == 2 and v.size and v.dtype.kind in "fiu"]
        if not arrays:
            found = ", ".join(f"{k} {getattr(v, 'shape', type(v).__name__)}" for k, v in variables.items())
            raise UserError(f"{path}: cannot read a 2-D kernel (no non-empty 2-D numeric array; variables: "
                            f"{found or 'none'}); {expected}")
        arr = arrays[0]
    if arr.dtype.kind not in "biuf":  # strings, complex numbers, structured records: no silent cast
        raise UserError(f"{path}: cannot read a 2-D kernel (it holds {arr.dtype} values); {expected}")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
        raise UserError(f"{path}: a kernel must be a 2-D array of finite, non-negative numbers with a positive "
                        f"sum, got shape {arr.shape}")
    if arr.shape[0] != arr.shape[1] or arr.shape[0] % 2 == 0:  # the centre tap must be one pixel
        raise UserError(f"{path}: a kernel must be square with an odd side (its centre one pixel), got shape "
                        f"{arr.shape[0]}x{arr.shape[1]}")
    return torch.from_numpy(arr / arr.sum()).float()
