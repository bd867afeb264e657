"""The Python API: a trained checkpoint as a ready-to-call upscaler.

    from srlab.api import load_upscaler

    up = load_upscaler("weights/asymsr/asym_vdsr_x234_cpu.pt")  # a checkpoint written by srlab train
    up.scales                                   # [2, 3, 4]: what the network was trained for
    sr = up("photo.png", scale=2)               # uint8 (2H, 2W, 3); also a PIL image, an array or a tensor
    up.upscale_file("photo.png", "photo_x2.png")
    mzsr = load_upscaler("weights/mzsr/meta_x2_cpu.pt")
    sr = mzsr("blurry.png", scale=2, kernel="gd_2.0")   # MZSR adapts to the photo's kernel first

    from srlab.api import evaluate_folder, train
    records = evaluate_folder(up, "Set14/HR", scales=[2])   # the literature's protocol (Y, crop, 8 bits)
    records = evaluate_folder(lambda lr, scale: my_net(lr), "my_hr_folder", scales=[4])
    train("configs/demo.yaml", ["train.total_iters=100"], out="runs/try")

The upscaler loads the checkpoint with ``srlab.loading.load``: its network card says how the
network must be called (VDSR: the Y channel of the bicubic upscale; MZSR's network: the upscaled
RGB image; MSRResNet: the LR image itself) and at which scales; ClassSR routes its sub-images and
MZSR adapts to each image (``AdaptingMethod.image_infer``). Images of any size run in tiles
(``srlab.tiling``): memory stays bounded and the result equals untiled inference.
Works from any thread (no signal handlers) and any working directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srlab.backends import on_backend
from srlab.card import NetworkCard
from srlab.data import (
    ALPHA_SUFFIXES,
    JPEG_FORMATS,
    PHOTO_SUFFIXES,
    load_image,
    read_image,
    saved_as_jpeg,
    to_uint8,
    write_image,
)
from srlab.degradation import Degradation, named_degradation
from srlab.device import autocast_dtype, resolve_device
from srlab.errors import UserError
from srlab.imresize import imresize
from srlab.loading import load
from srlab.method import Method, Output, Row, inference_model
from srlab.outputs import check_output_file
from srlab.tiling import self_ensemble, upscale_tiled

# The methods whose networks make images (KernelNet's estimate kernels).
UPSCALING_METHODS = ("supervised", "classsr", "mzsr_meta")


class Upscaler:
    """``upscaler(image, scale)`` -> SR as uint8 ``(H*scale, W*scale, 3)``."""

    def __init__(self, method: Method, model: torch.nn.Module, card: NetworkCard, device: torch.device,
                 tile: int = 256, margin: int = 24, precision: str = "fp32"):
        self.dtype = autocast_dtype(precision, device)
        self.method, self.model, self.card, self.device = method, model, card, device
        self.scales = list(card.scales)
        self.tile, self.margin, self.precision = tile, margin, precision

    @property
    def adapts(self) -> bool:
        """Whether the network learns from each image first (MZSR): it then takes a kernel."""
        return self.card.adapts

    def scale_for(self, scale: int | None) -> int:
        """``scale``, or the first the network was trained for; a scale it was not trained for is an error."""
        scale = self.scales[0] if scale is None else scale
        if scale not in self.scales:
            raise UserError(f"scale {scale}: this network was trained for x{self.scales} only")
        return scale

    def __call__(self, image, scale: int | None = None, ensemble: bool = False, on_tile=None,
                 kernel: str | Degradation | None = None, on_step=None) -> np.ndarray:
        """The SR image as uint8 ``(H*scale, W*scale, 3)``: ``run(...).image``."""
        return self.run(image, scale, ensemble, on_tile, kernel, on_step).image

    def run(self, image, scale: int | None = None, ensemble: bool = False, on_tile=None,
            kernel: str | Degradation | None = None, on_step=None, estimator: str = "photo",
            kernel_net: str | Path | None = None, jpeg: bool | None = None,
            max_share: float | None = None) -> Upscaled:
        """Super-resolve ``image`` (a path, a PIL image, a uint8 array or a float tensor) by ``scale``.

        ``kernel`` (MZSR only) is how the image was blurred. Not given (or ``"estimate"``): the photo
        path, the kernel read off the image by ``estimator`` and the best of the stage-1 network,
        MZSR adapted to that kernel or to bicubic downscaling (when it is a blur), and bicubic
        interpolation, chosen on the image itself (``srlab.mzsr.self_validation``; ``Upscaled.said``
        says which ran).
        ``"none"``: the meta-learned weights unadapted, MZSR(0). A name (``gd_2.0``, ``bicubic``), a
        ``.npy``/``.mat`` file or a ``Degradation``: MZSR adapts to it. ``on_step`` is called after
        each adaptation step, ``on_tile`` after each tile. ``jpeg``: whether the image was saved as
        JPEG (the photo path then runs at most half a network's output, the rest interpolation); None:
        a path or PIL image says so itself, an array is taken as not. ``max_share``: the photo path's
        largest share of a network's output (None: ``self_validation.max_blend``'s, by the photo)."""
        scale = self.scale_for(scale)
        if kernel is not None and not self.adapts:
            raise UserError(f"kernel {kernel!r}: only a network that adapts to each image (MZSR) takes a kernel")
        if max_share is not None:
            if not isinstance(max_share, (int, float)) or not 0 < max_share <= 1:
                raise UserError(f"max_share {max_share!r}: a number above 0 and at most 1")
            if not (self.adapts and (kernel is None or kernel == "estimate")):
                raise UserError("max_share: only MZSR's photo path blends a network with interpolation (an MZSR "
                                "checkpoint, kernel None or 'estimate')")
        lr = _as_uint8(image)
        said, estimate = "", None
        if not self.adapts:
            infer = self.method.image_infer(self.model, lr, scale)
        elif kernel is None or kernel == "estimate":
            estimate = self.method.estimate_kernel(lr, scale, estimator, kernel_net)
            jpeg = _saved_as_jpeg(image) if jpeg is None else jpeg
            infer, choice = self.method.photo_infer(self.model, lr, scale, estimate, on_step, jpeg, max_share)
            said = choice.describe()
        elif kernel == "none":
            infer, said = self.method.image_infer(self.model, lr, scale, None), "MZSR(0): not adapted, as asked"
        else:
            degradation = named_degradation(kernel) if isinstance(kernel, str) else kernel
            infer = self.method.image_infer(self.model, lr, scale, degradation, on_step)
        if self.dtype is not None:
            infer = autocast_output(infer, self.dtype, self.device.type)
        sr = upscale_tiled(self_ensemble(infer) if ensemble else infer, lr, scale, self.tile, self.margin,
                           self.device, on_tile)
        return Upscaled(sr, said, estimate)

    def estimate_kernel(self, image, scale: int | None = None, estimator: str = "photo", kernel_net=None):
        """MZSR only: the image's blur kernel read off it (``srlab.mzsr.estimate``: photo, edges, prior,
        kernelgan, or net with KernelNet weights ``kernel_net``), as a ``KernelEstimate``; its
        ``degradation()`` goes to ``run`` (None, no adaptation, when the estimate is unreliable)."""
        if not self.adapts:
            raise UserError("only a network that adapts to each image (MZSR) uses a kernel estimate")
        return self.method.estimate_kernel(_as_uint8(image), self.scale_for(scale), estimator, kernel_net)

    def upscale_file(self, src: str | Path, dst: str | Path, scale: int | None = None, ensemble: bool = False,
                     overwrite: bool = False, on_tile=None, kernel: str | Degradation | None = None,
                     quality: int | None = None, **run_options) -> Upscaled:
        """Read ``src``, write its SR to ``dst`` (lossless, or a JPEG at ``quality``; never ``src``,
        never over a file unless ``overwrite``); what ran (``run``'s result). What the file holds
        besides its colours is kept where ``dst``'s type can hold it: transparency (interpolated:
        no halos in it), greyscale, the ICC profile and EXIF."""
        check_output_file(dst, "output", inputs=[src], suffixes=PHOTO_SUFFIXES, overwrite=overwrite)
        image, extras = read_image(src)
        result = self.run(image, scale, ensemble, on_tile, kernel, **{"jpeg": extras.jpeg, **run_options})
        picture = result.image
        if extras.grey:  # the colour channels of a grey photo's SR are equal but for rounding
            picture = np.asarray(Image.fromarray(picture).convert("L"))[..., None]
        suffix = Path(dst).suffix.lower()
        if extras.alpha is not None and suffix in ALPHA_SUFFIXES:
            factor = result.image.shape[0] // extras.alpha.shape[0]
            alpha = to_uint8(imresize(torch.from_numpy(extras.alpha)[None, None].float() / 255, scale=factor))
            picture = np.concatenate([picture, alpha], axis=2)
        elif extras.alpha is not None:
            dropped = (f"its transparency is not in {Path(dst).name} (a {Path(dst).suffix} keeps none: "
                       f"{', '.join(ALPHA_SUFFIXES)} do)")
            result.said = "; ".join(filter(None, [result.said, dropped]))
        if not overwrite and Path(dst).exists():  # written meanwhile by another program: keep it
            raise UserError(f"{dst}: appeared while this image was being upscaled (another program?); kept it, "
                            f"and wrote nothing")
        write_image(picture, dst, quality, extras)
        return result


@dataclass
class Upscaled:
    """What ``Upscaler.run`` made: the SR image (uint8), and for MZSR's photo path what ran in
    words and the kernel estimate it started from."""

    image: np.ndarray
    said: str = ""
    estimate: object | None = None


def _saved_as_jpeg(image) -> bool:
    """Whether ``image`` (a path or a PIL image; anything else: no) was saved as JPEG."""
    if isinstance(image, (str, Path)):
        return saved_as_jpeg(image)  # the header: the pixels were decoded once already
    return isinstance(image, Image.Image) and image.format in JPEG_FORMATS


def autocast_output(infer, dtype: torch.dtype, device_type: str):
    """``infer`` under autocast to ``dtype``, its output back in fp32."""
    def run(*args):
        with torch.autocast(device_type, dtype=dtype):
            return infer(*args).float()

    return run


def load_upscaler(checkpoint: str | Path, device: str = "auto", tile: int = 256, margin: int = 24,
                  precision: str = "fp32", backend: str = "torch") -> Upscaler:
    """The network of ``checkpoint`` (any file ``srlab.loading.load`` reads), ready to upscale.
    ``precision``: ``fp32``, or ``bf16`` / ``fp16`` autocast on a CUDA GPU (``bf16`` also on a CPU
    with bf16 units: AVX512-BF16 or AMX). ``backend``: ``torch``, or ``onnxruntime`` / ``openvino``
    for networks that run by one forward pass (``srlab.backends``)."""
    method, network, card = load(checkpoint)
    if card.method not in UPSCALING_METHODS:
        raise UserError(f"{checkpoint}: a {card.method!r} network makes no images; upscale runs networks of "
                        f"{', '.join(UPSCALING_METHODS)}")
    device = resolve_device(device)
    autocast_dtype(precision, device)  # one line before a backend compiles anything
    network = on_backend(inference_model(network, device, channels_last=True), card.method, card.input.channels,
                         device, backend, precision)
    return Upscaler(method, network, card, device, tile, margin, precision)


def _as_uint8(image) -> np.ndarray:
    """A path, a PIL image, a uint8 array (H, W, 3) or a float tensor (1|, 3, H, W) in [0, 1] -> uint8 (H, W, 3)."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, torch.Tensor):
        if image.dim() not in (3, 4) or image.shape[-3] != 3 or (image.dim() == 4 and image.shape[0] != 1):
            raise UserError(f"expected an RGB image tensor (1|, 3, H, W) in [0, 1], got shape {tuple(image.shape)}")
        if not torch.isfinite(image).all():
            raise UserError("the image tensor holds NaN or infinity; expected values in [0, 1]")
        array = to_uint8(image.float())
    else:
        # a PIL image's pixels are read-only as an array view: copied, so that torch may take them
        array = np.array(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise UserError(f"expected an RGB image as uint8 (H, W, 3), got {array.dtype} {array.shape}")
    if 0 in array.shape:
        raise UserError(f"an empty image ({array.shape[1]}x{array.shape[0]} pixels)")
    return array


def evaluate_folder(upscale, hr_folder: str | Path, scales: list[int] = (2,), degradations: list[str] = ("bicubic",),
                    name: str | None = None, device: str = "auto") -> list:
    """PSNR_Y / SSIM_Y of ``upscale`` on a folder of HR images with the project's protocol (modcrop,
    LR by MATLAB bicubic or a named kernel rounded to 8 bits, Y channel, border crop = scale).

    ``upscale``: an ``Upscaler``, or any ``f(lr, scale)`` taking and returning a float tensor
    ``(1, 3, h, w)`` in [0, 1]. Returns ``srlab.evaluate.Record``s (``.psnr_y``, ``.images``, ...)."""
    from srlab.config import DatasetSpec, EvalConfig
    from srlab.evaluate import evaluate, load_datasets

    device = upscale.device if isinstance(upscale, Upscaler) else resolve_device(device)
    bad = [s for s in scales if not isinstance(s, int) or isinstance(s, bool) or s < 2]
    if bad or not scales:
        raise UserError(f"scales={list(scales)}: integers of 2 or more (super-resolution factors)")
    if isinstance(upscale, Upscaler):
        up = upscale
        for scale in scales:  # what up(img, scale) would refuse is not scored either
            up.scale_for(scale)
        row = Row(up.method.row_name, lambda lr, scale, degradation: up.method.infer(up.model, lr, scale, degradation))
    else:
        row = Row(getattr(upscale, "__name__", "function"), lambda lr, scale, degradation: Output(_checked_output(
            upscale(lr, scale), lr, scale)))
    folder = Path(hr_folder)
    data = load_datasets([DatasetSpec(name or folder.name, str(folder))])
    for dataset in data:
        dataset.check(list(scales))
    cfg = EvalConfig(datasets=[], scales=list(scales), degradations=list(degradations), visuals=0)
    with torch.no_grad():
        return evaluate(row, data, cfg, device)


def _checked_output(sr, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """What a user's function returned for ``lr``: a float tensor of the SR size, or one line saying what it was."""
    expected = (*lr.shape[:2], lr.shape[-2] * scale, lr.shape[-1] * scale)
    if not isinstance(sr, torch.Tensor):
        raise UserError(f"the function returned {type(sr).__name__}; expected a float tensor {expected} in [0, 1]")
    if tuple(sr.shape) != expected:
        raise UserError(f"the function returned shape {tuple(sr.shape)}; expected {expected}")
    return sr.float()


def train(config: str | Path, overrides: list[str] = (), out: str | Path | None = None, resume: str | None = None,
          overwrite: bool = False) -> list:
    """Train from a YAML config with ``key=value`` overrides (as ``srlab train``); returns the final
    validation records. Runs in any thread: stop signals are only caught in the main one."""
    from srlab.registry import load_method
    from srlab.runner import train as run

    cfg, method = load_method(config, list(overrides))
    return run(method, cfg, Path(out) if out else Path("runs") / cfg.name, resume, overwrite)
