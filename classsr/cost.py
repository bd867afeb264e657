"""What ClassSR costs, over a whole test set, against what a user would run instead.

``scripts/test.py`` gives every ClassSR row (and the "-O" rows) per-image GFLOPs and, for routed
rows, the number of sub-images per class. Here they are summed over each set, so that a set's
FLOPs ratio and class shares are weighted by sub-image count (as the original code counts them),
not a mean of per-image percentages:

* FLOPs and time against the "-O" network on the **whole image** (what a user would otherwise run)
  and FLOPs against it on **the same sub-images** (the paper's comparison: what routing saves
  once the image is tiled);
* the PSNR-vs-FLOPs curve of the learned Class-Module over ``options.route_biases``, beside the
  edge router and the two "-O" points (``plot_curves``: matplotlib, optional).
"""
from __future__ import annotations

from pathlib import Path

from srlab.evaluate import Record


def _kind(method: str) -> str:
    if method.startswith("ClassSR"):
        return "ClassSR"
    if method.startswith("edge router"):
        return "edge router"
    return "-O, sub-images" if method.endswith(", sub-images") else "-O"


def cost_tables(records: list[Record]) -> list[dict]:
    """One table per (set, scale, degradation): a row per tested routing and the two "-O" rows."""
    groups: dict[tuple, list[Record]] = {}
    for r in records:
        if "GFLOPs" in r.extras:
            groups.setdefault((r.dataset, r.scale, r.degradation), []).append(r)
    tables = []
    for (dataset, scale, degradation), group in groups.items():
        def total(r: Record, key: str) -> float:
            return sum(image.get(key, 0.0) for image in r.images)

        whole = next(r for r in group if _kind(r.method) == "-O")
        tiled = next(r for r in group if _kind(r.method) == "-O, sub-images")
        rows = []
        for r in group:
            row = {"method": r.method, "kind": _kind(r.method), "route_bias": r.extras.get("route bias"),
                   "psnr_y": r.psnr_y, "ssim_y": r.ssim_y, "psnr_vs_whole": r.psnr_y - whole.psnr_y,
                   "gflops_per_image": total(r, "GFLOPs") / r.n_images,
                   "flops_vs_whole": total(r, "GFLOPs") / total(whole, "GFLOPs"),
                   "flops_vs_same_sub_images": total(r, "GFLOPs") / total(tiled, "GFLOPs"),
                   "seconds_per_image": r.seconds, "time_vs_whole": total(r, "seconds") / total(whole, "seconds")}
            if "class 0 sub-images" in r.extras:
                k = 0
                row["class_shares"] = []
                while f"class {k} sub-images" in r.extras:
                    row["class_shares"].append(total(r, f"class {k} sub-images") / total(r, "sub-images"))
                    k += 1
            rows.append(row)
        tables.append({"dataset": dataset, "scale": scale, "degradation": degradation, "images": whole.n_images,
                       "rows": rows})
    return tables


def format_cost_tables(tables: list[dict]) -> str:
    from srlab.evaluate import _markdown_table

    out = []
    for t in tables:
        head = ["method", "PSNR_Y", "vs -O dB", "GFLOPs/image", "FLOPs vs -O whole", "FLOPs vs -O same sub-images",
                "time vs -O whole", "classes (by sub-image count)"]
        rows = [[r["method"], f"{r['psnr_y']:.2f}", f"{r['psnr_vs_whole']:+.2f}", f"{r['gflops_per_image']:.2f}",
                 f"{100 * r['flops_vs_whole']:.1f}%", f"{100 * r['flops_vs_same_sub_images']:.1f}%",
                 f"{r['time_vs_whole']:.2f}x",
                 " / ".join(f"{100 * s:.1f}%" for s in r.get("class_shares", [])) or "-"] for r in t["rows"]]
        out.append(f"cost, {t['dataset']} x{t['scale']} {t['degradation']} ({t['images']} images; sums over the set):\n"
                   + _markdown_table(head, rows))
    return "\n\n".join(out)


def plot_curves(tables: list[dict], out_dir: Path) -> list[Path]:
    """``curve_<set>_x<scale>_<degradation>.png``: PSNR_Y against FLOPs (% of the whole-image "-O")."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no PSNR-vs-FLOPs picture: matplotlib is not installed (pip install -e '.[plot]'); "
              "the curve's numbers are in cost.json")
        return []
    written = []
    for t in tables:
        fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
        for kind, style in (("ClassSR", "o-"), ("edge router", "s--")):
            points = sorted((100 * r["flops_vs_whole"], r["psnr_y"]) for r in t["rows"] if r["kind"] == kind)
            if points:
                ax.plot(*zip(*points), style, label=f"{kind} (route bias swept)" if len(points) > 1 else kind)
        for kind, marker in (("-O", "*"), ("-O, sub-images", "x")):
            r = next(r for r in t["rows"] if r["kind"] == kind)
            ax.plot([100 * r["flops_vs_whole"]], [r["psnr_y"]], marker, markersize=11, linestyle="none",
                    label=f'{r["method"]}')
        ax.set_xlabel('FLOPs, % of the "-O" network on the whole image')
        ax.set_ylabel("PSNR_Y (dB)")
        ax.set_title(f"{t['dataset']} x{t['scale']} {t['degradation']} ({t['images']} images)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"curve_{t['dataset']}_x{t['scale']}_{t['degradation']}.png"
        partial = path.with_suffix(".png.partial")
        fig.savefig(partial, format="png")
        partial.replace(path)  # never a half-written picture
        plt.close(fig)
        written.append(path)
    return written
