import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, TINY, ActAt

import srlab
from srlab.checkpoint import load_checkpoint
from srlab.config import load_config
from srlab.data import PatchSampler, embedded_files
from srlab.method import Supervised
from srlab.optim import clip_gradients_, lr_factor
from srlab.registry import METHODS, build_method
from srlab.runner import train
from srlab.stopping import Interrupted, TrainingStopped


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return lambda *opts: load_config(path, list(opts), METHODS)


class NaNAt(Supervised):
    def __init__(self, cfg, model_factory, at):
        super().__init__(cfg, model_factory)
        self.calls, self.at = 0, at

    def loss(self, model, batch):
        self.calls += 1
        losses = super().loss(model, batch)
        return {"loss": losses["loss"] * float("nan")} if self.calls >= self.at else losses


def test_training_lowers_the_loss_and_writes_the_run_folder(tiny_config, tmp_path):
    cfg = tiny_config("train.total_iters=40", "train.log_every=10", "train.checkpoint_every=20",
                      "train.val_every=20", "train.ema_decay=0")
    records = train(build_method(cfg), cfg, tmp_path / "run")
    run = tmp_path / "run"
    assert (run / "config.yaml").exists() and (run / "log.txt").exists()
    assert any((run / "tb").iterdir())
    losses = [float(line.split("loss=")[1].split()[0]) for line in (run / "log.txt").read_text().splitlines()
              if line.startswith("[") and "loss=" in line]
    assert len(losses) == 4  # logged every 10 iterations
    # The loss on the same 8 batches (one batch's logged loss is too noisy to compare). The tiny
    # network starts as bicubic (residual, last layer zero) and 40 steps gain little: 0.14 % here.
    method = build_method(cfg)
    torch.manual_seed(cfg.seed)
    start = method.build_model()
    trained = method.build_model()
    trained.load_state_dict(load_checkpoint(run / "checkpoints" / "last.pt")["model"])
    patches = PatchSampler(embedded_files("skimage_train"), 16, 32, seed=9)
    with torch.no_grad():
        batches = [method.training_batch(patches[i]) for i in range(8)]
        before, after = (sum(method.loss(net, b)["loss"].item() for b in batches) for net in (start, trained))
    assert after < before
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["iteration"] == 40
    card = state["card"]
    assert card["architecture"] == "mzsr_net" and card["arguments"] == {"channels": 8, "num_layers": 3}
    assert card["input"] == "rgb_bicubic_upscale" and card["scales"] == [2] and card["method"] == "supervised"
    assert card["recommended"] == {} and not card["adapts"] and card["provenance"]["config_name"] == "tiny"
    assert set(state) >= {"model", "optimizer", "ema", "scaler", "rng", "iteration", "best", "config", "card"}
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["best"] == pytest.approx(max(records[0].psnr_y, best["best"]))
    assert records[0].dataset == "skimage_test" and records[0].psnr_y > records[0].bicubic_psnr_y


def test_interrupt_then_resume_equals_an_uninterrupted_run(tiny_config, tmp_path):
    cfg = tiny_config()
    train(build_method(cfg), cfg, tmp_path / "straight")
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")

    method = ActAt(build_method(cfg), 3, lambda: signal.raise_signal(signal.SIGINT))
    with pytest.raises(Interrupted):
        train(method, cfg, tmp_path / "resumed")
    stopped = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert stopped["iteration"] == 3  # the interrupted iteration finished, then it saved

    train(build_method(cfg), cfg, tmp_path / "resumed", resume="auto")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert resumed["iteration"] == 8
    for key in ("model", "ema"):
        for name, tensor in straight[key].items():
            assert torch.equal(tensor, resumed[key][name]), (key, name)
    assert straight["optimizer"]["param_groups"][0]["lr"] == resumed["optimizer"]["param_groups"][0]["lr"]


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path):
    cfg = tiny_config()
    method = NaNAt(cfg, build_method(cfg).model_factory, at=4)
    with pytest.raises(TrainingStopped, match="non-finite loss"):
        train(method, cfg, tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["iteration"] == 2
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_lr_schedules():
    cfg = load_config(REPO / "configs" / "demo.yaml", ["train.scheduler.type=multistep",
                      "train.scheduler.milestones=[10, 20]", "train.scheduler.warmup_iters=0"])
    s = cfg.train.scheduler
    assert [lr_factor(i, s, 30, 1.0) for i in (0, 9, 10, 19, 20)] == [1, 1, 0.5, 0.5, 0.25]
    cos = load_config(REPO / "configs" / "demo.yaml", ["train.scheduler.min_lr=0.1", "train.scheduler.warmup_iters=4",
                      "train.optimizer.lr=1.0"]).train.scheduler
    assert lr_factor(0, cos, 100, 1.0) == pytest.approx(0.25)
    assert lr_factor(4, cos, 100, 1.0) == pytest.approx(1.0)
    assert lr_factor(100, cos, 100, 1.0) == pytest.approx(0.1)


def test_gradient_clipping_by_norm_and_by_theta_and_none_when_off():
    model = torch.nn.Linear(2, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for max_norm, theta, expected in [(0, 0, [3.0, 4.0]), (1.0, 0, [0.6, 0.8]), (0, 0.5, [1.0, 1.0])]:
        model.weight.grad = torch.tensor([[3.0, 4.0]])
        clip_gradients_(model, optimizer, scaler, max_norm, theta)  # theta / lr = 1: each element to [-1, 1]
        assert model.weight.grad[0].tolist() == pytest.approx(expected)


def torchrun_tiny(tmp_path, *opts) -> tuple[list[str], dict]:
    """The command and environment of a 2-process gloo run of the tiny config into tmp_path/ddp."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.replace("num_workers: 0", "num_workers: 1"))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "scripts/train.py", "--config", str(config), "--out", str(tmp_path / "ddp"),
               *(x for opt in opts for x in ("--opt", opt))]
    return command, {**os.environ, "OMP_NUM_THREADS": "1"}


def test_two_process_ddp_on_cpu_with_gloo_trains_what_one_process_does(tiny_config, tmp_path):
    out = tmp_path / "ddp"
    command, env = torchrun_tiny(tmp_path, "train.total_iters=4")
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "on cpu x2" in log  # both processes joined one gloo group
    assert log.count("training supervised") == 1  # rank 0 alone logs
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["iteration"] == 4 and all(torch.isfinite(t).all() for t in state["model"].values())
    assert not (out / ".lock").exists()
    # Each process trained on its half of the batch one process trains on: the same weights.
    cfg = tiny_config("train.total_iters=4")
    train(build_method(cfg), cfg, tmp_path / "one")
    alone = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")
    for name, weight in alone["model"].items():
        torch.testing.assert_close(state["model"][name], weight, rtol=1e-4, atol=1e-6)


@pytest.mark.ddp_signal
def test_two_process_ddp_on_cpu_with_gloo_stops_on_sigterm_with_a_checkpoint(tmp_path):
    """Two ranks train in one gloo group; SIGTERM to the process group (as SLURM sends it) stops
    both at the same iteration, after rank 0 has saved. Out of the default run (pytest -m ddp_signal):
    it passed 15 of 15 runs on an idle machine and 16 of 17 under load, and failed once in a
    fresh-clone CI run (rank 0 gone without its stop line); the cause is not found yet."""
    out = tmp_path / "ddp"
    command, env = torchrun_tiny(tmp_path, "train.total_iters=100000", "train.log_every=1")
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        log = out / "log.txt"
        deadline = time.time() + 120
        while (time.time() < deadline and proc.poll() is None
               and not (log.exists() and "[2/100000]" in log.read_text())):
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "on cpu x2" in text  # both processes joined one gloo group
    assert text.count("training supervised") == 1  # rank 0 alone logs
    assert "stopped by SIGTERM at iteration" in text, stderr[-3000:]
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["iteration"] >= 2 and all(torch.isfinite(t).all() for t in state["model"].values())
    assert not (out / ".lock").exists()


def test_cli_train_then_test_with_the_checkpoint(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    run = tmp_path / "run"
    train_proc = subprocess.run([sys.executable, "scripts/train.py", "--config", str(config), "--out", str(run),
                                 "--opt", "train.total_iters=4"], cwd=REPO, capture_output=True, text=True)
    assert train_proc.returncode == 0, train_proc.stderr[-2000:]
    assert "final validation" in train_proc.stdout and "skimage_test" in train_proc.stdout
    test_proc = subprocess.run([sys.executable, "scripts/test.py", "--config", str(run / "config.yaml"),
                                "--checkpoint", str(run / "checkpoints" / "last.pt"), "--out", str(tmp_path / "t"),
                                "--opt", "test.datasets=[skimage_test]", "--opt", "test.max_images=2",
                                "--scales", "2", "3", "--save-images"],
                               cwd=REPO, capture_output=True, text=True)
    assert test_proc.returncode == 0, test_proc.stderr[-2000:]
    import json

    results = json.loads((tmp_path / "t" / "results.json").read_text())
    records = results["records"]
    assert [(r["dataset"], r["scale"]) for r in records] == [("skimage_test", 2), ("skimage_test", 3)]
    for r in records:
        assert {"dataset", "scale", "degradation", "psnr_y", "ssim_y", "n_images", "seconds", "images"} <= set(r)
        assert r["n_images"] == 2 and r["method"] == "mzsr_net"  # named by what ran
    assert len(list((tmp_path / "t" / "images").rglob("*.png"))) == 4
    # Where the numbers came from: the checkpoint (and its hash), the config, the code, the machine.
    header = results["header"]
    from srlab.provenance import sha256

    assert header["checkpoint"] == {"path": str(run / "checkpoints" / "last.pt"),
                                    "sha256": sha256(run / "checkpoints" / "last.pt")}
    assert header["config"]["test"]["scales"] == [2, 3] and header["config"]["model"]["type"] == "mzsr_net"
    assert header["torch"] == torch.__version__ and header["threads"] >= 1 and header["device"] == "cpu"
    assert header["device_name"] and header["date"].startswith("20")
    assert header["command"].startswith("srlab test --config")
    assert header["code"]["version"] == srlab.__version__ and len(header["code"]["git_commit"] or "x" * 40) == 40
    # The training run keeps the same header, one per start.
    (start,) = json.loads((run / "provenance.json").read_text())
    assert start["config"]["train"]["total_iters"] == 4 and start["checkpoint"] is None


def test_training_benchmark_reports_speed_data_wait_and_refused_variants(tmp_path):
    from srlab.commands.benchmark_training import main

    tiny = ["--opt", "model.channels=8", "--opt", "model.num_layers=3", "--opt", "train.datasets=[skimage_train]",
            "--opt", "val.datasets=[skimage_test]", "--opt", "train.num_workers=0"]
    main(["--config", str(REPO / "configs" / "mzsr" / "pretrain_x2_cpu.yaml"), "--iters", "4",
          "--variants", "fp32", "channels_last", *tiny, "--json", str(tmp_path / "supervised.json")])
    rows = json.loads((tmp_path / "supervised.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["fp32", "channels_last"]
    assert all(r["iterations_per_second"] > 0 and 0 <= r["data_wait_share"] <= 1 for r in rows)
    assert rows[0]["speed_vs_fp32"] == 1.0
    main(["--config", str(REPO / "configs" / "mzsr" / "meta_x2_cpu.yaml"), "--iters", "4", "--variants", "fp32",
          "compile", *tiny, "--opt", "options.pretrained=null", "--opt", "options.val_adapt_steps=0",
          "--opt", "options.tasks=1", "--opt", "train.batch_size=8", "--json", str(tmp_path / "meta.json")])
    rows = json.loads((tmp_path / "meta.json").read_text())["rows"]
    assert rows[0]["iterations_per_second"] > 0
    assert "refused" in rows[1] and "train.compile: not supported for mzsr_meta" in rows[1]["refused"]


class SeesAutocast(Supervised):
    def loss(self, model, batch):
        self.autocast = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        return super().loss(model, batch)


@pytest.mark.parametrize("units", [None, "AMX"])
def test_train_amp_bf16_autocasts_on_a_cpu_with_bf16_units_and_says_it_is_ignored_without(tiny_config, tmp_path,
                                                                                           monkeypatch, units):
    import srlab.runner

    monkeypatch.setattr(srlab.runner, "cpu_bf16_units", lambda: units)  # "AMX": as on a CPU that has them
    cfg = tiny_config("train.amp=bf16", "train.total_iters=2")
    method = SeesAutocast(cfg, build_method(cfg).model_factory)
    train(method, cfg, tmp_path / "run")
    log = (tmp_path / "run" / "log.txt").read_text()
    assert method.autocast == (units is not None)
    assert ("bf16 autocast on the CPU's AMX units" in log) == (units is not None)
    assert ("train.amp=bf16 is ignored on this CPU: it has no bf16 units" in log) == (units is None)
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state["model"].values())
