"""Benchmark evaluation: HR -> modcrop -> LR -> method.infer -> quantise -> Y-channel metrics.

``evaluate`` returns one ``Record`` per (dataset, scale, degradation) with per-image values and
the bicubic baseline on the same LR images, so every table shows what the method adds.
During training, ``Validator`` runs it on the validation sets (decoded once) and writes the scores,
an LR | SR | HR example (``example_grid``) and the method's pictures to TensorBoard.
LR images are made from the modcropped HR with the named degradation and rounded to 8 bits,
as the published test sets were; a dataset with official LR files uses those instead.

Blind benchmarks (``blind_mzsr``, ``blind_div2krk``: each image its own kernel) hand the method a
degradation that hides the kernel; only a row marked ``sees_true_kernel`` (MZSR(n) with the true
kernel) gets the image's own. A method that estimates kernels returns its estimate in its
extras as ``"kernel"``: the evaluator scores it against the truth (``kernel_error``) and saves both.
"""
from __future__ import annotations

import itertools
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

import torch

from srlab.checkpoint import save_json
from srlab.config import DatasetSpec, EvalConfig
from srlab.data import (
    BenchmarkImage,
    BenchmarkImages,
    load_image,
    modcrop,
    resolve_files,
    save_image,
    save_kernel_array,
    to_tensor,
)
from srlab.degradation import Degradation, expand_suites, kernel_error, named_degradation
from srlab.errors import DataError
from srlab.imresize import imresize
from srlab.method import Method, Row, inference_model
from srlab.metrics import mean, psnr_of_y, psnr_rgb, quantize, ssim_of_y, y_channel


class NonFiniteOutput(DataError):
    """A method gave NaN or infinity: no number is computed from it."""


@dataclass
class Record:
    dataset: str
    scale: int
    degradation: str
    method: str
    psnr_y: float
    ssim_y: float
    n_images: int
    seconds: float  # mean wall-clock seconds of inference per image
    bicubic_psnr_y: float
    bicubic_ssim_y: float
    psnr_rgb: float | None = None
    # Method-specific means (ClassSR: GFLOPs, sub-images per class).
    extras: dict[str, float] = field(default_factory=dict)
    images: list[dict] = field(default_factory=list)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_datasets(specs: list[DatasetSpec], max_images: int = 0) -> list[BenchmarkImages]:
    return [BenchmarkImages(s.name, resolve_files(s.name, s.hr, "benchmarks"), s.lr, max_images) for s in specs]


def lr_image(img: BenchmarkImage, hr: torch.Tensor, scale: int, deg_name: str,
              degradation: Degradation) -> torch.Tensor:
    """The test input: the dataset's official LR file where it has one (those are bicubic),
    else ``hr`` degraded and quantised to 8 bits."""
    if img.lr_path is not None and deg_name == "bicubic":
        lr = to_tensor(load_image(img.lr_path)).to(hr.device)
        if tuple(lr.shape[-2:]) != (hr.shape[-2] // scale, hr.shape[-1] // scale):
            raise DataError(f"{img.lr_path}: LR size {tuple(lr.shape[-2:])} does not match "
                            f"HR {tuple(hr.shape[-2:])} / {scale}")
        return lr
    with torch.no_grad():
        return quantize(degradation.apply(hr, scale))


def collect_visuals(visuals: Callable[[torch.Tensor, int], dict[str, torch.Tensor]],
                    datasets: list[BenchmarkImages], cfg: EvalConfig, device: torch.device,
                    ) -> list[tuple[str, torch.Tensor]]:
    """``visuals(lr, scale)`` (``Method.visuals``) of the first ``cfg.visuals`` images of every
    dataset, at the first scale and degradation: ``[("<name>/<dataset>/<image>", (3, H, W)), ...]``
    for TensorBoard."""
    scale, deg_name = cfg.scales[0], cfg.degradations[0]
    degradation = named_degradation(deg_name)
    out = []
    for data in datasets:
        for img in itertools.islice(data.images(scale), cfg.visuals):
            hr = to_tensor(modcrop(img.hr, scale)).to(device)
            true = degradation.for_image(f"{data.name}/{img.name}", scale)
            pictures = visuals(lr_image(img, hr, scale, deg_name, true), scale)
            if not pictures:  # a method that draws nothing (the default): stop after one image
                return out
            for name, picture in pictures.items():
                out.append((f"{name}/{data.name}/{img.name}", picture.detach().float().cpu()))
    return out


def example_grid(method: Method, model, data: BenchmarkImages, scale: int, degradation_name: str,
                 device: torch.device, size: int = 192) -> torch.Tensor:
    """LR (nearest-upscaled) | SR | HR of the centre crop of the first image of ``data``."""
    img = next(iter(data.images(scale)))
    hr = to_tensor(modcrop(img.hr, scale)).to(device)
    degradation = named_degradation(degradation_name)  # a blind benchmark's stays hidden from the method
    lr = lr_image(img, hr, scale, degradation_name, degradation.for_image(f"{data.name}/{img.name}", scale))
    sr = quantize(method.infer(model, lr, scale, degradation).image.float())
    lr_up = torch.nn.functional.interpolate(lr, scale_factor=scale, mode="nearest")
    h, w = hr.shape[-2:]
    c = min(size, h, w) // scale * scale
    top, left = (h - c) // 2 // scale * scale, (w - c) // 2 // scale * scale
    crops = [t[0, :, top : top + c, left : left + c] for t in (lr_up, sr, hr)]
    return torch.cat(crops, dim=-1).cpu()


def _scores(sr: torch.Tensor, hr: torch.Tensor, bicubic: torch.Tensor, scale: int) -> dict[str, float]:
    """PSNR_Y / SSIM_Y of ``sr`` and of ``bicubic`` (the quantised bicubic upscale of the same LR)
    against ``hr``. Each image's Y channel is computed once; for the bicubic row, ``sr`` is
    ``bicubic`` and its scores are not computed twice."""
    hr_y = y_channel(hr)
    bicubic_y = y_channel(bicubic)
    bicubic_psnr, bicubic_ssim = psnr_of_y(bicubic_y, hr_y, scale).item(), ssim_of_y(bicubic_y, hr_y, scale).item()
    if sr is bicubic:
        sr_psnr, sr_ssim = bicubic_psnr, bicubic_ssim
    else:
        sr_y = y_channel(sr)
        sr_psnr, sr_ssim = psnr_of_y(sr_y, hr_y, scale).item(), ssim_of_y(sr_y, hr_y, scale).item()
    return {"psnr_y": sr_psnr, "ssim_y": sr_ssim, "bicubic_psnr_y": bicubic_psnr, "bicubic_ssim_y": bicubic_ssim}


def evaluate(
    row: Row,
    datasets: list[BenchmarkImages],
    cfg: EvalConfig,
    device: torch.device,
    save_dir: Path | None = None,
    kernel_dir: Path | None = None,
) -> list[Record]:
    """Run ``row.infer(lr, scale, degradation)`` on every image of every dataset, scale and
    degradation; the records are named ``row.name``.

    The ``Output``'s extras are reported per image and their means go to ``Record.extras`` and the
    table; ``"kernel"`` among them is an estimated kernel (see the module docstring).
    ``kernel_dir``: where blind benchmarks' true kernels and the estimates go
    (``<dataset>/x<scale>_<degradation>/<image>[.<method>].npy``).

    Gradients are the method's business (MZSR adapts at test time): ``infer`` should disable
    them itself when it does not need them.
    """
    method_name = row.name
    records = []
    for data in datasets:
        for scale in cfg.scales:
            for deg_name in expand_suites(cfg.degradations):
                degradation = named_degradation(deg_name)
                per_image, extra_keys = [], {}
                for img in data.images(scale):
                    if min(img.hr.shape[:2]) < 2 * scale:
                        raise DataError(f"{data.name}/{img.name}: {img.hr.shape[1]}x{img.hr.shape[0]} is too small "
                                        f"for scale {scale}")
                    hr = to_tensor(modcrop(img.hr, scale)).to(device)
                    true = degradation.for_image(f"{data.name}/{img.name}", scale)
                    lr = lr_image(img, hr, scale, deg_name, true)
                    given = true if row.sees_true_kernel else degradation
                    _sync(device)
                    start = time.perf_counter()
                    try:
                        output = row.infer(lr, scale, given)
                        sr, extras = output.image, dict(output.extras)
                    except DataError as exc:  # e.g. an image too small for the method
                        raise DataError(f"{data.name}/{img.name} at x{scale}: {exc}") from None
                    _sync(device)
                    seconds = time.perf_counter() - start
                    if sr.shape != hr.shape:
                        raise RuntimeError(f"{method_name} returned {tuple(sr.shape)} for HR {tuple(hr.shape)}")
                    if not torch.isfinite(torch.stack(sr.aminmax())).all():  # NaN never becomes a number in a table
                        raise NonFiniteOutput(f"{method_name} gave NaN or infinity on {data.name}/{img.name} at "
                                              f"x{scale} ({deg_name}): diverged weights or adaptation; no results "
                                              f"written")
                    sr = quantize(sr.detach().float())
                    try:
                        # The bicubic row's SR image is the baseline's: not made twice.
                        bicubic = sr if row.is_bicubic else quantize(imresize(lr, scale=scale))
                        values = {"name": img.name, **_scores(sr, hr, bicubic, scale), "seconds": seconds}
                    except ValueError as exc:  # e.g. an image too small for the border crop + SSIM window
                        raise DataError(f"{data.name}/{img.name} at x{scale}: {exc}") from None
                    if cfg.rgb_psnr:
                        values["psnr_rgb"] = psnr_rgb(sr, hr, scale).item()
                    estimate = extras.pop("kernel", None)
                    where = kernel_dir / data.name / f"x{scale}_{deg_name}" if kernel_dir else None
                    if where is not None and degradation.blind:
                        save_kernel_array(true.kernel, where / f"{img.name}.npy")
                    if estimate is not None and true.kernel is not None:
                        extras.update(kernel_error(estimate, true.kernel))
                    if estimate is not None and where is not None:
                        file_tag = re.sub(r"[^A-Za-z0-9_-]+", "_", method_name)
                        save_kernel_array(estimate, where / f"{img.name}.{file_tag}.npy")
                    values.update(extras)
                    extra_keys.update(dict.fromkeys(extras))
                    per_image.append(values)
                    if save_dir is not None:
                        save_image(sr, save_dir / data.name / f"x{scale}_{deg_name}" / f"{img.name}.png")
                col = lambda k: mean([v[k] for v in per_image])  # noqa: E731
                records.append(Record(
                    dataset=data.name, scale=scale, degradation=deg_name, method=method_name,
                    psnr_y=col("psnr_y"), ssim_y=col("ssim_y"), n_images=len(per_image),
                    seconds=col("seconds"), bicubic_psnr_y=col("bicubic_psnr_y"),
                    bicubic_ssim_y=col("bicubic_ssim_y"),
                    psnr_rgb=col("psnr_rgb") if cfg.rgb_psnr else None, images=per_image,
                    extras={k: mean([v[k] for v in per_image if k in v]) for k in extra_keys},
                ))
    return records


class Validator:
    """Validation during training, on the main process: ``load()`` decodes the validation sets once
    (before the run starts, so a bad image stops it before anything is written); each call evaluates
    a model on them, logs the table and writes the scores, an LR | SR | HR example and the method's
    pictures to TensorBoard. A model that gives NaN is a logged skip, not the end of the training."""

    def __init__(self, method: Method, cfg: EvalConfig, device: torch.device,
                 autocast: Callable[[], ContextManager]):
        self.method, self.cfg, self.device, self.autocast = method, cfg, device, autocast
        self.datasets: list[BenchmarkImages] = []

    def load(self) -> None:
        self.datasets = load_datasets(self.cfg.datasets, self.cfg.max_images)
        for data in self.datasets:
            data.check(self.cfg.scales, decode=True)

    def __call__(self, model: torch.nn.Module, iteration: int, writer, log: Callable[[str], None]) -> list[Record]:
        """The records of ``model`` at ``iteration`` (none if it gave NaN); ``writer``: a TensorBoard
        ``SummaryWriter``, ``log``: where the table goes."""
        method, cfg, device = self.method, self.cfg, self.device
        net = inference_model(model, device, cfg.channels_last)
        try:
            with self.autocast():
                row = Row(method.row_name, lambda lr, s, d: method.infer(net, lr, s, d))
                records = evaluate(row, self.datasets, cfg, device)
        except NonFiniteOutput as exc:  # one diverged validation must not end the training
            log(f"[{iteration}] validation skipped: {exc}")
            return []
        for r in records:
            tag = f"{r.dataset}_x{r.scale}_{r.degradation}"
            writer.add_scalar(f"val/{tag}/psnr_y", r.psnr_y, iteration)
            writer.add_scalar(f"val/{tag}/ssim_y", r.ssim_y, iteration)
        if self.datasets:
            with self.autocast():
                grid = example_grid(method, net, self.datasets[0], cfg.scales[0], cfg.degradations[0], device)
                pictures = collect_visuals(lambda lr, s: method.visuals(net, lr, s), self.datasets, cfg, device)
            writer.add_image("val/lr_sr_hr", grid, iteration)
            for tag, picture in pictures:
                writer.add_image(f"val/{tag}", picture, iteration)
        log(f"[{iteration}] validation\n{format_table(records)}")
        return records


def format_table(records: list[Record]) -> str:
    rgb = any(r.psnr_rgb is not None for r in records)
    head = ["dataset", "scale", "degradation", "method", "PSNR_Y", "SSIM_Y", "bicubic PSNR_Y/SSIM_Y", "gain dB"]
    if rgb:
        head.append("PSNR_RGB")
    head += ["images", "s/image"]
    extra_keys = list(dict.fromkeys(k for r in records for k in r.extras))
    rows = []
    for r in records:
        row = [r.dataset, f"x{r.scale}", r.degradation, r.method, f"{r.psnr_y:.2f}", f"{r.ssim_y:.4f}",
               f"{r.bicubic_psnr_y:.2f} / {r.bicubic_ssim_y:.4f}", f"{r.psnr_y - r.bicubic_psnr_y:+.2f}"]
        if rgb:
            row.append("-" if r.psnr_rgb is None else f"{r.psnr_rgb:.2f}")
        row += [str(r.n_images), f"{r.seconds:.3f}"]
        row += ["-" if k not in r.extras else f"{r.extras[k]:.2f}" for k in extra_keys]
        rows.append(row)
    return _markdown_table(head + extra_keys, rows)


def _markdown_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *map(line, rows)])


def format_comparison(records: list[Record]) -> str:
    """Methods side by side, like MZSR's Table 2: one line per (dataset, scale, degradation),
    bicubic first, then every method's PSNR_Y/SSIM_Y and seconds per image."""
    methods = list(dict.fromkeys(r.method for r in records))
    by_key: dict[tuple, dict[str, Record]] = {}
    for r in records:
        by_key.setdefault((r.dataset, r.scale, r.degradation), {})[r.method] = r
    head = ["dataset", "scale", "degradation", "Bicubic", *methods]
    rows = []
    for (dataset, scale, degradation), row in by_key.items():
        first = next(iter(row.values()))
        cells = [dataset, f"x{scale}", degradation, f"{first.bicubic_psnr_y:.2f}/{first.bicubic_ssim_y:.4f}"]
        for m in methods:
            r = row.get(m)
            cells.append("-" if r is None else f"{r.psnr_y:.2f}/{r.ssim_y:.4f} ({r.seconds:.2f}s)")
        rows.append(cells)
    return _markdown_table(head, rows)


def write_results(records: list[Record], path: Path, header: dict | None = None) -> None:
    """``results.json``: ``{"header": where the numbers came from (srlab.provenance), "records": [...]}``."""
    save_json({"header": header or {}, "records": [asdict(r) for r in records]}, path, indent=1)
