"""Blur kernels and the blur-downsample degradation, batched on any device.

* ``gaussian_kernel(size, lambda1, lambda2, theta)``: anisotropic Gaussian with covariance
  ``R(theta) diag(lambda1, lambda2) R(theta)^T`` (lambdas are variances, in pixels^2), centred at
  ``((size - 1) / 2, (size - 1) / 2)``, summing to 1.
* ``random_kernels(n, scale)``: MZSR's training distribution of kernels.
* ``degrade(hr, kernels, scale, mode)``: blur (correlation with symmetric borders, i.e.
  ``scipy.ndimage.correlate(..., mode="reflect")``) then subsample: ``"direct"`` keeps pixels
  0, s, 2s, ... of each axis; ``"bicubic"`` resizes with MATLAB-bicubic ``imresize``. One grouped
  convolution for the whole batch.
* ``TEST_KERNELS`` / ``named_degradation(name)``: the named test degradations of the MZSR paper,
  plus ``"bicubic"`` (the standard benchmark LR) and kernels loaded from ``.npy`` / ``.mat`` files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import UserError
from common.imresize import imresize

MODES = ("direct", "bicubic")


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
    inv_a = cos**2 / lambda1 + sin**2 / lambda2
    inv_b = cos * sin * (1 / lambda1 - 1 / lambda2)
    inv_c = sin**2 / lambda1 + cos**2 / lambda2
    coords = torch.arange(size, dtype=lambda1.dtype, device=lambda1.device) - (size - 1) / 2
    x = coords.view(1, 1, size)  # column offset
    y = coords.view(1, size, 1)  # row offset
    # Axis convention: x runs along columns (width), y along rows (height), theta from the x axis.
    quad = inv_a.view(-1, 1, 1) * x**2 + 2 * inv_b.view(-1, 1, 1) * x * y + inv_c.view(-1, 1, 1) * y**2
    k = torch.exp(-0.5 * quad)
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


def _mirror_index(n: int, before: int, after: int, device) -> torch.Tensor:
    i = torch.remainder(torch.arange(-before, n + after, device=device), 2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def symmetric_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Pad the last two axes with ``d c b a | a b c d | d c b a`` (works for pads larger than the image).

    One gather over the flattened image plane: several times faster on CPU than padding each
    axis in turn.
    """
    h, w = x.shape[-2:]
    rows = _mirror_index(h, top, bottom, x.device)
    cols = _mirror_index(w, left, right, x.device)
    flat = (rows[:, None] * w + cols[None, :]).flatten()
    out = x.reshape(-1, h * w).index_select(1, flat)
    return out.view(*x.shape[:-2], rows.numel(), cols.numel())


def blur(x: torch.Tensor, kernels: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Correlate each image of ``x (B, C, H, W)`` with its kernel (``(B, k, k)`` or one ``(k, k)``).

    Symmetric borders and scipy's centring (``k // 2``), so with ``stride=1`` this equals
    ``scipy.ndimage.correlate(x[b, c], kernels[b], mode="reflect")``; ``stride=s`` keeps output
    pixels 0, s, 2s, ... (computed directly, not by discarding).
    """
    b, c, h, w = x.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(b, *kernels.shape)
    if kernels.shape[0] != b:
        raise ValueError(f"got {kernels.shape[0]} kernels for a batch of {b} images")
    kh, kw = kernels.shape[-2:]
    x = symmetric_pad(x, kh // 2, kh - 1 - kh // 2, kw // 2, kw - 1 - kw // 2)
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, kh, kw)
    # One depthwise convolution over all B*C planes; channels-last is about 2x faster on CPU.
    planes = x.reshape(1, b * c, *x.shape[-2:]).contiguous(memory_format=torch.channels_last)
    out = F.conv2d(planes, weight, stride=stride, groups=b * c)
    return out.reshape(b, c, *out.shape[-2:])


def degrade(
    hr: torch.Tensor,
    kernels: torch.Tensor,
    scale: int,
    mode: str = "direct",
    noise_sigma: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blur ``hr (B, C, H, W)`` with ``kernels`` and downsample by ``scale``.

    ``noise_sigma`` adds white Gaussian noise of that standard deviation (in [0, 1] intensity
    units) after downsampling. No clamping or rounding.
    """
    if mode not in MODES:
        raise ValueError(f"degradation mode must be one of {MODES}, got {mode!r}")
    if mode == "direct":
        lr = blur(hr, kernels, stride=scale)
    else:
        lr = imresize(blur(hr, kernels), scale=1 / scale)
    if noise_sigma > 0:
        noise = torch.randn(lr.shape, generator=generator, device=lr.device, dtype=lr.dtype)
        lr = lr + noise_sigma * noise
    return lr


# --------------------------------------------------------------------------- test degradations
@dataclass(frozen=True)
class KernelSpec:
    """A named test kernel: Gaussian parameters (variances) and how the image is subsampled."""

    lambda1: float
    lambda2: float
    theta: float
    mode: str
    size: int = 21  # the official MZSR test kernels are 21x21 (gd_2.0 matches its kernel.mat exactly)

    def kernel(self) -> torch.Tensor:
        return gaussian_kernel(self.size, self.lambda1, self.lambda2, self.theta)


# The MZSR paper's test kernels (Soh et al., CVPR 2020, Table 2). The anisotropic one's values are
# the best available reading of the paper/code (l1 = 4.0, l2 = 1.0, theta = -0.5): not certain.
TEST_KERNELS: dict[str, KernelSpec] = {
    "gd_0.2": KernelSpec(0.2, 0.2, 0.0, "direct"),
    "gd_2.0": KernelSpec(2.0, 2.0, 0.0, "direct"),
    "gd_ani": KernelSpec(4.0, 1.0, -0.5, "direct"),
    "gb_1.3": KernelSpec(1.3, 1.3, 0.0, "bicubic"),
}


@dataclass(frozen=True)
class Degradation:
    """How a test LR image is made from its HR image: MATLAB bicubic, or a kernel + subsampling."""

    name: str
    kernel: torch.Tensor | None  # None = plain MATLAB-bicubic downscaling
    mode: str = "bicubic"

    def apply(self, hr: torch.Tensor, scale: int) -> torch.Tensor:
        if self.kernel is None:
            return imresize(hr, scale=1 / scale)
        return degrade(hr, self.kernel.to(hr.device), scale, self.mode)


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
    return torch.from_numpy(arr / arr.sum()).float()


def named_degradation(name: str) -> Degradation:
    """``"bicubic"``, a name from ``TEST_KERNELS``, or ``<mode>:<path.npy|.mat>`` / a kernel path (direct)."""
    if name == "bicubic":
        return Degradation("bicubic", None)
    if name in TEST_KERNELS:
        spec = TEST_KERNELS[name]
        return Degradation(name, spec.kernel(), spec.mode)
    mode, _, path = name.partition(":") if name.split(":", 1)[0] in MODES else ("direct", "", name)
    if Path(path).suffix in (".npy", ".mat"):
        return Degradation(name, load_kernel(path), mode)
    allowed = ", ".join(["bicubic", *TEST_KERNELS, "<file>.npy|.mat", "bicubic:<file>"])
    raise UserError(f"unknown degradation {name!r}; allowed: {allowed}")
