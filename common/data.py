"""Images, folders and datasets.

* ``load_image``: any image file -> RGB ``uint8`` array ``(H, W, 3)``, whatever its mode
  (L, LA, RGBA, P, I;16, I, F, ...), upright as its EXIF orientation says. A file that cannot be
  decoded, or whose meaning would be a guess (several frames, float values out of range), raises
  ``DataError`` naming it. ``check_image``: the same checks from the header only, for start-up.
* ``data_root``: ``$SR_DATA_ROOT`` or the repository's ``data/`` folder. Benchmarks live at
  ``<root>/benchmarks/<Name>/HR``, training images at ``<root>/train/<Name>``. A dataset folder
  may start with ``$SR_DATA_ROOT/`` (``expand_folder``).
* The embedded demo set: photographs bundled with scikit-image (no download), split into
  ``skimage_train`` and ``skimage_test``.
* ``PatchSampler``: random HR training patches. Batch ``i`` is a pure function of
  ``(seed, rank, i)``, so a resumed run sees exactly the batches an uninterrupted run would,
  whatever the number of data-loader workers.
* ``BenchmarkImages``: whole images for evaluation, with optional paired LR files.

Bad files while *training* are skipped with a warning (one bad photo should not kill a long
run); while *testing* they are errors (a benchmark with a missing image is not that benchmark).
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from srlab.errors import DataError
from srlab.outputs import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# What an SR image may be written as: lossless formats only (a JPEG would change the pixels measured).
WRITABLE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
# What srlab upscale may also write, asked to: a JPEG (lossy, at --quality), as photo tools do.
PHOTO_SUFFIXES = (*WRITABLE_SUFFIXES, ".jpg", ".jpeg")
ALPHA_SUFFIXES = (".png", ".tif", ".tiff", ".webp")  # those that keep transparency
METADATA_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")  # those that keep EXIF and ICC
REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT_VARIABLE = "$SR_DATA_ROOT"  # a dataset folder in a config may start with it (expand_folder)

# scikit-image's bundled photographs (no download needed), split so that no scene is in both.
SKIMAGE_TRAIN = (
    "astronaut.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
    "ihc.png", "brick.png", "grass.png", "gravel.png", "page.png",
)
SKIMAGE_TEST = ("chelsea.png", "camera.png", "coins.png", "moon.png")
EMBEDDED = {"skimage_train": SKIMAGE_TRAIN, "skimage_test": SKIMAGE_TEST}


def data_root() -> Path:
    return Path(os.environ.get("SR_DATA_ROOT") or REPO_ROOT / "data")


def expand_folder(folder: str) -> Path:
    """A folder as a config gives it: ``$SR_DATA_ROOT/...`` is under ``data_root()``, ``~`` is the
    home folder; anything else as it is."""
    if folder == DATA_ROOT_VARIABLE or folder.startswith((f"{DATA_ROOT_VARIABLE}/", f"{DATA_ROOT_VARIABLE}\\")):
        return data_root() / folder[len(DATA_ROOT_VARIABLE):].lstrip("/\\")
    return Path(folder).expanduser()


def dataset_folder(root: Path, kind: str, name: str) -> Path:
    """Where dataset ``name`` of ``kind`` (``"train"`` or ``"benchmarks"``) keeps its images under a
    data root: ``<root>/train/<name>``, ``<root>/benchmarks/<name>/HR``."""
    folder = root / kind / name
    return folder / "HR" if kind == "benchmarks" else folder


@contextmanager
def _open_image(path: Path):
    """``Image.open`` (reads the header only); any failure inside the block is a one-line ``DataError``."""
    try:
        with Image.open(path) as img:
            # Which frame of an animation or multi-page TIFF is "the image" would be a guess. An MPO
            # (phone/3-D camera JPEG) is a primary image plus previews or depth maps: frame 0 by spec.
            try:  # counting parses every frame's header; Pillow raises all sorts for a corrupt later one
                frames = getattr(img, "n_frames", 1)
            except Exception as exc:
                raise DataError(f"{path}: cannot read image (a frame after the first is corrupt: {exc})") from None
            if frames > 1 and img.format != "MPO":
                raise DataError(f"{path}: {frames} frames ({img.format}); only single images are allowed, "
                                f"save the frame to use as its own file")
            yield img
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).split("\n")[0] or type(exc).__name__
        raise DataError(f"{path}: cannot read image ({reason})") from None


JPEG_FORMATS = ("JPEG", "MPO")  # MPO: a phone's JPEG with previews


def saved_as_jpeg(path: str | Path) -> bool:
    """Whether the image file at ``path`` is a JPEG (its header only)."""
    with _open_image(Path(path)) as img:
        return img.format in JPEG_FORMATS


def check_image(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of the array ``load_image`` will return, without decoding pixels; the same
    ``DataError`` for a missing, non-image, cut or multi-frame file. For checking test images at start-up.
    """
    path = Path(path)
    with _open_image(path) as img:
        # The stored size (Pillow >= 11 reports a TIFF's already turned), turned as load_image will turn it.
        # EXIF is in the header, except a PNG's eXIf chunk after the pixels: reading that would decode them.
        size = (img.tag_v2[256], img.tag_v2[257]) if img.format == "TIFF" else img.size
        if (img.format != "PNG" or "exif" in img.info) and img.getexif().get(0x0112) in (5, 6, 7, 8):
            size = size[::-1]
        img.verify()  # PNG: chunk checksums to the end, which catches a cut download; no decoding
        return size


def _upright(path: Path) -> Image.Image:
    """The decoded image, turned as its EXIF orientation says."""
    with _open_image(path) as img:
        img.load()
        # Cameras store "rotate me" in EXIF instead of turning the pixels; every viewer honours it.
        # Pillow turns a TIFF itself while loading (and before 10.1 exif_transpose would turn it again).
        if img.format == "TIFF":
            return img
        upright = ImageOps.exif_transpose(img)
        upright.format = img.format  # the file's type, which a turned copy forgets
        return upright


@dataclass(frozen=True)
class ImageExtras:
    """What an image file holds besides the RGB pixels ``load_image`` reads: its transparency
    (uint8 ``(H, W)``, upright; None when opaque everywhere), whether it is greyscale, and its ICC
    colour profile and EXIF block (orientation reset: the pixels are already upright) to carry over,
    and whether it was saved as JPEG (its pixels then hold 8x8 blocks a network may sharpen)."""

    alpha: np.ndarray | None = None
    grey: bool = False
    icc_profile: bytes | None = None
    exif: bytes | None = None
    jpeg: bool = False


def image_extras(path: str | Path) -> ImageExtras:
    return _extras(_upright(Path(path)))


def read_image(path: str | Path) -> tuple[np.ndarray, ImageExtras]:
    """``load_image`` and ``image_extras`` of ``path`` from one decoding."""
    img = _upright(Path(path))
    return _rgb(img, Path(path)), _extras(img)


# Greyscale modes deeper than 8 bits: rescaled to 8 bits by their range.
_DEEP_GREY_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def _extras(img: Image.Image) -> ImageExtras:
    alpha = None
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        alpha = np.asarray(img.convert("RGBA"), dtype=np.uint8)[..., 3].copy()
        alpha = None if alpha.min() == 255 else alpha
    exif = img.getexif()
    if 0x0112 in exif:
        exif[0x0112] = 1
    return ImageExtras(alpha, img.mode in ("L", "LA", "La", "1", *_DEEP_GREY_MODES),
                       img.info.get("icc_profile") or None, exif.tobytes() if len(exif) else None,
                       img.format in JPEG_FORMATS)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB uint8 ``(H, W, 3)``; ``DataError`` naming the file if it cannot be read."""
    return _rgb(_upright(Path(path)), Path(path))


def _rgb(img: Image.Image, path: Path) -> np.ndarray:
    if img.mode in _DEEP_GREY_MODES:
        # 16-bit / 32-bit greyscale: rescale to 8 bits rather than clipping.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0  # 16-bit files use the full range
        if img.mode in ("I", "F"):  # 32-bit integers or floats: the range of the values says what they mean
            peaks = (255.0, 65535.0) if img.mode == "I" else (1.0, 255.0)
            lo, hi = arr.min(), arr.max()
            peak = next((p for p in peaks if lo >= 0 and hi <= p), None)  # NaN compares False: refused
            if img.mode == "F" and peak == 255.0 and hi < 2:  # [0, 1] overshooting, or a black 8-bit image?
                raise DataError(f"{path}: float image with values in [{lo:.10g}, {hi:.10g}], ambiguous; "
                                f"allowed: [0, 1] or [0, 255] with a maximum of at least 2")
            if peak is None:
                found = f"values in [{lo:.10g}, {hi:.10g}]" if np.isfinite([lo, hi]).all() else "NaN or inf values"
                kind = "32-bit integer" if img.mode == "I" else "float"
                raise DataError(f"{path}: {kind} image with {found}; allowed: [0, {peaks[0]:g}] or "
                                f"[0, {peaks[1]:g}]")
        arr = np.round(arr / peak * 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    rgb = img.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8).copy()


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def embedded_files(name: str) -> list[Path]:
    import skimage.data

    base = Path(skimage.data.data_dir)
    return [base / f for f in EMBEDDED[name]]


def resolve_files(name: str, folder: str | None, kind: str) -> list[Path]:
    """Files of a named dataset: an embedded set, an explicit folder, or ``<root>/<kind>/<name>``.

    ``kind`` is ``"train"`` or ``"benchmarks"`` (benchmarks keep their HR images in ``HR/``).
    """
    if folder is None and name in EMBEDDED:
        return embedded_files(name)
    if folder is None:
        folder_path = dataset_folder(data_root(), kind, name)
    else:
        folder_path = expand_folder(folder)
        if not folder_path.is_absolute() and not folder_path.exists():  # e.g. --dataset Set5=benchmarks/Set5/HR
            folder_path = data_root() / folder_path
    return list_images(folder_path)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> float ``(1, 3, H, W)`` in [0, 1]. A read-only array (``np.asarray``
    of a PIL image) is copied first: torch warns on a view of one."""
    return torch.from_numpy(np.require(img, requirements=("C", "W"))).permute(2, 0, 1)[None].float() / 255


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float ``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1] -> uint8 ``(H, W, 3)`` (rounded)."""
    x = x.detach().reshape(-1, *x.shape[-2:])
    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def save_image(x: torch.Tensor, path: str | Path) -> None:
    """Write a float image (in [0, 1]) rounded to 8 bits; NaN/inf is refused, never saved as black."""
    if not torch.isfinite(x).all():
        raise DataError(f"refusing to write {path}: the image holds NaN or infinity")
    write_image(to_uint8(x), path)


def kernel_files(out: str | Path) -> tuple[Path, Path]:
    """Where an estimated kernel of the image written to ``out`` goes: ``<out>.kernel.npy`` and a
    picture ``<out>.kernel.png`` beside it."""
    out = Path(out)
    return out.with_name(out.stem + ".kernel.npy"), out.with_name(out.stem + ".kernel.png")


def save_kernel_array(kernel: torch.Tensor, path: Path) -> None:
    """A kernel as a float64 .npy array, written atomically (its folder made if missing)."""
    array = kernel.detach().double().cpu().numpy()
    atomic_write(path, lambda f: np.save(f, array))


def save_kernel(kernel: torch.Tensor, npy: Path, png: Path, zoom: int = 8) -> None:
    """The kernel as a .npy array (``save_kernel_array``), and as a grey picture scaled to its
    peak, each tap a ``zoom x zoom`` square."""
    save_kernel_array(kernel, npy)
    array = kernel.detach().double().cpu().numpy()
    picture = (array / array.max()).repeat(zoom, 0).repeat(zoom, 1)
    save_image(torch.from_numpy(picture).float().expand(1, 3, *picture.shape), png)


def write_image(image: np.ndarray, path: str | Path, quality: int | None = None,
                extras: ImageExtras | None = None) -> None:
    """Write a uint8 image atomically (never half a file): ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA,
    ``(H, W)`` grey or ``(H, W, 2)`` grey + alpha. Lossless, except a JPEG (``quality``, default 95)
    and a WebP given a ``quality``. ``extras``: the ICC profile and EXIF to carry, where the type keeps them."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PHOTO_SUFFIXES:
        raise DataError(f"{path}: unknown image type {path.suffix!r}; allowed: {', '.join(PHOTO_SUFFIXES)}")
    fmt = Image.registered_extensions()[suffix]
    if fmt == "JPEG":
        options = {"quality": quality or 95}
    elif fmt == "WEBP":  # Pillow's WebP default is lossy
        options = {"quality": quality} if quality else {"lossless": True}
    else:
        options = {}
    if extras is not None and suffix in METADATA_SUFFIXES:
        options.update({k: v for k, v in (("icc_profile", extras.icc_profile), ("exif", extras.exif)) if v})
    picture = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    atomic_write(path, lambda f: picture.save(f, format=fmt, **options))


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of ``scale`` (the benchmark convention)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


# --------------------------------------------------------------------------- training patches
class PatchSampler(torch.utils.data.Dataset):
    """Random HR patches from a list of images, loaded once into memory.

    Item ``i`` is this process's share of the batch of iteration ``i``: ``uint8`` patches
    ``(batch_size / world_size, 3, P, P)``. The image choice, crop positions and flips/rotations
    of the whole batch come from a generator seeded with ``(seed, i)``, and process ``rank`` cuts
    its consecutive share of them: a run sees the same patches on 1 or K processes (so K GPUs
    train the weights one would, and a run may resume on another number of GPUs). Use it with
    ``DataLoader(sampler, batch_size=None)``.

    ``regions``: optional rows ``(file index, top, left, size)``; patches are then cut inside
    these squares only, each equally likely (ClassSR trains each branch on its class's sub-images).
    """

    def __init__(
        self,
        files: list[Path],
        patch_size: int,
        batch_size: int,
        seed: int = 0,
        augment: bool = True,
        total_iters: int = 10**9,
        regions: np.ndarray | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} does not split into {world_size} equal shares")
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.seed = seed
        self.share = slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)
        self.augment = augment
        self.total_iters = total_iters
        self.images: list[np.ndarray] = []
        loaded_index: dict[int, int] = {}  # file index -> index in self.images
        for file_index, path in enumerate(files):
            try:
                img = load_image(path)
            except DataError as exc:
                warnings.warn(f"skipping training image: {exc}", stacklevel=2)
                continue
            if min(img.shape[:2]) < patch_size:
                warnings.warn(
                    f"skipping training image {path}: {img.shape[1]}x{img.shape[0]} is smaller "
                    f"than the patch size {patch_size}",
                    stacklevel=2,
                )
                continue
            loaded_index[file_index] = len(self.images)
            self.images.append(img)
        if not self.images:
            raise DataError(
                f"no usable training images (patch size {patch_size}) among {len(files)} files"
                + (f", e.g. {files[0].parent}" if files else "")
            )
        # Sample images in proportion to their area, so every pixel is equally likely.
        self.heights = np.array([im.shape[0] for im in self.images], dtype=np.int64)
        self.widths = np.array([im.shape[1] for im in self.images], dtype=np.int64)
        areas = (self.heights * self.widths).astype(np.float64)
        self.probs = areas / areas.sum()
        self.regions = None
        if regions is not None:
            kept = [(loaded_index[int(f)], int(y), int(x), int(s)) for f, y, x, s in regions
                    if int(f) in loaded_index and s >= patch_size]
            if not kept:
                raise DataError(f"none of the {len(regions)} training regions lies in a usable image "
                                f"and is at least {patch_size} px")
            self.regions = np.array(kept, dtype=np.int64)

    def __len__(self) -> int:
        return self.total_iters

    def __getitem__(self, iteration: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, iteration])
        n, p = self.batch_size, self.patch_size
        if self.regions is None:  # anywhere in the image
            image = rng.choice(len(self.images), size=n, p=self.probs)
            top = left = np.zeros(n, dtype=np.int64)
            height, width = self.heights[image], self.widths[image]
        else:
            image, top, left, height = self.regions[rng.integers(0, len(self.regions), size=n)].T
            width = height
        y = top + rng.integers(0, height - p + 1)
        x = left + rng.integers(0, width - p + 1)
        flips = rng.random((n, 3)) < 0.5  # drawn even without augment: the same crops either way
        share = range(n)[self.share]
        out = np.empty((len(share), p, p, 3), dtype=np.uint8)
        for j, b in enumerate(share):  # per-sample crops run in loader workers
            patch = self.images[image[b]][y[b] : y[b] + p, x[b] : x[b] + p]
            if self.augment:
                flip_lr, flip_ud, transpose = flips[b]
                if flip_lr:
                    patch = patch[:, ::-1]
                if flip_ud:
                    patch = patch[::-1]
                if transpose:
                    patch = patch.transpose(1, 0, 2)
            out[j] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- test images
@dataclass
class BenchmarkImage:
    name: str
    hr: np.ndarray  # uint8 (H, W, 3), not yet modcropped
    lr_path: Path | None = None  # official LR file, if the dataset has one for this scale


class BenchmarkImages:
    """Whole HR images of one benchmark (optionally with a folder of official LR images).

    ``lr_folder`` may contain ``{scale}``; an LR file matches its HR file by stem, optionally
    with an ``x<scale>`` suffix (``baby.png`` <-> ``babyx2.png`` or ``baby_x2.png``). ``crop``: each
    image is its centre ``crop x crop`` pixels (0: whole images; not with official LR files).
    """

    def __init__(self, name: str, files: list[Path], lr_folder: str | None = None, max_images: int = 0,
                 crop: int = 0):
        self.name = name
        self.files = files[:max_images] if max_images else files
        self.lr_folder = lr_folder
        self.crop = crop
        self._cache: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def lr_path(self, hr_path: Path, scale: int) -> Path | None:
        if self.lr_folder is None:
            return None
        folder = expand_folder(self.lr_folder.replace("{scale}", str(scale)))
        candidates = [hr_path.stem, f"{hr_path.stem}x{scale}", f"{hr_path.stem}_x{scale}"]
        for stem in candidates:
            for suffix in IMAGE_SUFFIXES:
                if (folder / f"{stem}{suffix}").exists():
                    return folder / f"{stem}{suffix}"
        raise DataError(f"{folder}: no LR image for {hr_path.name} (looked for {', '.join(candidates)})")

    def check(self, scales: list[int], decode: bool = False) -> None:
        """At start-up, not at first use: every image opens (``decode``: is decoded and kept, which
        also catches a file cut short), and every official LR file opens and has the HR size / scale."""
        for path in self.files:
            if decode:
                height, width = self._hr(path).shape[:2]
            else:
                width, height = check_image(path)
            for scale in scales:
                lr = self.lr_path(path, scale)
                if lr is None:
                    continue
                lr_width, lr_height = check_image(lr)
                if (lr_width, lr_height) != (width // scale, height // scale):
                    raise DataError(f"{lr}: {lr_width}x{lr_height} is not the size of {path.name} "
                                    f"({width}x{height}) / {scale}")

    def _hr(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            self._cache[path] = load_image(path)
        return self._cache[path]

    def images(self, scale: int):
        for path in self.files:
            hr = self._hr(path)
            if self.crop:
                top, left = max(0, (hr.shape[0] - self.crop) // 2), max(0, (hr.shape[1] - self.crop) // 2)
                hr = hr[top : top + self.crop, left : left + self.crop]
            yield BenchmarkImage(path.stem, hr, self.lr_path(path, scale))
