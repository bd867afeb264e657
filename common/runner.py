"""The one training loop, shared by every method.

Read ``train`` top to bottom: set up the device (and DDP under ``torchrun``), build the network,
optimiser, scheduler, EMA and AMP scaler, resume if asked, then iterate:

    HR patches (loader workers) -> device -> method.training_batch(hr, iteration) -> method.loss
    -> backward -> clip -> optimiser step -> scheduler step -> EMA update
    -> every N: log / checkpoint / validate

Iteration ``i``'s batch is a pure function of ``(seed, i)``, of which each of K processes takes its
K-th share (see ``srlab.data.PatchSampler``), and the scheduler is a function of the iteration, so
resuming from a checkpoint continues exactly where the uninterrupted run would be, and K processes
train what one would (to float rounding). A non-finite loss stops the run before anything is saved
(the last good checkpoint stays); Ctrl-C or SIGTERM finishes the current iteration, saves, and
exits; a dead data-loader worker saves and stops with one line.

Before the run folder is touched, everything is checked: the folder (``srlab.rundir``: no run
is overwritten without ``--overwrite``, one run per folder), the checkpoint to resume and its
config (``srlab.resume``), the network against the scales, the training images and every
validation image's header.

The loop's parts live by job: ``srlab.distributed`` (the processes under torchrun),
``srlab.optim`` (optimiser, schedule, clipping, EMA), ``srlab.stopping`` (stop signals, dead
workers, full disks) and ``srlab.evaluate.Validator`` (validation and its pictures). This module
keeps the loop, one training step, and the run folder's start.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import torch
from torch import nn
from torch.utils.data import DataLoader

from srlab import __version__
from srlab.card import NetworkCard
from srlab.checkpoint import (
    check_rng_state,
    load_checkpoint,
    load_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from srlab.config import Config, save_config, to_dict
from srlab.data import PatchSampler, resolve_files
from srlab.device import cpu_bf16_units, resolve_device, usable_cpus
from srlab.distributed import (
    Distributed,
    any_rank,
    average_gradients_,
    barrier,
    check_shares,
    on_main,
    parallel_model,
    setup_distributed,
)
from srlab.errors import ConfigError, UserError
from srlab.evaluate import Record, Validator
from srlab.method import Method, build_card, check_scales
from srlab.optim import EMA, apply_optimizer_config, clip_gradients_, make_optimizer, make_scheduler, weights_nonfinite
from srlab.provenance import provenance, record_start
from srlab.resume import config_changes, training_left
from srlab.rundir import RunFolder
from srlab.stopping import (
    DISK_ERRORS,
    Interrupted,
    TrainingStopped,
    ignore_sigterm,
    quiet_disk_errors_in_threads,
    stop_requests,
    worker_died,
)


# --------------------------------------------------------------------------- the loop
def train(method: Method, cfg: Config, out_dir: Path, resume: str | None = None,
          overwrite: bool = False) -> list[Record]:
    """Train ``method`` as ``cfg`` says; returns the final validation records (main process).

    ``resume``: ``"auto"`` (the folder's ``last.pt``, if any) or a checkpoint path. ``overwrite``:
    start over in a folder that holds a run. Everything is checked before the folder is touched.
    """
    t = cfg.train
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    ddp = setup_distributed(device)
    check_shares(t.batch_size, ddp.world_size, method.batch_group)
    if t.num_workers > 4 * usable_cpus():  # PyTorch itself warns above 1 per CPU
        raise ConfigError(f"train.num_workers: {t.num_workers} data-loader processes for {usable_cpus()} CPUs; "
                          f"more than 4 per CPU only costs memory. Use --opt train.num_workers={usable_cpus()}")
    use_amp = t.amp != "off" and (device.type == "cuda" or (t.amp == "bf16" and cpu_bf16_units() is not None))
    amp_dtype = torch.bfloat16 if t.amp == "bf16" else torch.float16
    autocast = functools.partial(torch.autocast, device.type, amp_dtype, enabled=use_amp)

    # ---- every check before anything is written: the folder, the checkpoint, the data
    run = RunFolder(out_dir)
    on_main(ddp, lambda: run.check_start(resume, overwrite))  # rank 0 alone: the others may lag behind its writes
    resumed = _read_resume(run, resume, cfg, method)
    start, best = (resumed.iteration, resumed.best) if resumed else (0, -math.inf)
    if resumed and not training_left(start, t.total_iters, str(resumed.path)):
        if ddp.is_main:  # a requeued job of a finished run: nothing to do, and no error
            print(f"{resumed.path}: the run is finished (iteration {start} of {t.total_iters}); nothing to do. "
                  f"To train longer, raise train.total_iters")
        return []

    torch.manual_seed(cfg.seed)
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
    model = method.build_model().to(device, memory_format=memory_format)
    check_scales(model, cfg.val.scales, "val.scales")
    files = [f for spec in t.datasets for f in resolve_files(spec.name, spec.hr, "train")]
    patches = PatchSampler(files, method.hr_patch_size, t.batch_size, cfg.seed, t.augment, t.total_iters,
                           regions=method.training_regions(files), rank=ddp.rank, world_size=ddp.world_size)
    validator = Validator(method, cfg.val, device, autocast)
    # Rank 0 alone validates: it decodes every image now (validation reuses them), not at the first validation.
    on_main(ddp, validator.load)

    optimizer, scaler, scheduler, ema = _optimisation(model, cfg, device, resumed)
    card = build_card(method, model, {"trained_by": f"srlab {__version__} train", "config_name": cfg.name})
    checkpoints = _Checkpoints(run.checkpoints, model, optimizer, scaler, ema, cfg, card, method.other_weights())

    log = Log()  # silent until the main process opens the folder's log.txt and tb/
    iteration, updating = start, False
    with _holding_the_folder(run, ddp, log):
        on_main(ddp, lambda: _take_folder(run, resume, overwrite, resumed))  # ---- the folder is ours from here on
        if ddp.is_main:
            _start_in_folder(run, cfg, device, resume, overwrite, resumed, log)

        average_by_hand = ddp.world_size > 1 and method.gradient_sync == "all_reduce"
        train_model = parallel_model(model, ddp, device, average_by_hand)
        if t.compile:
            train_model = torch.compile(train_model)
        loader = _loader(patches, start, cfg, device)
        nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        records: list[Record] = []
        model.train()
        bar = _progress_bar(t.total_iters, start, ddp.is_main)
        log(f"training {method.name} on {device} x{ddp.world_size} for {t.total_iters} iterations "
            f"({len(patches.images)} images, {sum(p.numel() for p in model.parameters()):,} parameters) -> {out_dir}")
        speed = _Speed(start)
        with stop_requests() as stop_signal, quiet_disk_errors_in_threads(), contextlib.closing(bar):
            try:
                for hr in speed.timed(loader):
                    hr = hr.to(device, non_blocking=True)
                    losses = _backward(method, train_model, hr, iteration, optimizer, scaler, t.channels_last, autocast)
                    if average_by_hand:
                        average_gradients_(model, ddp.world_size)
                    clip_gradients_(model, optimizer, scaler, t.grad_clip_norm, t.grad_clip_theta)
                    updating = True  # the weights change from here until the iteration is counted
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    if ema is not None:
                        ema.update(model)
                    iteration += 1
                    updating = False
                    # Checked lazily (no GPU sync per step); nothing is saved without this check.
                    nonfinite |= ~torch.isfinite(losses["loss"].detach())
                    bar.update(1)

                    last = iteration == t.total_iters
                    due_log = iteration % t.log_every == 0 or last
                    due_ckpt = iteration % t.checkpoint_every == 0 or last
                    due_val = (t.val_every and iteration % t.val_every == 0) or last
                    due = due_log or due_ckpt or due_val
                    # Every process checks at the same iterations, so collectives line up across ranks
                    # (every 10 iterations at least, well inside SLURM's 30 s between SIGTERM and SIGKILL).
                    stopping = (ddp.world_size == 1 or iteration % 10 == 0 or due) and any_rank(stop_signal, ddp)
                    if (due or stopping) and any_rank(nonfinite | weights_nonfinite(model), ddp):
                        raise _nonfinite_stop(run, iteration, log)
                    if due_log and ddp.is_main:
                        _log_progress(iteration, t.total_iters, losses, scheduler.get_last_lr()[0], speed, bar, log)
                    if due_val and ddp.is_main and not stopping:  # a stop saves first; validation can wait
                        records = validator(ema.model if ema else model, iteration, log.writer, log)
                        _warn_below_bicubic(records, iteration, log)
                        if records and records[0].psnr_y > best:
                            best = records[0].psnr_y
                            checkpoints.save("best.pt", iteration, best)
                    if (due_ckpt or stopping) and ddp.is_main:
                        checkpoints.save("last.pt", iteration, best)
                    if due_val or due_ckpt or stopping:
                        barrier(ddp)  # the others wait for rank 0's save: torchrun ends them all when one exits
                    if stopping:
                        signum = int(stop_signal.item()) or signal.SIGTERM  # 0 here: another rank's signal
                        log(f"stopped by {signal.Signals(signum).name} at iteration {iteration}; saved "
                            f"{run.checkpoints / 'last.pt'} (continue with --resume auto)")
                        raise Interrupted(signum)
            except RuntimeError as exc:
                if not worker_died(exc):
                    raise
                # Saved only between two updates, and only finite weights.
                safe = ddp.is_main and not updating and not (nonfinite | weights_nonfinite(model)).item()
                saved = checkpoints.save("last.pt", iteration, best) if safe else None
                raise _worker_death(exc, iteration, saved, ddp, int(stop_signal.item()), log) from None
    return records


# --------------------------------------------------------------------------- resume, optimiser, checkpoints
@dataclass
class _Resume:
    """The checkpoint a run continues from, read and checked before anything is written."""

    path: Path
    state: dict
    stamp: tuple[int, int] | None  # to notice another run saving it while this one starts
    changes: list[str]  # the config changes applied from its iteration on, for the log

    @property
    def iteration(self) -> int:
        return int(self.state["iteration"])

    @property
    def best(self) -> float:
        return float(self.state.get("best", -math.inf))


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


def _read_resume(run: RunFolder, resume: str | None, cfg: Config, method: Method) -> _Resume | None:
    """The checkpoint ``resume`` names (``"auto"``: the folder's ``last.pt``, if there is one),
    checked against ``cfg``; None: start at iteration 0."""
    path = run.checkpoints / "last.pt" if resume == "auto" else (Path(resume) if resume else None)
    if path is None or (resume == "auto" and not path.exists()):
        return None
    stamp = _stamp(path) if path.is_file() else None
    state = load_checkpoint(path)  # on CPU: RNG states must stay there
    missing = [k for k in ("model", "optimizer", "rng", "iteration") if k not in state]
    if missing:
        raise UserError(f"{path}: not a training checkpoint (no {', '.join(missing)}); "
                        "to start from these weights, train a new run")
    _check_resume_state(state, path)
    changes = []
    if isinstance(state.get("config"), dict):
        changes = config_changes(state["config"], cfg, str(path), method.Options, method.resume_free_options)
    return _Resume(path, state, stamp, changes)


def _check_resume_state(state: dict, path: Path) -> None:
    """The counters and RNG state of a checkpoint to resume, checked before anything is written (a
    crafted or damaged file would otherwise start at iteration -5 or fail mid-start)."""
    iteration = state["iteration"]
    if type(iteration) is not int or iteration < 0:
        raise UserError(f"{path}: its iteration = {iteration!r}; a whole number >= 0 is allowed")
    best = state.get("best", -math.inf)  # -inf: no validation yet
    if not isinstance(best, (int, float)) or isinstance(best, bool) or math.isnan(best) or best == math.inf:
        raise UserError(f"{path}: its best = {best!r}; a number (the best validation PSNR_Y) or -inf is allowed")
    check_rng_state(state["rng"], path)


def _optimisation(model: nn.Module, cfg: Config, device: torch.device, resumed: _Resume | None):
    """The optimiser, AMP's loss scaler (fp16 on CUDA only), the lr schedule and the EMA of the
    weights (None without ``train.ema_decay``), each with the checkpoint's state when resuming. The
    optimiser's hyperparameters and the lr schedule are the config's; a changed lr goes into
    ``resumed.changes``, for the log."""
    optimizer = make_optimizer(model.parameters(), cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == "fp16" and device.type == "cuda")
    start = resumed.iteration if resumed else 0
    if resumed:
        state, path = resumed.state, resumed.path
        load_weights(model, state["model"], path)
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as exc:
            raise UserError(f"{path}: optimizer state does not fit train.optimizer ({exc})") from None
        saved_lr = optimizer.param_groups[0]["lr"]
        apply_optimizer_config(optimizer, cfg)
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    scheduler = make_scheduler(optimizer, cfg, start)
    if resumed and scheduler.get_last_lr()[0] != saved_lr:
        new_lr = scheduler.get_last_lr()[0]
        resumed.changes.append(f"lr at iteration {start}: {saved_lr:.6g} -> {new_lr:.6g} (the schedule in force)")
    ema = EMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None  # starts from the (resumed) weights
    if ema is not None and resumed and resumed.state.get("ema") is not None:
        load_weights(ema.model, resumed.state["ema"], resumed.path)
    return optimizer, scaler, scheduler, ema


class _Checkpoints:
    """Saves what an exact resume needs (on the main process): the weights, optimiser, EMA, AMP
    scaler and RNG states, the iteration, the best validation score, the config and the network's
    card (how to build and call it, for srlab upscale, test, export, zeroshot and the API)."""

    def __init__(self, folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, ema: EMA | None, cfg: Config, card: NetworkCard,
                 other_weights: dict):
        self.folder, self.model, self.optimizer, self.scaler, self.ema = folder, model, optimizer, scaler, ema
        self.cfg, self.card, self.other_weights = cfg, card, other_weights

    def save(self, name: str, iteration: int, best: float) -> Path:
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.model.state_dict() if self.ema else None, "scaler": self.scaler.state_dict(),
            "rng": rng_state(), "iteration": iteration, "best": best, "config": to_dict(self.cfg),
            "card": self.card.to_dict(),
        }
        if self.other_weights:  # MZSR: its stage-1 weights (Method.other_weights)
            state["other_weights"] = self.other_weights
        save_checkpoint(state, self.folder / name)
        return self.folder / name


# --------------------------------------------------------------------------- the run folder
class Log:
    """What the run reports, on the main process: lines printed and appended to ``log.txt``, and
    numbers and pictures in TensorBoard (``writer``, into ``tb/``). Until ``open`` it says nothing
    (the other processes' logs stay so)."""

    def __init__(self):
        self.path: Path | None = None
        self.writer = None

    def open(self, folder: Path) -> None:
        self.path = folder / "log.txt"
        from torch.utils.tensorboard import SummaryWriter  # slow to import: only once a run starts

        self.writer = SummaryWriter(str(folder / "tb"))

    def __call__(self, message: str, echo: bool = True) -> None:
        """``echo=False``: log.txt only, for a line the command prints itself (an error)."""
        if self.path is None:
            return
        from tqdm import tqdm

        if echo:
            tqdm.write(message)
        try:
            with open(self.path, "a") as f:
                f.write(message + "\n")
        except OSError as exc:
            raise UserError(f"cannot write {self.path} ({exc.strerror or exc}); the last checkpoint is kept") from None

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:  # the same full or read-only disk: already reported
                pass


def _take_folder(run: RunFolder, resume: str | None, overwrite: bool, resumed: _Resume | None) -> None:
    """Lock the run folder (on the main process), and check again under the lock: another run may
    have finished or saved while this one loaded its data."""
    run.lock()
    try:
        run.check_start(resume, overwrite)
        if resumed is not None and resumed.stamp is not None and _stamp(resumed.path) != resumed.stamp:
            raise UserError(f"{resumed.path} changed while this run was starting (another run saved it); "
                            f"start again")
    except UserError:
        run.unlock()
        raise


def _start_in_folder(run: RunFolder, cfg: Config, device: torch.device, resume: str | None, overwrite: bool,
                     resumed: _Resume | None, log: Log) -> None:
    """The main process's first writes, once the folder is locked: clear it (``overwrite``), remove
    what interrupted saves left, write config.yaml and provenance.json, open the log and TensorBoard,
    and log what was found and done."""
    removed = run.clear() if overwrite else []
    orphans = run.remove_orphans()
    save_config(cfg, run.path / "config.yaml")  # the config in force: resumed changes included
    record_start(run.path / "provenance.json", provenance(to_dict(cfg), resumed.path if resumed else None, device),
                 fresh=overwrite)
    log.open(run.path)
    if run.took_over:
        log(f"note: took over the run folder's lock, left by a run that ended without releasing it "
            f"({run.took_over})")
    if removed:
        log(f"--overwrite: removed {', '.join(removed)} of the earlier run in {run.path}")
    if orphans:
        names = ", ".join(p.name for p in orphans)
        log(f"removed {len(orphans)} temporary file(s) of interrupted saves: {names}")
    if resumed:
        log(f"resumed from {resumed.path} at iteration {resumed.iteration}")
        for change in resumed.changes:
            log(f"resume: config change applied from iteration {resumed.iteration}: {change}")
    elif resume == "auto":
        log(f"--resume auto: no checkpoint in {run.checkpoints}; starting at iteration 0")
    if cfg.train.amp == "bf16" and device.type == "cpu":
        units = cpu_bf16_units()
        log(f"bf16 autocast on the CPU's {units} units" if units else "note: train.amp=bf16 is ignored on this CPU: it "
            "has no bf16 units (AVX512-BF16 or AMX), and emulated bf16 trains slower than fp32")
    elif cfg.train.amp != "off" and device.type != "cuda":
        log(f"note: train.amp={cfg.train.amp} is ignored on {device.type} (fp16: CUDA only)")


@contextlib.contextmanager
def _holding_the_folder(run: RunFolder, ddp: Distributed, log: Log):
    """However the run ends, the folder's lock is released and the log closed; a full or read-only
    disk under the log or TensorBoard is one line."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        # The log or TensorBoard could not write (checkpoints say so themselves, see atomic_write).
        raise UserError(f"cannot write the run's files in {run.path} ({exc.strerror}); the last checkpoint "
                        f"is kept") from None
    finally:
        if ddp.is_main:
            run.unlock()  # first: nothing below may keep the folder locked
        log.close()


# --------------------------------------------------------------------------- in the loop
def _loader(patches: PatchSampler, start: int, cfg: Config, device: torch.device) -> DataLoader:
    """Iterations ``start`` to the end, each one batch of HR patches."""
    t = cfg.train
    # Its own generator: starting the loader must not draw from the global RNG (exact resume).
    return DataLoader(patches, batch_size=None, sampler=range(start, t.total_iters), num_workers=t.num_workers,
                      pin_memory=device.type == "cuda", prefetch_factor=4 if t.num_workers else None,
                      generator=torch.Generator().manual_seed(cfg.seed), worker_init_fn=ignore_sigterm)


def _progress_bar(total: int, start: int, show: bool):
    from tqdm import tqdm

    # Redrawn at most every second on a terminal, every 30 s into a file (a SLURM job's output).
    return tqdm(total=total, initial=start, disable=not show, dynamic_ncols=True,
                mininterval=1 if sys.stderr.isatty() else 30)


class _Speed:
    """Speed over each log interval: iterations per second, and the share of the time the loop
    waited for the loader's next batch (the data path should not be the bottleneck)."""

    def __init__(self, iteration: int):
        self.restart(iteration)

    def restart(self, iteration: int) -> None:
        self.start, self.iteration, self.waited = time.perf_counter(), iteration, 0.0

    def timed(self, loader):
        """The loader's batches, timing the waits for them."""
        ready = time.perf_counter()
        for batch in loader:
            self.waited += time.perf_counter() - ready
            yield batch
            ready = time.perf_counter()

    def measure(self, iteration: int) -> tuple[float, float]:
        """Iterations per second and the share of the time spent waiting, since the last restart."""
        seconds = time.perf_counter() - self.start
        return (iteration - self.iteration) / seconds, self.waited / seconds


def _backward(method: Method, train_model: nn.Module, hr: torch.Tensor, iteration: int,
              optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, channels_last: bool,
              autocast: Callable[[], ContextManager]) -> dict[str, torch.Tensor]:
    """The method's batch and losses of iteration ``iteration``, and the gradients of its
    ``"loss"`` (scaled by AMP's scaler, if on). Returns the losses."""
    batch = method.training_batch(hr, iteration)
    if channels_last:
        batch = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}
    with autocast():
        losses = method.loss(train_model, batch)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(losses["loss"]).backward()
    return losses


def _log_progress(iteration: int, total_iters: int, losses: dict[str, torch.Tensor], lr: float, speed: _Speed,
                  bar, log: Log) -> None:
    """The losses, lr and speed: to TensorBoard, the progress bar and the log."""
    writer = log.writer
    values = {k: v.item() for k, v in losses.items()}
    for k, v in values.items():
        writer.add_scalar(f"train/{k}", v, iteration)
    writer.add_scalar("train/lr", lr, iteration)
    bar.set_postfix(loss=f"{values['loss']:.4g}", lr=f"{lr:.2e}")
    rate, data_wait = speed.measure(iteration)
    writer.add_scalar("train/iterations_per_second", rate, iteration)
    writer.add_scalar("train/data_wait_share", data_wait, iteration)
    log(f"[{iteration}/{total_iters}] " + " ".join(f"{k}={v:.5g}" for k, v in values.items())
        + f" lr={lr:.3e} {rate:.2f} it/s data_wait={100 * data_wait:.0f}%")
    speed.restart(iteration)


# A trained network that falls this far below plain bicubic interpolation on its own validation set
# has almost surely diverged into a finite but useless state (Adam at lr 1e6: 27 dB below bicubic).
BELOW_BICUBIC_DB = 3.0


def _warn_below_bicubic(records: list[Record], iteration: int, log: Log) -> None:
    """One loud line (console and log.txt) per validation whose worst row is far below its bicubic
    row; the run goes on: the user decides, and an early validation may yet recover."""
    if not records:
        return
    worst = min(records, key=lambda r: r.psnr_y - r.bicubic_psnr_y)
    gap = worst.bicubic_psnr_y - worst.psnr_y
    if gap > BELOW_BICUBIC_DB:
        log(f"WARNING: [{iteration}] validation: {worst.method} is {gap:.1f} dB below bicubic on {worst.dataset} "
            f"x{worst.scale} {worst.degradation} (PSNR_Y {worst.psnr_y:.2f} vs {worst.bicubic_psnr_y:.2f}); the "
            f"training has likely diverged (too high a train.optimizer.lr?)")


def _nonfinite_stop(run: RunFolder, iteration: int, log: Log) -> TrainingStopped:
    """The stop of a non-finite loss, logged too (log.txt keeps why the run ended). The last good
    checkpoint is named only when there is one: a run can diverge before its first save."""
    last = run.checkpoints / "last.pt"
    kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written"
    message = (f"non-finite loss before iteration {iteration}; stopped, {kept} (try a lower train.optimizer.lr "
               f"or train.grad_clip_norm)")
    log(message, echo=False)  # the command prints it, as the error it ends with
    return TrainingStopped(message)


def _worker_death(exc: RuntimeError, iteration: int, saved: Path | None, ddp: Distributed, signum: int,
                  log: Log) -> Exception:
    """What to stop with when a data-loader worker died: ``Interrupted`` if a stop signal came too
    (it reached a worker as well: still a stop), else one line saying what was saved."""
    if saved is not None:
        what = f"saved {saved} at iteration {iteration}"
    elif not ddp.is_main:
        what = "not saved here: the main process writes the checkpoints"
    else:
        what = "nothing saved: it struck while the weights were being updated, or they were not finite"
    if signum:
        log(f"stopped by {signal.Signals(signum).name} at iteration {iteration}; {what}")
        return Interrupted(signum)
    return UserError(f"a data-loader worker died ({str(exc).strip().splitlines()[0]}), usually killed by "
                     f"the out-of-memory killer; {what}. Continue with --resume auto; fewer "
                     f"train.num_workers or a smaller train.batch_size use less memory")
