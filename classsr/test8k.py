"""ClassSR's large test sets, made from DIV8K images you downloaded yourself.

    python scripts/prepare_test8k.py --div8k <folder with DIV8K's 1201.png ... 1500.png> \
        --out $SR_DATA_ROOT/benchmarks [--sets Test2K Test4K Test8K] [--overwrite]

ClassSR (Kong et al., CVPR 2021) tests on three sets of 100 images each from DIV8K (Gu et al.,
AIM 2019 extreme SR challenge), images 1201-1500: Test2K = 1201-1300 downscaled 4x, Test4K =
1301-1400 downscaled 2x, Test8K = 1401-1500 as they are, each downscaling by MATLAB bicubic as in
the official preparation (here ``srlab.imresize``). Each set is written as
``<out>/<set>/HR/<n>.png``, the benchmark layout, so ``test.py --dataset Test8K=<out>/Test8K/HR``
evaluates on it; the LR images are made at test time by the same MATLAB bicubic, x4 as the paper
tests. DIV8K is not downloaded here (no code of this project fetches data): get it from the AIM
2019 challenge's page and give its folder as ``--div8k``.

Every input image is checked (present, readable size) before anything is written, and an existing
set folder is replaced only with ``--overwrite``. Images are written atomically.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from srlab.cli import main_guard
from srlab.data import load_image, to_tensor, to_uint8, write_image
from srlab.errors import UserError
from srlab.imresize import imresize
from srlab.outputs import check_output_dir

# set name -> (first and last DIV8K index, downscaling factor)
SETS = {"Test2K": (1201, 1300, 4), "Test4K": (1301, 1400, 2), "Test8K": (1401, 1500, 1)}


def source_files(div8k: Path, name: str) -> list[Path]:
    first, last, _ = SETS[name]
    files = [div8k / f"{i:04d}.png" for i in range(first, last + 1)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise UserError(f"--div8k {div8k}: {name} needs DIV8K images {first}-{last}; missing {len(missing)}, "
                        f"e.g. {', '.join(missing[:3])}")
    return files


def downscale(image, factor: int):
    """``image`` (H, W, 3) uint8 cropped to a multiple of ``factor`` and MATLAB-bicubic downscaled by it."""
    if factor == 1:
        return image
    h, w = image.shape[0] - image.shape[0] % factor, image.shape[1] - image.shape[1] % factor
    with torch.no_grad():
        return to_uint8(imresize(to_tensor(image[:h, :w]), scale=1 / factor))


@main_guard(interrupted="the set being written is incomplete; run again with --overwrite")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--div8k", required=True, help="folder with DIV8K's 1201.png ... 1500.png")
    parser.add_argument("--out", required=True, help="benchmarks folder: <out>/<set>/HR/*.png are written")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--overwrite", action="store_true", help="replace existing set folders")
    args = parser.parse_args(argv)
    div8k, out = Path(args.div8k), check_output_dir(args.out)
    if not div8k.is_dir():
        raise UserError(f"--div8k {div8k}: not a folder")
    plan = {name: source_files(div8k, name) for name in args.sets}
    for name in plan:
        target = out / name / "HR"
        if target.exists() and any(target.iterdir()) and not args.overwrite:
            raise UserError(f"--out {out}: {target} exists; pass --overwrite to replace it")
    for name, files in plan.items():
        factor = SETS[name][2]
        target = out / name / "HR"
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            write_image(downscale(load_image(path), factor), target / path.name)
        print(f"{name}: {len(files)} images from DIV8K {SETS[name][0]}-{SETS[name][1]}, "
              f"{'downscaled x' + str(factor) if factor > 1 else 'as they are'} -> {target}")


if __name__ == "__main__":
    main()
