"""Blur kernels and the blur-downsample degradation, batched on any device.

* ``gaussian_kernel(size, lambda1, lambda2, theta)``: anisotropic Gaussian with covariance
  ``R(theta) diag(lambda1, lambda2) R(theta)^T`` (lambdas are variances, in pixels^2), centred at
  ``((size - 1) / 2, (size - 1) / 2)``, summing to 1.
* ``random_kernels(n, scale)``: MZSR's training distribution of kernels (also ``blind_mzsr``'s).
* ``degrade(hr, kernels, scale, mode)``: blur (correlation with symmetric borders, i.e.
  ``scipy.ndimage.correlate(..., mode="reflect")``) then subsample: ``"direct"`` keeps pixels
  0, s, 2s, ... of each axis; ``"bicubic"`` resizes with MATLAB-bicubic ``imresize``. One grouped
  convolution for the whole batch.
* ``TEST_KERNELS`` / ``named_degradation(name)``: the named test degradations of the MZSR paper,
  plus ``"bicubic"`` (the standard benchmark LR) and kernels loaded from ``.npy`` / ``.mat`` files.
* ``BLIND_FAMILIES``: blind benchmarks (``blind_mzsr``, ``blind_div2krk``, ``<name>@<seed>``): every
  test image gets its own kernel from a stated distribution, and the method is not told it.
* ``gaussian_from_precision``: centred Gaussians from inverse covariances (differentiable).
* ``centre_kernel``, ``analytic_x4``: a kernel moved to its centre pixel, and the x4 kernel of an
  x2 one (the ``blind_div2krk`` kernels are made with them).
* ``kernel_error``: how far an estimated kernel is from the true one (the evaluator's score).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from srlab.errors import UserError
from srlab.imresize import imresize

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
    """How a test LR image is made from its HR image: MATLAB bicubic, or a kernel + subsampling.

    A blind benchmark's degradation (``family`` set) has no kernel of its own: each image gets one
    from ``for_image``, and what a method is handed is this object, which refuses to degrade.
    """

    name: str
    kernel: torch.Tensor | None  # None = plain MATLAB-bicubic downscaling (or hidden: blind)
    mode: str = "bicubic"
    family: BlindFamily | None = None

    @property
    def blind(self) -> bool:
        return self.family is not None

    def apply(self, hr: torch.Tensor, scale: int) -> torch.Tensor:
        if self.blind:
            raise ValueError(f"{self.name} is a blind benchmark: its kernel is hidden from the method "
                             "(estimate one: srlab.mzsr.estimate)")
        if self.kernel is None:
            return imresize(hr, scale=1 / scale)
        return degrade(hr, self.kernel.to(hr.device), scale, self.mode)

    def for_image(self, image: str, scale: int) -> Degradation:
        """The true degradation of test image ``image`` ("<dataset>/<name>") at ``scale``: its own
        kernel for a blind benchmark, else this one."""
        if self.family is None:
            return self
        return Degradation(f"{self.name}/{image}", self.family.kernel(image, scale), self.family.mode)


@dataclass(frozen=True)
class BlindFamily:
    """A blind benchmark's kernel distribution. Each image's kernel comes from a generator seeded
    by (distribution, seed, image, scale): it does not depend on which or how many other images are
    tested, and the same name gives the same kernels on every machine.

    * ``mzsr``: MZSR's training distribution (``random_kernels``, 15x15) at the test scale.
    * ``div2krk``: KernelGAN's DIV2KRK recipe as its paper states it: anisotropic Gaussian with
      variances lambda1, lambda2 ~ U(0.6, 5) and theta ~ U[0, pi), times uniform multiplicative
      noise of up to 25 % per tap, normalised, 11x11; at x4 the analytic x4 kernel of such an x2
      kernel (31x31), as KernelGAN derives x4 from x2. Noise moves the centre of mass; it is moved
      back to the centre (``centre_kernel``), as the dataset generator does.
    Both subsample directly (pixels 0, s, 2s, ...), MZSR's and DIV2KRK's setting.
    """

    distribution: str
    seed: int = 0
    mode: str = "direct"

    def kernel(self, image: str, scale: int) -> torch.Tensor:
        key = f"{self.distribution}@{self.seed}/{image}/x{scale}"
        generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if self.distribution == "mzsr":
            return random_kernels(1, scale, 15, generator=generator)[0]
        if scale not in (2, 4):
            raise ValueError(f"the div2krk kernels are defined at x2 and x4, not x{scale}")
        u = torch.rand(3, generator=generator, dtype=torch.float64)
        lambdas = 0.6 + 4.4 * u[:2]
        k = _gaussian_kernels(11, lambdas[:1], lambdas[1:], math.pi * u[2:])[0]
        k = k * (1 + 0.25 * (2 * torch.rand(k.shape, generator=generator, dtype=torch.float64) - 1))
        k = centre_kernel(k / k.sum())
        return (analytic_x4(k) if scale == 4 else k).float()


BLIND_FAMILIES = ("blind_mzsr", "blind_div2krk")


def blind_family(name: str) -> BlindFamily | None:
    """``blind_mzsr`` / ``blind_div2krk``, optionally ``@<seed>`` (default 0); None for other names."""
    base, _, seed = name.partition("@")
    if base not in BLIND_FAMILIES:
        return None
    if seed and not seed.isdigit():
        raise UserError(f"degradation {name!r}: the seed after @ must be a whole number >= 0")
    return BlindFamily(base.removeprefix("blind_"), int(seed or 0))


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
    return torch.from_numpy(arr / arr.sum()).float()


def named_degradation(name: str) -> Degradation:
    """``"bicubic"``, a name from ``TEST_KERNELS``, a blind benchmark (``BLIND_FAMILIES``, its kernel
    hidden), or ``<mode>:<path.npy|.mat>`` / a kernel path (direct)."""
    if name == "bicubic":
        return Degradation("bicubic", None)
    family = blind_family(name)
    if family is not None:
        return Degradation(name, None, family.mode, family)
    if name in TEST_KERNELS:
        spec = TEST_KERNELS[name]
        return Degradation(name, spec.kernel(), spec.mode)
    mode, _, path = name.partition(":") if name.split(":", 1)[0] in MODES else ("direct", "", name)
    if Path(path).suffix in (".npy", ".mat"):
        return Degradation(name, load_kernel(path), mode)
    allowed = ", ".join(["bicubic", *TEST_KERNELS, *BLIND_FAMILIES, "<blind>@<seed>", "<file>.npy|.mat",
                         "bicubic:<file>"])
    raise UserError(f"unknown degradation {name!r}; allowed: {allowed}")
