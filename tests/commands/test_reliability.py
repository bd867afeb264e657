"""Never lose work, never print garbage: run folders, locks, signals, resume rules, output paths,
up-front input checks, NaN, scales and one-line errors (issue 11). Configs and image files have
their own cases in test_config.py and test_image_inputs.py."""
import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO, ActAt, run_inline, write_png

from srlab.checkpoint import load_checkpoint, load_weights, save_json
from srlab.config import DatasetSpec, load_config
from srlab.data import load_image
from srlab.errors import ConfigError, DataError, UserError
from srlab.evaluate import evaluate, load_datasets
from srlab.method import Output, Row, Supervised
from srlab.optim import lr_factor
from srlab.registry import build_method
from srlab.runner import train
from srlab.stopping import Interrupted

MZSR_WEIGHTS = REPO / "weights" / "mzsr" / "meta_x2_cpu.pt"


def folder_state(folder):
    """Every file under ``folder`` with its bytes: to show that nothing was touched."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def kill_a_loader_worker():
    """SIGKILL a data-loader worker, as the out-of-memory killer would, and wait until it is gone
    (PyTorch's SIGCHLD handler then reports it at once)."""
    worker = multiprocessing.active_children()[0]
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(10)


# --------------------------------------------------------------------------- the run folder
def test_a_second_start_in_a_run_folder_is_refused_and_touches_nothing(tiny, tmp_path):
    cfg = tiny("train.total_iters=2")
    run = tmp_path / "run"
    train(build_method(cfg), cfg, run)
    before = folder_state(run)
    with pytest.raises(UserError, match="already holds a checkpoint; continue it with --resume auto, start over with "
                                        "--overwrite"):
        train(build_method(cfg), cfg, run)
    assert folder_state(run) == before
    with pytest.raises(UserError, match="exclude each other"):
        train(build_method(cfg), cfg, run, resume="auto", overwrite=True)

    other = tmp_path / "other"
    train(build_method(cfg), cfg, other)
    with pytest.raises(UserError, match="already holds a checkpoint of another run; to continue .* pass --overwrite"):
        train(build_method(cfg), tiny("train.total_iters=4"), other, resume=str(run / "checkpoints" / "last.pt"))
    assert load_checkpoint(other / "checkpoints" / "last.pt")["iteration"] == 2
    train(build_method(cfg), tiny("train.total_iters=4"), other, resume=str(run / "checkpoints" / "last.pt"),
          overwrite=True)  # when asked: the other run is cleared, this one continues there
    assert load_checkpoint(other / "checkpoints" / "last.pt")["iteration"] == 4
    assert load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] == 2

    train(build_method(cfg), tiny("train.total_iters=3"), run, resume="auto")  # continuing is allowed
    assert load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] == 3
    train(build_method(cfg), cfg, run, overwrite=True)  # starting over is allowed when asked
    log = (run / "log.txt").read_text()
    assert log.startswith("--overwrite: removed") and "resumed" not in log
    assert load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] == 2


def test_the_cli_refuses_to_overwrite_a_run(tiny, tmp_path):
    run = tmp_path / "run"
    args = ("train.py", "--config", tiny.path, "--out", run, "--opt", "train.total_iters=2")
    assert run_inline(*args).returncode == 0
    again = run_inline(*args)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--resume auto" in again.stderr


def test_a_held_lock_refuses_a_second_run_and_a_left_one_is_taken_over(tiny, tmp_path):
    import fcntl

    cfg = tiny("train.total_iters=2")
    run = tmp_path / "run"
    run.mkdir()
    lock = run / ".lock"
    lock.write_text(json.dumps({"pid": 4242, "host": "gpu-node-7", "started": "2026-11-23 08:00:00"}))
    with open(lock) as held:  # another run holds it (a flock: the kernel drops it when that run dies)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match=r"run is in use by another run \(pid 4242 on gpu-node-7, since "
                                            r"2026-11-23 08:00:00\); wait for it to end, or use another --out"):
            train(build_method(cfg), cfg, run)
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written beside it

    train(build_method(cfg), cfg, run)  # the same file, held by nobody: its run ended without removing it
    assert not lock.exists()  # released when the run ends
    assert "took over the run folder's lock, left by a run that ended without releasing it (pid 4242 on " \
           "gpu-node-7" in (run / "log.txt").read_text()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] == 2


def test_the_lock_is_released_when_a_run_fails(tiny, tmp_path, monkeypatch):
    cfg = tiny()
    monkeypatch.setattr(Supervised, "loss", lambda self, model, batch: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        train(build_method(cfg), cfg, tmp_path / "run")
    assert not (tmp_path / "run" / ".lock").exists()


# --------------------------------------------------------------------------- signals and workers
def test_sigterm_saves_like_ctrl_c(tiny, tmp_path):
    cfg = tiny()
    method = ActAt(build_method(cfg), 3, lambda: signal.raise_signal(signal.SIGTERM))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Interrupted) as stop:
        train(method, cfg, tmp_path / "run")
    assert stop.value.signum == signal.SIGTERM
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["iteration"] == 3
    assert "stopped by SIGTERM at iteration 3" in (tmp_path / "run" / "log.txt").read_text()
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # restored


def test_sigterm_to_the_process_group_exits_143_with_a_checkpoint(tiny, tmp_path):
    """What SLURM and systemd do: SIGTERM to the whole process group, data-loader workers included."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "scripts/train.py", "--config", str(tiny.path), "--out", str(run),
                             "--opt", "train.total_iters=100000", "--opt", "train.log_every=1",
                             "--opt", "train.num_workers=1"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        log = run / "log.txt"
        deadline = time.time() + 60
        while time.time() < deadline and not (log.exists() and "[1/100000]" in log.read_text()):
            time.sleep(0.1)  # the first iteration is done: the signal handlers are in place
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr and "data-loader worker died" not in stderr
    assert load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] >= 1


def test_a_killed_data_loader_worker_is_one_line_and_a_checkpoint(tiny, tmp_path):
    cfg = tiny("train.num_workers=1")
    method = ActAt(build_method(cfg), 3, kill_a_loader_worker)
    with pytest.raises(UserError, match="a data-loader worker died .* saved .*last.pt at iteration \\d. Continue with "
                                        "--resume auto") as died:
        train(method, cfg, tmp_path / "run")
    # PyTorch notices at once (SIGCHLD) or at the next fetch: either way after a whole iteration.
    saved_at = int(str(died.value).split("at iteration ")[1][0])
    assert 2 <= saved_at < 8 and load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["iteration"] == saved_at
    train(build_method(cfg), cfg, tmp_path / "run", resume="auto")
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["iteration"] == 8


# --------------------------------------------------------------------------- resume rules
def test_resume_refuses_changes_to_what_defines_the_run(tiny, tmp_path):
    cfg = tiny("train.total_iters=2")
    run = tmp_path / "run"
    train(build_method(cfg), cfg, run)
    before = folder_state(run)
    for opts, named in [(["train.optimizer.type=sgd"], "train.optimizer.type"),
                        (["seed=4", "train.patch_size=24"], "seed, train.patch_size"),
                        (["train.datasets=[skimage_test]"], "train.datasets.name"),
                        (["model.channels=4"], "model.channels")]:
        changed = tiny("train.total_iters=4", *opts)
        with pytest.raises(UserError, match=f"cannot resume with a changed {named} "):
            train(build_method(changed), changed, run, resume="auto")
        assert folder_state(run) == before, opts


def test_resume_applies_a_new_lr_schedule_consistently_and_config_yaml_tells_the_truth(tiny, tmp_path):
    run = tmp_path / "run"
    cfg = tiny("train.total_iters=4")
    train(build_method(cfg), cfg, run)
    new = tiny("train.total_iters=6", "train.optimizer.lr=5.0e-4", "train.scheduler.min_lr=1.0e-4",
               "train.checkpoint_every=1")
    train(build_method(new), new, run, resume="auto")
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    expected = 5e-4 * lr_factor(6, new.train.scheduler, 6, 5e-4)  # the new schedule at the iteration reached
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(expected)
    assert expected == pytest.approx(1e-4)  # the new floor, relative to the new lr
    saved = load_config(run / "config.yaml")
    assert saved.train.optimizer.lr == 5e-4 and saved.train.total_iters == 6 and saved.train.scheduler.min_lr == 1e-4
    log = (run / "log.txt").read_text()
    assert "config change applied from iteration 4: train.optimizer.lr: 0.001 -> 0.0005" in log
    assert "train.total_iters: 4 -> 6" in log


def test_resume_of_a_finished_run_does_nothing_and_past_its_end_is_refused(tiny, tmp_path, capsys):
    cfg = tiny("train.total_iters=4")
    train(build_method(cfg), cfg, tmp_path / "run")
    before = folder_state(tmp_path / "run")
    assert train(build_method(cfg), cfg, tmp_path / "run", resume="auto") == []  # a requeued job: no error
    assert "the run is finished (iteration 4 of 4); nothing to do" in capsys.readouterr().out
    shorter = tiny("train.total_iters=2")
    with pytest.raises(UserError, match="at iteration 4, past train.total_iters \\(2\\).*N > 4"):
        train(build_method(shorter), shorter, tmp_path / "run", resume="auto")
    assert folder_state(tmp_path / "run") == before


def test_resume_frees_validation_and_speed_options_and_moved_dataset_folders(tmp_path):
    from srlab.config import to_dict
    from srlab.mzsr.methods import MetaOptions
    from srlab.resume import config_changes

    cfg = load_config(REPO / "configs" / "mzsr" / "meta_x2_cpu.yaml")
    saved = to_dict(cfg)
    moved = load_config(REPO / "configs" / "mzsr" / "meta_x2_cpu.yaml", [
        "options.task_batching=vmap", "options.val_adapt_steps=3", "options.pretrained=/scratch/job1/stage1.pt",
        "train.datasets=[{name: T91, hr: /scratch/job1/T91}, {name: BSD200, hr: /scratch/job1/BSD200}]"])
    free = ("pretrained", "task_batching", "val_adapt_steps", "val_adapt_lrs")
    changes = config_changes(saved, moved, "last.pt", MetaOptions, free)
    assert "options.task_batching: 'auto' -> 'vmap'" in changes
    assert "train.datasets.hr: [None, None] -> ['/scratch/job1/T91', '/scratch/job1/BSD200']" in changes
    fixed = load_config(REPO / "configs" / "mzsr" / "meta_x2_cpu.yaml", ["options.inner_steps=3"])
    with pytest.raises(UserError, match="cannot resume with a changed options.inner_steps "
                                        "\\(options.inner_steps: 5 -> 3\\)"):
        config_changes(saved, fixed, "last.pt", MetaOptions, free)


# --------------------------------------------------------------------------- saving
def test_a_full_disk_at_save_time_is_one_line_and_keeps_the_last_good_checkpoint(tiny, tmp_path, monkeypatch):
    cfg = tiny()
    run = tmp_path / "run"
    saves = []
    real_save = torch.save

    def save_until_full(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    with pytest.raises(UserError, match="cannot write .*last.pt \\(No space left on device\\); the previous file "
                                        "is unchanged"):
        train(build_method(cfg), cfg, run)
    monkeypatch.undo()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["iteration"] == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]  # no temporary file left


def test_a_full_disk_under_the_log_or_tensorboard_is_one_line_and_releases_the_lock(tiny, tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(SummaryWriter, "add_scalar", full)
    cfg = tiny()
    with pytest.raises(UserError, match="cannot write the run's files in .*run \\(No space left on device\\); "
                                        "the last checkpoint is kept"):
        train(build_method(cfg), cfg, tmp_path / "run")
    assert not (tmp_path / "run" / ".lock").exists()


def test_orphan_temporary_files_are_removed_at_the_next_start(tiny, tmp_path):
    cfg = tiny("train.total_iters=2")
    run = tmp_path / "run"
    train(build_method(cfg), cfg, run)
    orphan = run / "checkpoints" / f".last.pt.tmp{dead_pid()}"
    orphan.write_bytes(b"half a checkpoint")
    train(build_method(cfg), tiny("train.total_iters=4"), run, resume="auto")
    assert not orphan.exists()
    assert f"removed 1 temporary file(s) of interrupted saves: {orphan.name}" in (run / "log.txt").read_text()


def test_results_json_is_never_written_with_nan(tmp_path):
    with pytest.raises(UserError, match="NaN or infinity"):
        save_json([{"psnr_y": float("nan")}], tmp_path / "results.json")
    assert not (tmp_path / "results.json").exists()


# --------------------------------------------------------------------------- inputs up front
def test_a_corrupt_validation_image_stops_the_run_before_anything_is_written(tiny, tmp_path):
    val = tmp_path / "val"
    (val / "a.png").parent.mkdir()
    (val / "a.png").write_bytes(b"not a png at all")
    write_png(val / "b.png", np.zeros((32, 32, 3), np.uint8))
    cfg = tiny(f"val.datasets=[{{name: mine, hr: {val}}}]")
    with pytest.raises(DataError, match="a.png: cannot read image"):
        train(build_method(cfg), cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_absurdly_many_loader_workers_are_refused_before_anything_is_written(tiny, tmp_path):
    cpus = len(os.sched_getaffinity(0))
    cfg = tiny(f"train.num_workers={4 * cpus + 1}")
    with pytest.raises(UserError, match=f"train.num_workers: {4 * cpus + 1} data-loader processes for {cpus} CPUs"):
        train(build_method(cfg), cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_diverged_validation_is_logged_and_training_goes_on(tiny, tmp_path, monkeypatch):
    cfg = tiny("train.total_iters=4", "train.val_every=2")
    method = build_method(cfg)
    monkeypatch.setattr(method, "infer", lambda model, lr, s, d=None: Output(torch.full(
        (1, 3, lr.shape[-2] * s, lr.shape[-1] * s), float("nan"))))
    assert train(method, cfg, tmp_path / "run") == []
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "[2] validation skipped: mzsr_net gave NaN or infinity" in log
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["iteration"] == 4
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def test_official_lr_files_of_the_wrong_size_are_found_at_start_up(tmp_path):
    write_png(tmp_path / "hr" / "a.png", np.zeros((20, 30, 3), np.uint8))
    write_png(tmp_path / "lr_x2" / "a.png", np.zeros((10, 14, 3), np.uint8))
    data = load_datasets([DatasetSpec("mine", str(tmp_path / "hr"), str(tmp_path / "lr_x{scale}"))])[0]
    with pytest.raises(DataError, match="a.png: 14x10 is not the size of a.png \\(30x20\\) / 2"):
        data.check([2])


def test_an_lr_only_network_at_another_scale_is_refused_before_training(tmp_path):
    cfg = load_config(REPO / "configs" / "classsr" / "msrresnet_o_x4_cpu.yaml", ["train.scales=[3]", "model.scale=4"])
    with pytest.raises(ConfigError, match="train.scales: MSRResNet upscales x4 only"):
        build_method(cfg).build_model()
    cfg = load_config(REPO / "configs" / "classsr" / "msrresnet_o_x4_cpu.yaml", ["val.scales=[2]"])
    with pytest.raises(ConfigError, match="val.scales: MSRResNet upscales x4 only"):
        train(build_method(cfg), cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_test_script_checks_scale_and_output_before_any_work(tmp_path):
    config = REPO / "configs" / "classsr" / "msrresnet_o_x4_cpu.yaml"
    weights = REPO / "weights" / "classsr" / "msrresnet_o_x4_cpu.pt"
    wrong = run_inline("test.py", "--config", config, "--checkpoint", weights, "--scales", "2", "--out", tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert "--scales" in wrong.stderr or "test.scales=[2]" in wrong.stderr
    assert "upscales x4 only" in wrong.stderr
    (tmp_path / "results.json").write_text("[]")
    again = run_inline("test.py", "--config", config, "--checkpoint", weights, "--out", tmp_path)
    assert again.returncode == 2 and "results.json: exists; pass --overwrite" in again.stderr
    assert (tmp_path / "results.json").read_text() == "[]"


# --------------------------------------------------------------------------- NaN and checkpoints
def test_nan_weights_are_refused_when_loaded(tmp_path):
    model = torch.nn.Conv2d(3, 3, 3)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    weights["weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(UserError, match="1 weight tensor\\(s\\) hold NaN or infinity \\(e.g. 'weight'\\)"):
        load_weights(model, weights, "bad.pt")


def test_nan_from_a_method_is_an_error_not_a_number(shared_data):
    cfg = load_config(REPO / "configs" / "bicubic.yaml")
    data = load_datasets(cfg.test.datasets[:1], 1)
    with pytest.raises(DataError, match="gave NaN or infinity on Set5/"):
        nan = Row("broken", lambda lr, s, d: Output(torch.full((1, 3, lr.shape[-2] * s, lr.shape[-1] * s), float("nan"))))
        evaluate(nan, data, cfg.test, torch.device("cpu"))


def test_unreadable_checkpoints_say_what_is_wrong(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "notes.pt").write_text("learning rate 1e-4, 500k iterations\n")
    with pytest.raises(UserError, match="empty.pt: not a readable checkpoint \\(the file is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(UserError, match="notes.pt: not a readable checkpoint \\(not a PyTorch file: it starts with "
                                        "b'lear'"):
        load_checkpoint(tmp_path / "notes.pt")


# --------------------------------------------------------------------------- zeroshot.py
def test_zeroshot_checks_its_output_before_the_work(tmp_path):
    image = write_png(tmp_path / "lr.png", (np.random.default_rng(0).random((24, 24, 3)) * 255).astype(np.uint8))
    original = image.read_bytes()
    (tmp_path / "a_file").write_text("x")
    cases = [(image, "is an input of this command"), (tmp_path / "sr.txt", "unknown file type '.txt'"),
             (tmp_path / "a_file" / "sr.png", "a_file is a file, not a folder"), (tmp_path, "is a folder")]
    for out, message in cases:
        result = run_inline("zeroshot.py", "--checkpoint", MZSR_WEIGHTS, "--image", image, "--kernel", "gd_2.0",
                            "--out", out, "--overwrite")
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert image.read_bytes() == original
    (tmp_path / "sr.png").write_bytes(b"earlier result")
    result = run_inline("zeroshot.py", "--checkpoint", MZSR_WEIGHTS, "--image", image, "--kernel", "gd_2.0",
                        "--out", tmp_path / "sr.png")
    assert result.returncode == 2 and "exists; pass --overwrite" in result.stderr
    assert (tmp_path / "sr.png").read_bytes() == b"earlier result"


def test_zeroshot_never_writes_a_diverged_image(tmp_path):
    image = write_png(tmp_path / "lr.png", (np.random.default_rng(0).random((24, 24, 3)) * 255).astype(np.uint8))
    for lrs in ("nan", "inf", "-1"):
        bad = run_inline("zeroshot.py", "--checkpoint", MZSR_WEIGHTS, "--image", image, "--kernel", "gd_2.0",
                         "--lrs", lrs, "--out", tmp_path / "sr.png")
        assert bad.returncode == 2 and "--lrs finite numbers > 0" in bad.stderr, bad.stderr
    for lrs in ("1e6", "3"):  # NaN, and a finite loss grown 10^5-fold (plain SGD: backtracking would undo them)
        diverged = run_inline("zeroshot.py", "--checkpoint", MZSR_WEIGHTS, "--image", image, "--kernel", "gd_2.0",
                              "--steps", 3, "--lrs", lrs, "--no-backtrack", "--out", tmp_path / "sr.png")
        assert diverged.returncode == 2 and "the adaptation diverged (L1 on the image's own son pair went from " \
            in diverged.stderr and "nothing written" in diverged.stderr, diverged.stderr
        assert "Traceback" not in diverged.stderr and not (tmp_path / "sr.png").exists()
    # backtracking (what the shipped weights recommend) undoes every such step: the unadapted network's image
    undone = run_inline("zeroshot.py", "--checkpoint", MZSR_WEIGHTS, "--image", image, "--kernel", "gd_2.0",
                        "--steps", 3, "--lrs", "1e6", "--out", tmp_path / "undone.png")
    unadapted = run_inline("zeroshot.py", "--checkpoint", MZSR_WEIGHTS, "--image", image, "--kernel", "gd_2.0",
                           "--steps", 0, "--out", tmp_path / "unadapted.png")
    assert undone.returncode == 0 and "backtracking" in undone.stdout and unadapted.returncode == 0
    assert np.array_equal(load_image(tmp_path / "undone.png"), load_image(tmp_path / "unadapted.png"))


def test_zeroshot_shows_progress_and_ctrl_c_is_one_line(tmp_path, monkeypatch):
    image = write_png(tmp_path / "lr.png", (np.random.default_rng(0).random((24, 24, 3)) * 255).astype(np.uint8))
    args = ["--checkpoint", MZSR_WEIGHTS, "--image", image, "--kernel", "gd_2.0", "--steps", "3"]
    import srlab.mzsr.methods
    import srlab.mzsr.zeroshot

    monkeypatch.setattr(srlab.mzsr.zeroshot, "PROGRESS_AFTER_S", 0)  # a long adaptation, as far as the bar knows
    done = run_inline("zeroshot.py", *args, "--out", tmp_path / "sr.png")
    assert done.returncode == 0 and "adapting:" in done.stderr and "/3 [" in done.stderr

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(srlab.mzsr.methods, "adapt_to_image", interrupted)
    stopped = run_inline("zeroshot.py", *args, "--out", tmp_path / "again.png")
    assert stopped.returncode == 130
    assert stopped.stderr.strip().splitlines()[-1] == "interrupted (Ctrl-C): nothing was written"
    assert not (tmp_path / "again.png").exists()


def test_ctrl_c_in_test_script_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import srlab.commands.test

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(srlab.commands.test, "evaluate", interrupted)
    hr = write_png(tmp_path / "hr" / "a.png", np.zeros((16, 16, 3), np.uint8)).parent
    stopped = run_inline("test.py", "--config", REPO / "configs" / "bicubic.yaml", "--dataset", f"mine={hr}",
                         "--out", tmp_path / "out")
    assert stopped.returncode == 130
    assert stopped.stderr.strip() == "interrupted (Ctrl-C): results.json was not written (it is written when every " \
                                     "row is done)"
    assert not (tmp_path / "out" / "results.json").exists()


def test_prepare_classsr_refuses_an_existing_split(tmp_path):
    split = tmp_path / "split.json"
    split.write_text("{}")
    result = run_inline("prepare_classsr.py", "--config", REPO / "configs" / "classsr" / "msrresnet_o_x4_cpu.yaml",
                        "--checkpoint", REPO / "weights" / "classsr" / "msrresnet_o_x4_cpu.pt", "--out", split)
    assert result.returncode == 2 and "exists; pass --overwrite" in result.stderr
    assert split.read_text() == "{}"


def test_model_and_opt_errors_name_where_the_value_came_from(tiny, tmp_path):
    result = run_inline("train.py", "--config", tiny.path, "--out", tmp_path / "run", "--opt", "model.channels=0")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--opt model.channels=0" in result.stderr and "model.channels" in result.stderr
    assert not (tmp_path / "run").exists()
