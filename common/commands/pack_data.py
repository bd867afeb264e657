"""Pack training and test images as lossless WebP, for a machine that has only the repository.

    srlab pack-data [--out data_pack] [--sets train/T91 train/BSD200 benchmarks/Set5 benchmarks/Set14]
                    [--overwrite]

Reads ``$SR_DATA_ROOT/<set>`` (a benchmark's ``HR/`` folder) and writes the same layout under
``--out`` with every image as lossless WebP: about two thirds of the PNG bytes, the same pixels
(each file is decoded again and compared before the command moves on). Point the project at the
pack with ``SR_DATA_ROOT=data_pack``: every config and command then reads it as it reads the PNGs.
``data_pack/`` is git-ignored; nothing is overwritten without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from srlab.cli import main_guard
from srlab.data import data_root, dataset_folder, list_images, load_image, write_image
from srlab.errors import DataError, UserError
from srlab.outputs import check_output_dir, check_output_file, resolved

DEFAULT_SETS = ("train/T91", "train/BSD200", "benchmarks/Set5", "benchmarks/Set14")


def pack_one(source: Path, target: Path) -> int:
    """Write ``source`` as lossless WebP at ``target``; check the pixels; its size in bytes."""
    pixels = load_image(source)
    write_image(pixels, target)
    if not np.array_equal(load_image(target), pixels):
        raise DataError(f"{target}: the WebP file does not decode to the pixels of {source}")
    return target.stat().st_size


@main_guard(interrupted="the files written so far are complete; run again with --overwrite")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data_pack", help="the folder to write (a data root)")
    parser.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), metavar="KIND/NAME",
                        help="folders under $SR_DATA_ROOT: train/<name> or benchmarks/<name>")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in --out")
    args = parser.parse_args(argv)

    root, out = data_root(), Path(args.out)
    jobs = []
    for item in args.sets:
        kind, _, name = item.partition("/")
        if kind not in ("train", "benchmarks") or not name or "/" in name:
            raise UserError(f"--sets {item!r}: expected train/<name> or benchmarks/<name>")
        sources = list_images(dataset_folder(root, kind, name))
        jobs += [(source, dataset_folder(out, kind, name) / f"{source.stem}.webp") for source in sources]
    if resolved(out) == resolved(root):
        raise UserError(f"--out {out}: the data root it packs from; its .webp copies would sit beside "
                        f"the .png files and every set would count twice: write it somewhere else")
    check_output_dir(out)
    for source, target in jobs:  # every output checked before the first image is written
        check_output_file(target, "--out", inputs=[source], overwrite=args.overwrite)

    start = time.perf_counter()
    with ThreadPoolExecutor() as pool:  # Pillow encodes without holding the GIL
        sizes = list(pool.map(lambda job: pack_one(*job), jobs))
    source_bytes = sum(source.stat().st_size for source, _ in jobs)
    print(f"wrote {len(jobs)} images to {out}: {sum(sizes) / 1e6:.1f} MB ({sum(sizes) / source_bytes:.0%} of "
          f"{source_bytes / 1e6:.1f} MB), pixel-identical, in {time.perf_counter() - start:.0f} s. "
          f"Use it with SR_DATA_ROOT={out}")


if __name__ == "__main__":
    main()
