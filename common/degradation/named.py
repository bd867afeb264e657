"""The degradations a test names (``test.degradations``, ``--kernel``): how an LR image is made.

* ``"bicubic"``: MATLAB-bicubic downscaling, the standard benchmarks' LR.
* ``TEST_KERNELS``: the MZSR paper's test kernels (``gd_0.2``, ``gd_2.0``, ``gd_ani``: blur +
  direct subsampling; ``gb_1.3``: blur + bicubic), and kernels read from ``.npy`` / ``.mat`` files.
* ``BLIND_FAMILIES``: blind benchmarks (``blind_mzsr``, ``blind_div2krk``, ``<name>@<seed>``): every
  test image gets its own kernel from a stated distribution, and the method is not told it.
* ``PHOTO_SUITE``: the ways people and tools shrink photographs (``photo_<tool>[_jpeg<q>]``,
  ``srlab.degradation.photo``); the name ``photo`` stands for all of them. The method is not told
  which tool made the image (as with a blind benchmark); a row marked ``sees_true_kernel`` is
  handed the tool's kernel.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srlab.degradation.blur import MODES, degrade
from srlab.degradation.kernels import (
    _gaussian_kernels,
    analytic_x4,
    centre_kernel,
    gaussian_kernel,
    load_kernel,
    random_kernels,
)
from srlab.degradation.photo import TOOLS, shrink, tool_kernel
from srlab.errors import UserError
from srlab.imresize import imresize


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
    """How a test LR image is made from its HR image: MATLAB bicubic, a kernel + subsampling, or a
    tool (``PhotoTool``: Pillow, JPEG), which ``apply`` runs itself while ``kernel`` is its
    equivalent kernel.

    A blind benchmark's or the photo suite's degradation (``family`` set) is hidden: each image gets
    its own from ``for_image``, and what a method is handed is this object, which refuses to degrade.
    """

    name: str
    kernel: torch.Tensor | None  # None = plain MATLAB-bicubic downscaling (or hidden: blind)
    mode: str = "bicubic"
    family: BlindFamily | PhotoTool | None = None
    tool: PhotoTool | None = None

    @property
    def blind(self) -> bool:
        return self.family is not None

    def apply(self, hr: torch.Tensor, scale: int) -> torch.Tensor:
        if self.blind:
            raise ValueError(f"{self.name}: how this image was made is hidden from the method "
                             "(estimate its kernel: srlab.mzsr.estimate)")
        if self.tool is not None:
            return self.tool.apply(hr, scale)
        if self.kernel is None:
            return imresize(hr, scale=1 / scale)
        return degrade(hr, self.kernel.to(hr.device), scale, self.mode)

    def for_image(self, image: str, scale: int) -> Degradation:
        """The true degradation of test image ``image`` ("<dataset>/<name>") at ``scale``: its own
        kernel for a blind benchmark, the tool for the photo suite, else this one."""
        if self.family is None:
            return self
        tool = self.family if isinstance(self.family, PhotoTool) else None
        return Degradation(f"{self.name}/{image}", self.family.kernel(image, scale), self.family.mode, tool=tool)


@dataclass(frozen=True)
class PhotoTool:
    """A photo-suite degradation: ``tool`` (``srlab.degradation.photo.TOOLS``), then JPEG at quality
    ``jpeg`` if set. Its kernel is the tool's (``tool_kernel``; JPEG has none); subsampling direct."""

    tool: str
    jpeg: int | None = None
    mode: str = "direct"

    def kernel(self, image: str, scale: int) -> torch.Tensor:
        return tool_kernel(self.tool, scale)

    def apply(self, hr: torch.Tensor, scale: int) -> torch.Tensor:
        """Each image of ``hr (B, 3, H, W)`` in [0, 1] through the tool (in 8 bits, as a tool works)."""
        images = (hr.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        lr = np.stack([shrink(image, scale, self.tool, self.jpeg) for image in images])
        return torch.from_numpy(lr).permute(0, 3, 1, 2).to(hr.device, hr.dtype) / 255


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


# The photo suite: every tool alone and followed by JPEG at two qualities (what phones and editors
# save at: 90 is common, 75 is a heavily compressed web image).
JPEG_QUALITIES = (90, 75)
PHOTO_SUITE = tuple(f"photo_{tool}{suffix}" for tool in TOOLS
                    for suffix in ("", *(f"_jpeg{q}" for q in JPEG_QUALITIES)))
SUITES = {"photo": PHOTO_SUITE}


def photo_tool(name: str) -> PhotoTool | None:
    """``photo_<tool>`` or ``photo_<tool>_jpeg<quality>`` (quality 1-100); None for other names."""
    if not name.startswith("photo_"):
        return None
    tool, _, quality = name.removeprefix("photo_").partition("_jpeg")
    if tool not in TOOLS or (quality and not (quality.isdigit() and 1 <= int(quality) <= 100)):
        raise UserError(f"degradation {name!r}: allowed: photo_<tool>[_jpeg<quality 1-100>] with a tool from "
                        f"{', '.join(TOOLS)}")
    return PhotoTool(tool, int(quality) if quality else None)


def expand_suites(names: list[str]) -> list[str]:
    """``names`` with every suite (``photo``) replaced by its members, in order, each once."""
    return list(dict.fromkeys(member for name in names for member in SUITES.get(name, (name,))))


def named_degradation(name: str) -> Degradation:
    """``"bicubic"``, a name from ``TEST_KERNELS``, a blind benchmark (``BLIND_FAMILIES``, its kernel
    hidden), a photo-suite degradation (``photo_<tool>[_jpeg<q>]``, hidden as a blind one), or
    ``<mode>:<path.npy|.mat>`` / a kernel path (direct)."""
    if name == "bicubic":
        return Degradation("bicubic", None)
    family = blind_family(name) or photo_tool(name)
    if family is not None:
        return Degradation(name, None, family.mode, family)
    if name in TEST_KERNELS:
        spec = TEST_KERNELS[name]
        return Degradation(name, spec.kernel(), spec.mode)
    mode, _, path = name.partition(":") if name.split(":", 1)[0] in MODES else ("direct", "", name)
    if Path(path).suffix in (".npy", ".mat"):
        return Degradation(name, load_kernel(path), mode)
    allowed = ", ".join(["bicubic", *TEST_KERNELS, *BLIND_FAMILIES, "<blind>@<seed>", *SUITES,
                         "photo_<tool>[_jpeg<q>]", "<file>.npy|.mat", "bicubic:<file>"])
    raise UserError(f"unknown degradation {name!r}; allowed: {allowed}")
