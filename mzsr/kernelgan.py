"""KernelGAN (Bell-Kligler, Shocher, Irani, NeurIPS 2019): the reference blind kernel estimator.

An internal GAN on one image: a deep *linear* generator G downscales 64x64 crops of the LR image
by 2, and a patch discriminator D learns to tell G's outputs from 26x26 crops of the image itself.
Since patches recur across scales in natural images, G converges to the downscaling whose output
looks like the image: the image's own SR kernel, read off G as its impulse response. As in the
official code (sefibk/KernelGAN, whose settings are restated here, not its code):

* G: convolutions 7x7, 5x5, 3x3, 1x1, 1x1, 1x1 (64 channels, no biases, no activations), the last
  with stride 2, applied to each colour channel alone: a 13x13 kernel. D: a 7x7 convolution, five
  1x1 convolutions with batch norm and ReLU, a 1x1 convolution and a sigmoid, all 64 wide with
  spectral norm: one real/fake score per 7x7 window (a 20x20 map).
* Losses: L1 between D's map and 1 (real) or 0 (fake); Gaussian noise of 1/255 on D's inputs. G's
  loss adds 5 x the MSE to a bicubic x2 downscaling (to start near bicubic; as in the official
  code, its 8x8 kernel is applied with the three colour channels summed), 0.5 x |sum(k) - 1|,
  0.5 x the boundary penalty on k (a mask growing to 30 towards the edges), and, once the bicubic
  term has faded, 1 x the distance of k's centre of mass from its centre and 5 x the sparsity
  penalty mean(|k|^0.2).
* Schedule: Adam 2e-4, betas (0.5, 0.999), 3,000 iterations; both learning rates / 10 every 750;
  once the bicubic MSE has stayed below 0.4 for three iterations its weight is divided by 100
  every 200 iterations (down to 5e-6), and when it falls below 5e-3 the centre and sparsity terms
  switch on.
* Crops: 10 pixels are shaved off each edge (synthetic images), then G's and D's crops are drawn
  in proportion to the local gradient magnitude (97th-percentile clipped, box-blurred), G's on the
  bicubic half-size image's map; top-left corners even. Images in [-1, 1].
* The kernel: G's impulse response; taps below 0.75 x its 41st largest are zeroed, and it is
  normalised. x4: the analytic x4 kernel of the x2 one (``analytic_x4``), cropped by 6 on each side
  to 25x25, as the official code does.

Departures: the final kernel is centred on its centre pixel (``centre_kernel``: this project's
degradation convention) rather than half a pixel off (the official code's subsampling convention);
the random crops come from a seeded NumPy generator; D's real crops get fresh noise each time (the
official code adds it to the image in place, so noise accumulates where crops overlap); the
networks run on the CPU or GPU they are given.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srlab.degradation import analytic_x4, centre_kernel
from srlab.errors import DataError
from srlab.imresize import imresize
from srlab.mzsr.kernels import KernelEstimate

# scipy.signal (about a second to import) is imported inside the two functions that use it:
# srlab.mzsr.estimate imports this module, and most runs never train KernelGAN.

G_STRUCTURE = (7, 5, 3, 1, 1, 1)
G_CROP = 64
KERNEL_SIZE = 13  # the receptive field of G_STRUCTURE
# KernelGAN's 8x8 bicubic x2 downscaling kernel (its loss.py): the outer product of this vector.
_BICUBIC_1D = torch.tensor([-0.01171875, -0.03515625, 0.11328125, 0.43359375,
                            0.43359375, 0.11328125, -0.03515625, -0.01171875], dtype=torch.float64)


class Generator(nn.Module):
    def __init__(self, channels: int = 64):
        super().__init__()
        widths = [1] + [channels] * (len(G_STRUCTURE) - 1) + [1]
        self.layers = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], k, stride=2 if i == len(G_STRUCTURE) - 1 else 1, bias=False)
            for i, k in enumerate(G_STRUCTURE))
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(0, 1)  # each colour channel is an image of one channel
        for layer in self.layers:
            x = layer(x)
        return x.transpose(0, 1)

    def kernel(self) -> torch.Tensor:
        """G's impulse response (differentiable): the kernel it downscales with (correlation)."""
        k = torch.ones(1, 1, 1, 1, device=self.layers[0].weight.device)
        k = F.conv2d(k, self.layers[0].weight, padding=KERNEL_SIZE - 1)
        for layer in self.layers[1:]:
            k = F.conv2d(k, layer.weight)
        return k[0, 0].flip(0, 1)


class Discriminator(nn.Module):
    def __init__(self, channels: int = 64, layers: int = 7, kernel_size: int = 7):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        blocks: list[nn.Module] = [sn(nn.Conv2d(3, channels, kernel_size))]
        for _ in range(layers - 2):
            blocks += [sn(nn.Conv2d(channels, channels, 1)), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        blocks += [sn(nn.Conv2d(channels, 1, 1)), nn.Sigmoid()]
        self.body = nn.Sequential(*blocks)
        # Convolution weights keep PyTorch's default initialisation: the official code's Xavier
        # initialisation writes to the spectrally normalised copy, which the next forward pass
        # recomputes from the untouched original (and spectral norm removes the scale anyway).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# --------------------------------------------------------------------------- crops
def gradient_map(image: np.ndarray, window: int = 5, percent: float = 0.97) -> np.ndarray:
    """Where the image has structure: |gx|, |gy| and |grad| of its grey level, each clipped at
    its ``percent`` quantile and normalised, summed, box-blurred; mean 1."""
    from scipy.signal import convolve2d

    gray = image @ np.array([0.299, 0.587, 0.114])
    gx, gy = np.gradient(gray)
    maps = [np.abs(gx), np.abs(gy), np.sqrt(gx**2 + gy**2)]
    total = np.zeros_like(gray)
    for m in maps:
        m = _zero_edges(m, window)
        ordered = np.sort(m.ravel())
        pivot = int(percent * ordered.size)
        low = ordered[pivot]
        high = ordered[pivot + 1] if ordered[pivot + 1] > low else low + 1e-5
        m = np.clip(m, low, high) - low
        total += m / m.sum() if m.sum() > 0 else m
    blurred = convolve2d(total, np.ones((window, window)), "same") / window**2
    return blurred / blurred.mean() if blurred.mean() > 0 else np.ones_like(blurred)


def _zero_edges(m: np.ndarray, edge: int) -> np.ndarray:
    out = np.zeros_like(m)
    out[edge:-edge, edge:-edge] = m[edge:-edge, edge:-edge]
    return out


def crop_probabilities(loss_map: np.ndarray, crop: int) -> np.ndarray:
    """A probability per pixel of being a crop's centre: the map's mean over the crop's inner half,
    zero within ``crop // 2`` of an edge."""
    from scipy.signal import convolve2d

    half = crop // 2
    blurred = _zero_edges(convolve2d(loss_map, np.ones((half, half)), "same") / half**2, half)
    total = blurred.sum()
    return blurred.ravel() / total if total > 0 else np.full(blurred.size, 1 / blurred.size)


def crop_corners(probabilities: np.ndarray, shape: tuple[int, int], size: int, n: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``n`` (top, left) corners of ``size`` crops, centres drawn from ``probabilities``; even."""
    rows, cols = shape
    centres = rng.choice(probabilities.size, size=n, p=probabilities)
    top = np.clip(centres // cols - size // 2, 0, rows - size)
    left = np.clip(centres % cols - size // 2, 0, cols - size)
    return np.stack([top - top % 2, left - left % 2], axis=1)


# --------------------------------------------------------------------------- losses
def penalty_mask(size: int = KERNEL_SIZE, scale: float = 30.0) -> torch.Tensor:
    """KernelGAN's boundary mask: 0 in the centre, growing towards the edges (an inverted wide Gaussian)."""
    z = np.arange(-size // 2 + 1, size // 2 + 1)
    g = np.exp(-(z**2) / (2 * size**2))
    mask = 1 - np.outer(g, g) / np.outer(g, g).max()
    margin = (size - (size // 2 + size % 2)) // 2 - 1
    mask[margin:-margin, margin:-margin] = 0
    return torch.from_numpy(scale * mask).float()


def kernel_constraints(k: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The kernel terms of G's loss (before their weights)."""
    idx = torch.arange(k.shape[0], dtype=k.dtype, device=k.device)
    total = k.sum()
    centre_of_mass = torch.stack([k.sum(1) @ idx, k.sum(0) @ idx]) / total
    wanted = k.shape[0] // 2 + 0.5 * (2 - k.shape[0] % 2)  # the official centre (its subsampling convention)
    return {
        "sum2one": (1 - total).abs(),
        "boundaries": (k * mask).abs().mean(),
        "centralized": ((centre_of_mass - wanted) ** 2).mean(),
        "sparse": (k.abs() ** 0.2).mean(),
    }


def bicubic_half(x: torch.Tensor) -> torch.Tensor:
    """KernelGAN's bicubic x2 downscaling of ``x`` (its 8x8 kernel, stride 2, zero padding 3)."""
    k = torch.outer(_BICUBIC_1D, _BICUBIC_1D).to(x)
    c = x.shape[1]
    return F.conv2d(x, k.expand(c, c, 8, 8), stride=2, padding=3)


def shave_to(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` cut symmetrically to ``b``'s height and width."""
    dr, dc = a.shape[-2] - b.shape[-2], a.shape[-1] - b.shape[-1]
    return a[..., dr // 2 : a.shape[-2] - dr + dr // 2, dc // 2 : a.shape[-1] - dc + dc // 2]


# --------------------------------------------------------------------------- training
def kernelgan_x2(lr: torch.Tensor, iters: int = 3000, seed: int = 0, shave: int = 10) -> torch.Tensor:
    """KernelGAN's x2 kernel (13x13, not yet centred) of the LR image ``(1, 3, h, w)`` in [0, 1]."""
    device = lr.device
    image = lr[0].permute(1, 2, 0).double().cpu().numpy()
    if shave and min(image.shape[:2]) > 2 * shave + G_CROP:
        image = image[shave:-shave, shave:-shave]
    image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
    if min(image.shape[:2]) < G_CROP:
        raise DataError(f"KernelGAN needs an LR image of at least {G_CROP}x{G_CROP} pixels, got "
                        f"{lr.shape[-1]}x{lr.shape[-2]}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    g, d = Generator().to(device), Discriminator().to(device)
    d_crop = g(torch.zeros(1, 3, G_CROP, G_CROP, device=device)).shape[-1]
    labels_shape = d(torch.zeros(1, 3, d_crop, d_crop, device=device)).shape
    real_label, fake_label = torch.ones(labels_shape, device=device), torch.zeros(labels_shape, device=device)

    half = imresize(torch.from_numpy(image).permute(2, 0, 1)[None], scale=0.5)[0].permute(1, 2, 0).numpy()
    g_map = np.kron(gradient_map(half), np.ones((2, 2)))[: image.shape[0], : image.shape[1]]  # nearest x2
    g_corners = crop_corners(crop_probabilities(g_map, G_CROP), image.shape[:2], G_CROP, iters, rng)
    d_corners = crop_corners(crop_probabilities(gradient_map(image), d_crop), image.shape[:2], d_crop, iters, rng)
    signed = torch.from_numpy(image * 2 - 1).permute(2, 0, 1)[None].float().to(device)  # [-1, 1]

    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    weights = {"bicubic": 5.0, "sum2one": 0.5, "boundaries": 0.5, "centralized": 0.0, "sparse": 0.0}
    mask = penalty_mask().to(device)
    near_bicubic, counter, constraints_added = False, 0, False
    for it in range(iters):
        (gt, gl), (dt, dl) = g_corners[it], d_corners[it]
        g_in = signed[..., gt : gt + G_CROP, gl : gl + G_CROP]
        d_real = signed[..., dt : dt + d_crop, dl : dl + d_crop]
        d_real = d_real + 2 * torch.randn(d_real.shape, device=device) / 255  # 1/255 of the [0, 1] range

        # G: fool D, stay a plausible kernel.
        opt_g.zero_grad(set_to_none=True)
        g_out = g(g_in)
        terms = kernel_constraints(g.kernel(), mask)
        bicubic_mse = F.mse_loss(g_out, shave_to(bicubic_half(g_in), g_out))
        loss_g = F.l1_loss(d(g_out), real_label) + weights["bicubic"] * bicubic_mse \
            + sum(weights[name] * value for name, value in terms.items())
        loss_g.backward()
        opt_g.step()

        # D: real crops -> 1, G's (new) outputs -> 0.
        opt_d.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = g(g_in)
            fake = fake + torch.randn(fake.shape, device=device) / 255
        loss_d = 0.5 * (F.l1_loss(d(fake), fake_label) + F.l1_loss(d(d_real), real_label))
        loss_d.backward()
        opt_d.step()

        # KernelGAN's learner (its learner.py), after the step of iteration ``it``.
        if it == 0:
            continue
        if it % 750 == 0:
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] /= 10
        if not near_bicubic:
            counter = counter + 1 if bicubic_mse.item() < 0.4 else 0
            near_bicubic = counter > 2
        elif it % 200 == 0 and weights["bicubic"] > 5e-6:
            weights["bicubic"] = max(weights["bicubic"] / 100, 5e-6)
            if not constraints_added and weights["bicubic"] < 5e-3:
                weights["centralized"], weights["sparse"] = 1.0, 5.0
                constraints_added = True
    with torch.no_grad():
        return g.kernel().double().cpu()


def drop_negligible(k: torch.Tensor, n: int = 40) -> torch.Tensor:
    """Zero the taps below 0.75 x the (n+1)-th largest, subtract that floor, normalise (KernelGAN's
    post-processing)."""
    floor = 0.75 * torch.sort(k.flatten()).values[-n - 1]
    k = (k - floor).clamp(min=0)
    return k / k.sum()


class KernelGANEstimator:
    name = "kernelgan"

    def __init__(self, iters: int = 3000, seed: int = 0):
        self.iters = iters
        self.seed = seed

    def __call__(self, lr: torch.Tensor, scale: int) -> KernelEstimate:
        if scale not in (2, 4):
            raise DataError(f"KernelGAN estimates x2 kernels (and x4 from them), not x{scale}")
        start = time.perf_counter()
        with torch.enable_grad():
            k2 = drop_negligible(kernelgan_x2(lr, self.iters, self.seed))
        kernel = k2 if scale == 2 else analytic_x4(k2)[6:-6, 6:-6]
        kernel = centre_kernel((kernel / kernel.sum()).float())
        return KernelEstimate(kernel, self.name, time.perf_counter() - start)
