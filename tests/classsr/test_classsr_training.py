"""ClassSR's training data and stages: the class split, regions, branch stage, three-stage run."""
import json

import numpy as np
import pytest
import torch
from classsr_helpers import O_CPU, write_fake_split
from conftest import run_script

from srlab.classsr.models import MSRResNet
from srlab.imresize import imresize


def test_psnr_quantiles_split_sub_images_into_three_equal_classes():
    from srlab.classsr.prepare import assign_classes, class_thresholds, score_sub_images

    psnrs = torch.arange(30, dtype=torch.float64)  # 0 .. 29 dB
    thresholds = class_thresholds(psnrs)
    classes = assign_classes(psnrs, thresholds)
    assert torch.bincount(classes).tolist() == [10, 10, 10]
    assert classes[-1] == 0 and classes[0] == 2  # highest PSNR = simple, lowest = hard
    # Scoring: the bicubic "network" scores flat sub-images higher than textured ones.
    image = np.zeros((64, 96, 3), np.uint8)
    image[:, 48:] = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    positions, scores, edges = score_sub_images(lambda lr: imresize(lr, scale=2), image, 2, 16, 16)
    assert len(positions) == len(scores) == len(edges) == 2 * 3
    flat = [s for (y, x), s in zip(positions, scores) if x + 32 <= 48]
    textured = [s for (y, x), s in zip(positions, scores) if x >= 48]
    assert min(flat) > max(textured)
    assert max(e for (y, x), e in zip(positions, edges) if x + 32 <= 48) < min(e for (y, x), e in zip(positions, edges) if x >= 48)


def test_prepare_script_writes_an_equal_three_way_split(tmp_path):
    from srlab.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = MSRResNet(nf=4, nb=1, scale=4)
    save_checkpoint({"model": model.state_dict()}, tmp_path / "o.pt")
    opts = ["model.nf=4", "model.nb=1", "train.datasets=[skimage_train]", "device=cpu"]
    result = run_script("prepare_classsr.py", "--config", O_CPU, "--checkpoint", tmp_path / "o.pt", "--out",
                        tmp_path / "split.json", "--lr-size", "16", "--step", "64", *sum((["--opt", o] for o in opts), []))
    assert result.returncode == 0, result.stderr
    split = json.loads((tmp_path / "split.json").read_text())
    rows = split["sub_images"]
    counts = np.bincount([r[4] for r in rows], minlength=3)
    assert split["scale"] == 4 and len(split["thresholds_psnr_y"]) == 2 and len(split["images"]) == 10
    assert abs(counts - len(rows) / 3).max() <= 1  # quantile split: equal thirds
    t1, t2 = split["thresholds_psnr_y"]
    assert all((r[3] >= t2) == (r[4] == 0) and (r[3] < t1) == (r[4] == 2) for r in rows)
    e1, e2 = split["edge_thresholds"]
    assert e1 < e2 and f"[{e1:.4f}, {e2:.4f}]" in result.stdout  # printed for the test config


def test_patch_sampler_cuts_patches_inside_the_regions_only(tmp_path):
    from conftest import write_png

    from srlab.data import PatchSampler, list_images

    rng = np.random.default_rng(0)
    for i in range(2):
        write_png(tmp_path / f"{i}.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    files = list_images(tmp_path)
    regions = np.array([[1, 8, 20, 16]])  # one 16x16 square of the second image
    batch = PatchSampler(files, patch_size=16, batch_size=3, augment=False, regions=regions)[0]
    from srlab.data import load_image

    expected = torch.from_numpy(load_image(files[1])[8:24, 20:36].copy()).permute(2, 0, 1)
    assert all(torch.equal(patch, expected) for patch in batch)


def test_branch_stage_trains_on_its_class_and_rejects_a_foreign_split(tmp_path):
    from srlab.config import load_config
    from srlab.errors import ConfigError, UserError
    from srlab.registry import build_method
    from srlab.runner import train

    files = write_fake_split(tmp_path / "split.json")
    opts = ["method=classsr_branch", f"options.split={tmp_path / 'split.json'}", "options.branch_class=1",
            "model.nf=4", "model.nb=1", "train.datasets=[skimage_train]", "train.total_iters=2",
            "train.scheduler.warmup_iters=0", "train.num_workers=0",
            "train.log_every=1", "val.datasets=[skimage_test]", "val.max_images=1"]
    cfg = load_config(O_CPU, opts)
    method = build_method(cfg)
    regions = method.training_regions(files)
    assert regions[:, 0].tolist() == [1, 4, 7] and (regions[:, 3] == 64).all()
    records = train(method, cfg, tmp_path / "run")
    assert records and records[0].method == "msrresnet_class1"  # named by what ran
    from srlab.checkpoint import load_checkpoint

    last = tmp_path / "run" / "checkpoints" / "last.pt"
    warm = build_method(load_config(O_CPU, [*opts, f"options.init={last}"]))
    assert torch.equal(warm.build_model().conv_first.weight, load_checkpoint(last)["model"]["conv_first.weight"])
    wrong = build_method(load_config(O_CPU, [*opts, "model.nf=5", f"options.init={last}"]))
    with pytest.raises(UserError, match="options.init"):
        wrong.build_model()
    with pytest.raises(ConfigError, match="other images than train.datasets"):
        method.training_regions(files[:-1])
    with pytest.raises(ConfigError, match="branch_class must be in \\[0, 2\\]"):
        build_method(load_config(O_CPU, [*opts[:2], "options.branch_class=3"])).training_regions(files)


@pytest.mark.parametrize("scale", [4, 2])
def test_tiny_three_stage_run_on_cpu(tmp_path, scale):
    """Stage 1 (each branch on its class), stage 2 (Class-Module, branches frozen), stage 3 (all)."""
    from srlab.checkpoint import load_checkpoint
    from srlab.config import load_config
    from srlab.registry import build_method
    from srlab.runner import train

    write_fake_split(tmp_path / "split.json", scale)
    common = [f"model.scale={scale}", f"train.scales=[{scale}]", f"val.scales=[{scale}]", "train.datasets=[skimage_train]",
              "train.total_iters=2", "train.scheduler.warmup_iters=0", "train.num_workers=0", "train.batch_size=4",
              "train.patch_size=32",
              "val.datasets=[skimage_test]", "val.max_images=1"]
    widths = [4, 6, 8]
    for k, nf in enumerate(widths):
        opts = ["method=classsr_branch", f"options.split={tmp_path / 'split.json'}", f"options.branch_class={k}",
                f"model.nf={nf}", "model.nb=1", *common]
        cfg = load_config(O_CPU, opts)
        train(build_method(cfg), cfg, tmp_path / f"branch{k}")

    model = [f"model={{type: classsr, widths: {widths}, nb: 1, scale: {scale}, classifier_width: 8, tile: 8, step: 6}}"]
    branch_ckpts = [str(tmp_path / f"branch{k}" / "checkpoints" / "last.pt") for k in range(3)]
    cfg2 = load_config(O_CPU, ["method=classsr", *model, f"options.branches={branch_ckpts}", *common])
    train(build_method(cfg2), cfg2, tmp_path / "stage2")
    stage2 = load_checkpoint(tmp_path / "stage2" / "checkpoints" / "last.pt")["model"]
    branch0 = load_checkpoint(branch_ckpts[0])["model"]
    assert torch.equal(stage2["branches.0.conv_first.weight"], branch0["conv_first.weight"])  # frozen

    cfg3 = load_config(O_CPU, ["method=classsr", *model, f"options.init={tmp_path / 'stage2' / 'checkpoints' / 'last.pt'}",
                               "options.freeze_branches=false", *common])
    records = train(build_method(cfg3), cfg3, tmp_path / "stage3")
    stage3 = load_checkpoint(tmp_path / "stage3" / "checkpoints" / "last.pt")["model"]
    assert not torch.equal(stage3["branches.0.conv_first.weight"], stage2["branches.0.conv_first.weight"])
    assert not torch.equal(stage3["classifier.fc.weight"], stage2["classifier.fc.weight"])
    assert records[0].method == "classsr" and records[0].scale == scale and records[0].psnr_y > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(tmp_path / "stage3" / "tb")).Reload().Tags()
    assert {"train/class_share/0", "train/class_loss", "train/average_loss"} <= set(tags["scalars"])
    assert any(t.startswith("val/class_map/skimage_test/") for t in tags["images"])


def test_collapse_warning(recwarn):
    from srlab.config import load_config
    from srlab.registry import build_method

    cfg = load_config(O_CPU, ["method=classsr", "model={type: classsr, widths: [4, 4, 4], nb: 1, classifier_width: 4}",
                              "train.patch_size=32"])
    method = build_method(cfg)
    for _ in range(49):
        method._watch_collapse(torch.tensor([0.0, 0.0, 1.0]))
    assert len(recwarn) == 0
    for _ in range(10):
        method._watch_collapse(torch.tensor([0.0, 0.0, 1.0]))
    assert len(recwarn) == 1 and "collapsing: class 2" in str(recwarn[0].message)

