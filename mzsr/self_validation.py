"""Self-validation: for each photograph, run whichever candidate restores it best from a smaller copy.

MZSR adapted to a wrong kernel can give a picture worse than plain interpolation, and a photo
comes with no kernel. ZSSR's idea settles it on the image itself: shrink the LR image once more
(the "son", with the estimated degradation), run every candidate on the son exactly as it would
run on the LR image (adaptation included: an adapting candidate adapts to the son's own son), and
score each result against the LR image (PSNR of the Y channel, 8 bits, border = scale). The best
one then runs on the LR image. The candidates:

* ``stage 1``: the network before meta-transfer, no adaptation (when the checkpoint carries it);
* ``MZSR(n) + Gaussian``: adapted to the estimated blur, when the estimate is a blur
  (``srlab.mzsr.estimate.PhotoEstimator`` says so only when the photo looks more blurred than any
  tool makes a photo look: the son cannot catch that mistake, since a son made with the estimated
  kernel favours the network adapted to it, whatever the truth);
* ``MZSR(n) + bicubic``: adapted to MATLAB-bicubic downscaling, when the estimate is a blur (or
  the checkpoint carries no stage 1): for a photo a tool shrank, stage 1 is the network trained
  for that, and the adapted one did worse (below);
* ``bicubic``: interpolation, the answer when nothing better is known.

Each network candidate also runs blended with interpolation (``BLENDS``: a quarter, half, three
quarters of the network's output, the rest bicubic): the son overrates a network on a photo whose
fine texture the son cannot hold (it is smaller), and a blend keeps most of the gain where the son
is right and loses little where it is wrong. A JPEG (the caller says so: ``srlab upscale`` knows a
.jpg file) runs at most half of a network's output (``JPEG_MAX_BLEND``): networks sharpen its
blocks, and the son, saved as JPEG at a quality that gives it the same blockiness
(``srlab.degradation.photo.jpeg_quality_like``), still overrates them. A photo a tool shrank runs
at most three quarters (``TOOL_MAX_BLEND``): there the son tells candidates apart but not shares.
Measured with stage 1 on the 14 scikit-image photos, each shrunk by Pillow's bicubic, bilinear and
Lanczos, area averaging, MATLAB and a mild blur: the share that is best against the original is
0.62 (area) to 0.92 (MATLAB) on average for the tools but Pillow's bilinear (1.65) and the blur
(1.45), 0.17-0.52 on the brick wall and the moon shrunk by the sharper tools, while the son's best
share is 0.7-1.2 whatever the tool, so it almost always chose the whole network.
On the photo suite (280 results, the shipped ``meta_x2_cpu.pt``; before the aliasing rule below):
without these two rules mean gain over interpolation +0.84 dB, worst -2.94, 5 results more than
0.1 dB below interpolation; with them +0.88, -0.78, 1 (the moon shrunk by area averaging); at most
half instead of three quarters: +0.81, -0.19, 1. On Set14 halved by four tools (held out) three
quarters gave 31.87 dB on average against 31.81 before these rules and 31.56 for half (Asym-VDSR
31.60). Measured with stage 1; a checkpoint without it gets the same cap on MZSR adapted to bicubic
(not measured).
``srlab upscale --max-share`` sets the cap for every photo instead (0.4: no photo of the suite more
than 0.1 dB below interpolation, +0.63 dB on average instead of +0.85, blurred photos losing most:
+0.73 instead of +1.48 on the blind kernels; Set14 by four tools 31.27 dB instead of 31.79).

Where the photo aliases (``network_weight``: fine stripes or grain folded into the pixel grid,
found by second differences more than twice as strong as first ones), no network runs, whatever
the share (it fades back in at the edges of such parts): the network sharpens the aliasing into a
pattern the original never had, and the son, made from the aliased photo, cannot show it.
Set14's barbara halved by area averaging: -0.46 dB against interpolation with three quarters of
stage 1 everywhere, +0.20 with the aliased parts interpolated (16 % of her pixels); on the photo
suite the mean gain goes from +0.88 to +0.85 dB (text loses most: the page photo up to 0.5 of its
+0.8 to +1.4), on Set14 by four tools from 31.87 to 31.79 dB, none of the 56 below interpolation
(was one).

Its cost: an adaptation per adapting candidate on a quarter of the pixels, about half an MZSR(n)
on top of the MZSR(n) itself when the estimate is a blur; a forward pass per candidate on the son
when it is a tool and the checkpoint carries stage 1 (nothing adapts then).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from srlab.data import to_tensor, to_uint8
from srlab.degradation import Degradation, named_degradation
from srlab.degradation.photo import jpeg_quality_like, jpeg_round_trip
from srlab.errors import DataError, UserError
from srlab.imresize import imresize
from srlab.metrics import psnr_of_y, quantize, y_channel
from srlab.mzsr.kernels import KernelEstimate
from srlab.mzsr.zeroshot import adapt_to_image, upscale

Params = dict[str, torch.Tensor]


class Diverged(UserError):
    """An adaptation went to NaN or grew its loss: that candidate cannot run on this image."""


# The shares of a network's output tried in a blend with interpolation (1: the network alone).
BLENDS = (0.25, 0.5, 0.75)
JPEG_MAX_BLEND = 0.5
TOOL_MAX_BLEND = 0.75  # the measurements are in the module's docstring


# Where the photo aliases (the energy of its second differences, over 5x5 pixels, more than twice
# that of its first differences), no network runs: see the module's docstring.
ALIAS_RATIO = 2.0
_LUMA = (65.481, 128.553, 24.966)  # Y's weights, in 8-bit units: the "+ 1" below is one grey level squared


def network_weight(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """``(1, 1, h * scale, w * scale)`` in [0, 1]: how much of a network's share may run at each
    output pixel of ``lr`` ``(1, 3, h, w)``: 0 inside its aliased parts (fine stripes or grain a tool
    folded into the pixel grid, which a network sharpens into patterns the original never had), 1
    away from them, fading over 3x3 LR pixels at their edges. Local, so a tile with 4 LR pixels of
    context around its core weighs the core as the whole image does."""
    y = (lr.float() * lr.new_tensor(_LUMA, dtype=torch.float32).view(1, 3, 1, 1)).sum(1, keepdim=True)  # fp16 overflows
    padded = F.pad(y, (1, 1, 1, 1), mode="replicate")
    left, right = padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]
    up, down = padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]
    second = (left - 2 * y + right) ** 2 + (up - 2 * y + down) ** 2
    first = (right - left) ** 2 + (down - up) ** 2

    def local(value: torch.Tensor, size: int) -> torch.Tensor:
        return F.avg_pool2d(F.pad(value, (size // 2,) * 4, mode="replicate"), size, stride=1)

    aliased = (local(second, 5) > ALIAS_RATIO * (local(first, 5) + 1)).float()
    weight = 1 - local(aliased, 3)
    return weight.repeat_interleave(scale, -2).repeat_interleave(scale, -1)


def blend(network: torch.Tensor, interpolated: torch.Tensor, share: float, weight: torch.Tensor) -> torch.Tensor:
    """``share`` of a network's output, the rest ``interpolated``, the share scaled by the LR
    image's ``network_weight`` (none of the network over its aliased parts)."""
    shares = share * weight.to(network.dtype)
    return shares * network + (1 - shares) * interpolated


def max_blend(estimate: KernelEstimate, jpeg: bool) -> float:
    """The largest share of a network's output that may run on a photo: ``JPEG_MAX_BLEND`` for a
    JPEG, ``TOOL_MAX_BLEND`` for one the estimate says a tool shrank, else all of it."""
    if jpeg:
        return JPEG_MAX_BLEND
    return TOOL_MAX_BLEND if estimate.tool else 1.0


@dataclass(frozen=True)
class Candidate:
    """A way to super-resolve an image: ``params`` (None: bicubic interpolation) adapted to
    ``degradation`` with ``lrs`` (one step each; None or no steps: no adaptation; ``backtrack``:
    a step that raises the son's loss is undone), its output weighted by ``blend`` and the rest
    bicubic interpolation."""

    name: str
    params: Params | None
    degradation: Degradation | None = None
    lrs: tuple[float, ...] = ()
    backtrack: bool = False
    blend: float = 1.0

    def blended(self, share: float) -> Candidate:
        return replace(self, name=f"{100 * share:.3g}% of {self.name}, {100 * (1 - share):.3g}% interpolation",
                       blend=share)

    def run(self, model: nn.Module, lr: torch.Tensor, scale: int,
            on_step: Callable[[], None] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """Prepared on ``lr (1, 3, h, w)``: what to run on any tile of it (``(1, 3, H, W)`` in [0, 1])."""
        if self.params is None:
            return lambda tile: imresize(tile, scale=scale)
        network = self.network(model, lr, scale, on_step)
        return lambda tile: blend(network(tile), imresize(tile, scale=scale), self.blend, network_weight(tile, scale))

    def network(self, model: nn.Module, lr: torch.Tensor, scale: int,
                on_step: Callable[[], None] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The network alone, adapted on ``lr`` if the candidate adapts (``run`` blends it)."""
        params = self.params
        if self.degradation is not None and self.lrs:
            adapted = adapt_to_image(model, lr, scale, self.degradation, list(self.lrs), on_step, params,
                                     self.backtrack)
            if adapted.diverged:
                raise Diverged(adapted.divergence())
            params = adapted.params
        return lambda tile: upscale(model, params, tile, scale)


@dataclass
class Choice:
    """Which candidate ran on an image, and why: each candidate's gain in PSNR_Y over bicubic
    interpolation on the son, the worst over the sons (NaN: it diverged or could not run there),
    the kernel estimate, and the seconds self-validation took."""

    chosen: Candidate
    son_gain: dict[str, float] = field(default_factory=dict)
    sons: tuple[str, ...] = ()
    estimate: KernelEstimate | None = None
    seconds: float = 0.0
    note: str = ""  # why no comparison was made, if none was

    def describe(self) -> str:
        if self.note:
            return f"ran {self.chosen.name}: {self.note}"
        ranked = sorted((item for item in self.son_gain.items() if item[0] != "bicubic"),
                        key=lambda item: -math.inf if math.isnan(item[1]) else item[1], reverse=True)
        gains = "; ".join(f"{name} {gain:+.2f}" for name, gain in ranked[:3])  # the best three: a line, not a table
        made_by = " / ".join("the estimated blur" if son.startswith("estimated") else son.removeprefix("photo_")
                             for son in self.sons)
        return f"ran {self.chosen.name} (gain over bicubic on the sons made by {made_by}: {gains} dB)"


def candidates(meta: Params, stage1: Params | None, estimate: KernelEstimate, lrs: list[float],
               backtrack: bool = False) -> list[Candidate]:
    """What may run on a photo: the stage-1 network, MZSR adapted to the estimated blur (when the
    estimate is a blur, not a tool's downscaling), MZSR adapted to bicubic downscaling (not when
    the estimate is a tool and stage 1 is there: see ``TOOL_MAX_BLEND``), bicubic interpolation."""
    n = len(lrs)
    found = [Candidate("stage 1", stage1)] if stage1 is not None else []
    if n and estimate.degradation() is not None and not estimate.tool:
        found.append(Candidate(f"MZSR({n}) + {estimate.describe()}", meta, estimate.degradation(), tuple(lrs),
                               backtrack))
    if n and not (estimate.tool and stage1 is not None):
        found.append(Candidate(f"MZSR({n}) + bicubic", meta, named_degradation("bicubic"), tuple(lrs), backtrack))
    return [*found, Candidate("bicubic", None)]


# A photo shrunk by a tool: its son is made by MATLAB's bicubic downscaling. Sons made by several
# tools (MATLAB, area averaging, Lanczos), the worst of them counting, were measured on the photo
# suite and did worse: every candidate looks worse on the sharper tools' sons than it does on the
# photo itself, so interpolation ran where a network gained 1-2.6 dB (mean 30.70 dB against 30.89
# with the one son, worst photo -3.78 dB against -1.57 below interpolation).
TOOL_SONS = ("matlab",)


def sons(estimate: KernelEstimate, scale: int) -> list[Degradation]:
    """How the son is made: as the estimate says the photo was made when it is a blur; when it is
    a tool's downscaling (or the estimate cannot say), by ``TOOL_SONS``."""
    if estimate.degradation() is not None and not estimate.tool:
        return [estimate.degradation()]
    return [named_degradation(f"photo_{tool}").for_image("son", scale) for tool in TOOL_SONS]


def choose(model: nn.Module, lr: torch.Tensor, scale: int, options: list[Candidate],
           son_degradations: list[Degradation], estimate: KernelEstimate | None = None,
           max_blend: float = 1.0) -> Choice:
    """The candidate (or blend of one with interpolation, its share at most ``max_blend``) that
    gains most over bicubic interpolation (``options`` ends with it) in its worst case over the
    sons of ``lr (1, 3, h, w)`` made by ``son_degradations`` (each then saved as JPEG at a matching
    quality when ``lr`` shows JPEG blocks, so that a network that sharpens the blocks loses to
    interpolation on the son as on the photo). No gain anywhere: interpolation."""
    start = time.perf_counter()
    h, w = lr.shape[-2:]
    target = lr[..., : h - h % scale, : w - w % scale]
    target_y = y_channel(quantize(target))
    interpolation, networks = options[-1], options[:-1]
    # a cap a hair above a standard share replaces it (two shares, one name, would share one score)
    shares = sorted({share for share in (*BLENDS, 1.0) if share < max_blend - 0.01} | {max_blend})
    # (the network, its share, the candidate that runs): each network runs once per son, blended after
    variants = [(option, share, option if share >= 1 else option.blended(share))
                for option in networks for share in shares]
    worst = {interpolation.name: 0.0, **{variant.name: math.inf for _, _, variant in variants}}
    for degradation in son_degradations:
        son = _son(target, scale, degradation)
        bicubic = interpolation.run(model, son, scale)(son)
        floor = _psnr(bicubic, target_y, scale)
        outputs = {option.name: _son_output(model, option, son, scale) for option in networks}
        weight = network_weight(son, scale)
        for option, share, variant in variants:
            out = outputs[option.name]
            gain = math.nan if out is None else _psnr(blend(out, bicubic, share, weight), target_y, scale) - floor
            before = worst[variant.name]
            worst[variant.name] = gain if math.isnan(gain) or math.isnan(before) else min(before, gain)
    chosen = [interpolation] + [variant for _, _, variant in variants]
    best = max(chosen, key=lambda variant: -math.inf if math.isnan(worst[variant.name]) else worst[variant.name])
    return Choice(best, worst, tuple(d.name.split("/")[0] for d in son_degradations), estimate,
                  time.perf_counter() - start)


def _son(target: torch.Tensor, scale: int, degradation: Degradation) -> torch.Tensor:
    with torch.no_grad():
        son = quantize(degradation.apply(target, scale).clamp(0, 1))
    quality = jpeg_quality_like(to_uint8(target), to_uint8(son))
    return son if quality is None else to_tensor(jpeg_round_trip(to_uint8(son), quality)).to(son.device)


def _son_output(model: nn.Module, option: Candidate, son: torch.Tensor, scale: int) -> torch.Tensor | None:
    """``option``'s network run on ``son`` (None: it diverged, cannot run there, or gave NaN)."""
    try:
        out = option.network(model, son, scale)(son).detach()  # an adapting candidate needs gradients here
    except (Diverged, DataError):  # diverged, or the son is too small to degrade once more
        return None
    return out if torch.isfinite(out).all() else None


def _psnr(out: torch.Tensor, target_y: torch.Tensor, scale: int) -> float:
    return psnr_of_y(y_channel(quantize(out.clamp(0, 1))), target_y, scale).item()
