"""ClassSR through the commands: test script and cost report, benchmark, configs, shipped weights."""
import json

import numpy as np
import pytest
import torch
from classsr_helpers import CONFIGS, O_CPU
from conftest import REPO, run_script, write_png

from srlab.imresize import imresize


def test_test_script_reports_cost_by_sub_image_count_and_draws_the_knob_curve(tmp_path):
    from srlab.checkpoint import save_checkpoint
    from srlab.config import load_config, to_dict
    from srlab.registry import build_method

    model_opt = "model={type: classsr, widths: [4, 6, 8], nb: 1, scale: 4, classifier_width: 8, tile: 8, step: 4}"
    cfg = load_config(O_CPU, ["method=classsr", model_opt, "train.patch_size=32"])
    torch.manual_seed(0)
    net = build_method(cfg).build_model()
    save_checkpoint({"model": net.state_dict(), "config": to_dict(cfg)}, tmp_path / "c.pt")
    rng = np.random.default_rng(0)
    write_png(tmp_path / "hr" / "a.png", rng.integers(0, 256, (60, 72, 3), dtype=np.uint8))
    write_png(tmp_path / "hr" / "b.png", (rng.integers(0, 256, (120, 160, 3)) * np.linspace(0, 1, 160)[:, None]).astype(np.uint8))
    result = run_script("test.py", "--config", O_CPU, "--checkpoint", tmp_path / "c.pt", "--dataset",
                        f"tiny={tmp_path / 'hr'}", "--out", tmp_path / "out", "--opt", "method=classsr",
                        "--opt", model_opt, "--opt", "train.patch_size=32", "--opt", "options.route_biases=[-100, 100]",
                        "--opt", "options.edge_thresholds=[-4.0, -3.0]")
    assert result.returncode == 0, result.stderr
    records = {r["method"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())["records"]}
    assert set(records) == {"ClassSR", "ClassSR bias -100", "ClassSR bias +100", "edge router", "edge router bias -100",
                            "edge router bias +100", "widest branch alone", "widest branch alone, sub-images"}
    cost = json.loads((tmp_path / "out" / "cost.json").read_text())[0]
    rows = {r["method"]: r for r in cost["rows"]}
    images = records["ClassSR"]["images"]

    def total(method, key):
        return sum(image[key] for image in records[method]["images"])

    # set-level numbers are sums over the images (weighted by sub-image count), not means of percentages
    assert rows["ClassSR"]["flops_vs_whole"] == pytest.approx(total("ClassSR", "GFLOPs") / total("widest branch alone", "GFLOPs"))
    shares = rows["ClassSR"]["class_shares"]
    assert shares == pytest.approx([total("ClassSR", f"class {k} sub-images") / total("ClassSR", "sub-images") for k in range(3)])
    assert sum(shares) == pytest.approx(1) and len({image["sub-images"] for image in images}) == 2
    # the whole-image baseline: its FLOPs per LR pixel times the image
    from srlab.classsr.methods import tile_flops

    per_pixel = tile_flops(net.branches[2], 8, torch.device("cpu")) / 64
    assert total("widest branch alone", "GFLOPs") == pytest.approx(per_pixel * (15 * 18 + 30 * 40) / 1e9)
    # the knob's ends: every sub-image to the narrowest / the widest branch
    assert rows["ClassSR bias -100"]["class_shares"] == [1, 0, 0] and rows["edge router bias -100"]["class_shares"] == [1, 0, 0]
    assert rows["ClassSR bias +100"]["class_shares"] == [0, 0, 1]
    assert 1 < rows["ClassSR bias +100"]["flops_vs_same_sub_images"] < 1.05  # the widest everywhere, plus the Class-Module
    assert rows["widest branch alone, sub-images"]["flops_vs_whole"] > 1  # overlapping sub-images cost more than the image
    assert (tmp_path / "out" / "curve_tiny_x4_bicubic.png").stat().st_size > 1000
    assert "FLOPs vs -O whole" in result.stdout and "cost.json" in result.stdout
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pictures = EventAccumulator(str(tmp_path / "out" / "tb")).Reload().Tags()["images"]
    assert pictures == ["test/class_map/tiny/a", "test/class_map/tiny/b"]


def test_benchmark_script_times_every_version(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("benchmark_classsr.py", "--config", CONFIGS / "test_x4_cpu.yaml", "--opt",
                        "model={type: classsr, widths: [4, 6, 8], nb: 1, scale: 4, classifier_width: 8, tile: 8, step: 6, "
                        "blend: linear}", "--dataset", "skimage_test", "--images", "1", "--repeats", "1", "--route-biases", "-100", "--out", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["batched_equals_one_by_one"] is True  # same classes and SR images, every image
    rows = report["versions"]
    assert set(rows) == {"widest_whole", "widest_tiled", "classsr", "classsr_one_by_one", "branch0_tiled", "branch1_tiled",
                         "classsr_bias-100"}
    assert rows["classsr_bias-100"]["gflops_per_image"] == pytest.approx(rows["branch0_tiled"]["gflops_per_image"])
    assert rows["classsr"]["gflops_per_image"] == pytest.approx(rows["classsr_one_by_one"]["gflops_per_image"])
    assert rows["widest_tiled"]["gflops_per_image"] > rows["widest_whole"]["gflops_per_image"]  # overlap costs
    assert sum(report["class_shares"]) == pytest.approx(1)


def test_every_classsr_config_loads():
    from srlab.config import build, load_config
    from srlab.registry import METHODS, MODELS

    paths = sorted(CONFIGS.rglob("*.yaml"))
    counts = {b: len([p for p in paths if p.parent.name == b]) for b in ("fsrcnn", "carn", "rcan")}
    assert counts == {"fsrcnn": 14, "carn": 14, "rcan": 7}  # -O, 3 branches, stages 2 and 3, test (CPU and full)
    widths = {"classsr": [36, 52, 64], "fsrcnn": [16, 36, 56], "carn": [36, 52, 64], "rcan": [36, 50, 64]}  # the paper's
    for path in paths:
        cfg = load_config(path, [], METHODS)
        folder = path.parent.name
        if cfg.model["type"] == "classsr":
            assert cfg.model["widths"] == widths[folder] and cfg.model.get("backbone", "msrresnet") == \
                {"classsr": "msrresnet"}.get(folder, folder)
        if folder != "rcan":  # RCAN's full-size branches take seconds to build
            model = build(cfg.model, MODELS, "model")
            if folder == "classsr" and "_cpu" not in path.name:
                nets = model.branches if hasattr(model, "branches") else [model]
                assert all(len(b.body) == 16 for b in nets)  # the paper's 16 residual blocks
        if path.name.startswith("stage") and (folder != "classsr" or path.name.startswith("stage2") and "_cpu" not in path.name):
            assert cfg.train.batch_size == (60 if folder == "rcan" else 96)  # the official stage-2 batch


@pytest.mark.parametrize("config, weights, baseline, name, gain, cost_range", [
    ("test_x4_cpu.yaml", "classsr_x4_cpu.pt", "msrresnet_o_x4_cpu.pt", "MSRResNet-O", 1.5, (0.25, 0.5)),
    ("fsrcnn/test_x4_cpu.yaml", "classsr_fsrcnn_x4_cpu.pt", "fsrcnn_o_x4_cpu.pt", "FSRCNN-O", 0.5, (0.9, 1.2)),
    ("carn/test_x4_cpu.yaml", "classsr_carn_x4_cpu.pt", "carn_o_x4_cpu.pt", "CARN-O", 1.5, (0.9, 1.2)),
])
def test_committed_cpu_weights_route_a_set5_image(tmp_path, shared_data, config, weights, baseline, name, gain,
                                                  cost_range):
    """The shipped CPU weights through the real CLI on Set5's 'bird' (seconds), at the configs' route bias."""
    import shutil

    shutil.copy(shared_data / "benchmarks" / "Set5" / "HR" / "bird.png", tmp_path / "bird.png")
    folder = REPO / "weights" / "classsr"
    result = run_script("test.py", "--config", CONFIGS / config, "--checkpoint", folder / weights,
                        "--opt", f"options.baseline={folder / baseline}", "--opt", "options.route_biases=[]",
                        "--opt", "options.edge_thresholds=[]", "--dataset", f"bird={tmp_path}", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    records = {r["method"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())["records"]}
    classsr, o = records["ClassSR"], records[name]
    assert classsr["psnr_y"] >= classsr["bicubic_psnr_y"] + gain
    assert classsr["psnr_y"] >= o["psnr_y"] - 0.25
    cost = {r["method"]: r for r in json.loads((tmp_path / "out" / "cost.json").read_text())[0]["rows"]}
    assert cost_range[0] < cost["ClassSR"]["flops_vs_same_sub_images"] < cost_range[1]


@pytest.mark.parametrize("config, weights", [("test_x4_cpu.yaml", "classsr_x4_cpu.pt"),
                                             ("fsrcnn/test_x4_cpu.yaml", "classsr_fsrcnn_x4_cpu.pt"),
                                             ("carn/test_x4_cpu.yaml", "classsr_carn_x4_cpu.pt")])
def test_shipped_weights_recommend_the_test_configs_routing_and_upscale_takes_it(config, weights):
    """`srlab upscale` routes the shipped weights as `test.py` with their test config does, although
    the config stored in a file is the training one (MSRResNet's: 16-pixel sub-images, no knob)."""
    from srlab.api import load_upscaler
    from srlab.config import load_config

    test_model = load_config(CONFIGS / config).model
    net = load_upscaler(REPO / "weights" / "classsr" / weights, device="cpu").model
    assert (net.tile, net.step, net.route_bias, net.blend) == (test_model["tile"], test_model["step"],
                                                              test_model.get("route_bias", 0.0),
                                                              test_model.get("blend", "mean"))


def test_prepare_test8k_makes_classsrs_large_sets_from_div8k(tmp_path, capsys):
    from srlab.classsr.test8k import main
    from srlab.data import load_image, to_tensor, to_uint8

    rng = np.random.default_rng(0)
    div8k = tmp_path / "DIV8K"
    for i in range(1201, 1501):
        write_png(div8k / f"{i:04d}.png", rng.integers(0, 256, (10, 13, 3), dtype=np.uint8))
    out = tmp_path / "benchmarks"
    main(["--div8k", str(div8k), "--out", str(out), "--sets", "Test2K", "Test8K"])
    test2k, test8k = sorted((out / "Test2K" / "HR").iterdir()), sorted((out / "Test8K" / "HR").iterdir())
    assert [p.name for p in test2k] == [f"{i}.png" for i in range(1201, 1301)] and len(test8k) == 100
    source = load_image(div8k / "1201.png")
    expected = to_uint8(imresize(to_tensor(source[:8, :12]), scale=1 / 4))  # cropped to a multiple of 4, MATLAB bicubic
    assert np.array_equal(load_image(test2k[0]), expected) and expected.shape == (2, 3, 3)
    assert np.array_equal(load_image(test8k[0]), load_image(div8k / "1401.png"))  # Test8K: as it is
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--div8k", str(div8k), "--out", str(out), "--sets", "Test2K"])
    assert "Test2K/HR exists; pass --overwrite" in capsys.readouterr().err
    (div8k / "1350.png").unlink()
    with pytest.raises(SystemExit):
        main(["--div8k", str(div8k), "--out", str(out), "--sets", "Test4K"])
    assert "Test4K needs DIV8K images 1301-1400; missing 1, e.g. 1350.png" in capsys.readouterr().err
    assert not (out / "Test4K").exists()  # checked before anything is written


def test_a_bad_recommendation_in_a_checkpoint_names_the_file(tmp_path):
    from srlab.api import load_upscaler
    from srlab.checkpoint import load_checkpoint, save_checkpoint
    from srlab.errors import UserError

    state = load_checkpoint(REPO / "weights" / "classsr" / "classsr_x4_cpu.pt")
    state["network"]["recommended"]["blend"] = "feather"  # a checkpoint from before cards: its "network" entry
    save_checkpoint(state, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=r"bad.pt: card field recommended.blend: 'feather' is not allowed"):
        load_upscaler(tmp_path / "bad.pt", device="cpu")

