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
"""
from __future__ import annotations

import bisect
import contextlib
import copy
import errno
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from srlab.checkpoint import load_checkpoint, load_weights, rng_state, save_checkpoint, set_rng_state
from srlab.config import Config, SchedulerConfig, save_config, to_dict
from srlab.data import PatchSampler, resolve_files
from srlab.device import resolve_device, usable_cpus
from srlab.errors import ConfigError, UserError
from srlab.evaluate import NonFiniteOutput, Record, collect_visuals, evaluate, format_table, load_datasets, lr_image
from srlab.method import Method, check_scales, describe, inference_model
from srlab.provenance import provenance, record_start
from srlab.resume import config_changes, training_left
from srlab.rundir import RunFolder


class TrainingStopped(UserError):
    """The run cannot go on (non-finite loss); the last good checkpoint is kept."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: a checkpoint was saved; the CLI exits with 128 + the signal number."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(f"stopped by signal {signum}")
        self.signum = int(signum)


# --------------------------------------------------------------------------- devices and DDP
@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0






def setup_distributed(device: torch.device) -> Distributed:
    """Join the process group when started by ``torchrun`` (which sets WORLD_SIZE and RANK)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL starts: one GPU per process
    if not dist.is_initialized():
        # Rank 0 validates alone while the others wait: allow long validations.
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=2))
    return Distributed(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def check_shares(batch_size: int, world_size: int, group: int) -> None:
    """Each process must get an equal share of the batch, made of whole groups (MZSR's tasks)."""
    if batch_size % (world_size * group):
        what = f"equal shares of whole groups of {group} patches (one task each)" if group > 1 else "equal shares"
        raise UserError(f"train.batch_size: {batch_size} does not split into {world_size} processes' {what}")


def broadcast_weights(model: nn.Module) -> None:
    """Rank 0's parameters and buffers to every process."""
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)


def average_gradients_(model: nn.Module, world_size: int) -> None:
    """Every parameter's ``.grad`` becomes the mean over the processes: one all_reduce of all the
    gradients flattened into one tensor (a gradient no process made stays ``None``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    made = torch.tensor([p.grad is not None for p in params], device=params[0].device)
    dist.all_reduce(made, op=dist.ReduceOp.MAX)  # gloo has no logical or; MAX of 0/1 is one
    params = [p for p, m in zip(params, made.tolist()) if m]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)  # a sum: gloo has no average
    flat /= world_size
    offset = 0
    for p in params:
        mean = flat[offset : offset + p.numel()].view(p.shape)
        if p.grad is None:
            p.grad = torch.empty_like(p)  # the parameter's memory format, as autograd would make it
        p.grad.copy_(mean)
        offset += p.numel()


def any_rank(flag: torch.Tensor, ddp: Distributed) -> bool:
    """True if ``flag`` is set on any process (so every process takes the same branch)."""
    if ddp.world_size > 1:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        flag = flag.to(device=device, dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def on_main(ddp: Distributed, action) -> None:
    """Run ``action`` on the main process only; if it fails, every process stops (none is left
    waiting in a collective for a main process that is gone)."""
    failure = None
    if ddp.is_main:
        try:
            action()
        except Exception as exc:
            failure = exc
    if any_rank(torch.tensor(failure is not None), ddp):
        raise failure or UserError("stopped: the main process could not start (its error says why)")


# --------------------------------------------------------------------------- optimisation
def make_optimizer(params, cfg: Config) -> torch.optim.Optimizer:
    o = cfg.train.optimizer
    if o.type == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.type == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def lr_factor(step: int, s: SchedulerConfig, total_iters: int, base_lr: float) -> float:
    """Multiplier of the base lr for the step after ``step`` completed iterations."""
    if step < s.warmup_iters:
        return (step + 1) / s.warmup_iters
    if s.type == "multistep":  # min_lr: a floor (MZSR's stage 1 halves its lr down to 1e-4)
        return max(s.gamma ** bisect.bisect_right(s.milestones, step), s.min_lr / base_lr)
    if s.type == "cosine":
        progress = (step - s.warmup_iters) / max(1, total_iters - s.warmup_iters)
        floor = s.min_lr / base_lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def clip_adjustable_(params, theta: float, lr: float) -> None:
    """VDSR's adjustable gradient clipping (Kim et al. 2016): each element to [-θ/lr, θ/lr]."""
    nn.utils.clip_grad_value_(params, theta / lr)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: Config, start: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """The lr schedule of ``cfg`` positioned after ``start`` completed iterations.

    The schedule is a function of the iteration and the config, so a resumed run rebuilds it
    rather than loading it: a changed lr or schedule applies consistently (see srlab.resume).
    """
    s, total, base = cfg.train.scheduler, cfg.train.total_iters, cfg.train.optimizer.lr
    for group in optimizer.param_groups:
        group["initial_lr"] = base
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, s, total, base),
                                             last_epoch=start - 1)


def apply_optimizer_config(optimizer: torch.optim.Optimizer, cfg: Config) -> None:
    """After loading a checkpoint's optimizer state: the hyperparameters are the config's."""
    o = cfg.train.optimizer
    for group in optimizer.param_groups:
        group["weight_decay"] = o.weight_decay
        if "betas" in group:
            group["betas"] = tuple(o.betas)
        if "momentum" in group:
            group["momentum"] = o.momentum




class EMA:
    """Exponential moving average of the weights (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


def weights_nonfinite(model: nn.Module) -> torch.Tensor:
    """True if any weight is NaN/inf (a finite loss can still come with non-finite gradients)."""
    flags = [~torch.isfinite(p.detach()).all() for p in model.parameters()]
    return torch.stack(flags).any() if flags else torch.zeros((), dtype=torch.bool)


# --------------------------------------------------------------------------- logging
class Log:
    """Prints on the main process and appends the same lines to ``log.txt``."""

    def __init__(self, path: Path | None):
        self.path = path

    def __call__(self, message: str) -> None:
        if self.path is None:
            return
        from tqdm import tqdm

        tqdm.write(message)
        try:
            with open(self.path, "a") as f:
                f.write(message + "\n")
        except OSError as exc:
            raise UserError(f"cannot write {self.path} ({exc.strerror or exc}); the last checkpoint is kept") from None


def _example_grid(method: Method, model, data, scale: int, degradation_name: str, device: torch.device,
                  size: int = 192) -> torch.Tensor:
    """LR (nearest-upscaled) | SR | HR of the centre crop of the first validation image."""
    from srlab.data import modcrop, to_tensor
    from srlab.degradation import named_degradation
    from srlab.metrics import quantize

    img = next(iter(data.images(scale)))
    hr = to_tensor(modcrop(img.hr, scale)).to(device)
    degradation = named_degradation(degradation_name)  # a blind benchmark's stays hidden from the method
    lr = lr_image(img, hr, scale, degradation_name, degradation.for_image(f"{data.name}/{img.name}", scale))
    sr = method.infer(model, lr, scale, degradation)
    sr = quantize((sr[0] if isinstance(sr, tuple) else sr).float())  # (SR, extras) from some methods
    lr_up = torch.nn.functional.interpolate(lr, scale_factor=scale, mode="nearest")
    h, w = hr.shape[-2:]
    c = min(size, h, w) // scale * scale
    top, left = (h - c) // 2 // scale * scale, (w - c) // 2 // scale * scale
    crops = [t[0, :, top : top + c, left : left + c] for t in (lr_up, sr, hr)]
    return torch.cat(crops, dim=-1).cpu()


# --------------------------------------------------------------------------- stopping
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and what SLURM, Docker and systemd send


@contextlib.contextmanager
def stop_requests():
    """Ctrl-C and SIGTERM set the flag this yields (to the signal's number) instead of killing the
    process, so the loop can finish its iteration, save and stop. A second Ctrl-C stops at once; a
    second SIGTERM does not (torchrun forwards the one SLURM sent: a save must not be cut short).
    Outside the main thread (a notebook's worker thread) there are no signals to catch."""
    flag = torch.zeros((), dtype=torch.int32)
    previous = {}

    def request_stop(signum, frame):
        flag.fill_(signum)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, previous[signal.SIGINT])

    if threading.current_thread() is threading.main_thread():
        # A handler installed from C shows as None and cannot be put back: the default then.
        previous = {sig: signal.getsignal(sig) or signal.SIG_DFL for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            signal.signal(sig, request_stop)
            # Restart interrupted system calls: a signal that lands while a rank waits in a gloo or
            # NCCL socket call must not surface there as an error (it crashed a rank mid-collective).
            signal.siginterrupt(sig, False)
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_sigterm(worker_id: int) -> None:
    """Data-loader workers leave SIGTERM to the main process (PyTorch already has them ignore
    Ctrl-C): SLURM and systemd signal the whole process group, and a worker that died of it first
    would turn a clean stop into a failure."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _worker_died(exc: RuntimeError) -> bool:
    """PyTorch's words for a data-loader worker that was killed (the OOM killer's SIGKILL, mostly);
    an exception raised *inside* a worker is a bug and keeps its traceback."""
    message = str(exc)
    return "DataLoader worker" in message and ("killed by signal" in message or "exited unexpectedly" in message)


# A full disk, a quota, a read-only or vanished file system: not the run's fault, and not a bug.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)


@contextlib.contextmanager
def quiet_disk_errors_in_threads():
    """TensorBoard writes from a thread of its own. On a full or read-only disk that thread would
    print a traceback of its own; the loop's next write then fails too and says it in one line."""
    previous = threading.excepthook

    def hook(args):
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in DISK_ERRORS):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


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
    use_amp = t.amp != "off" and device.type == "cuda"
    amp_dtype = torch.bfloat16 if t.amp == "bf16" else torch.float16
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format

    # ---- every check before anything is written: the folder, the checkpoint, the data
    run = RunFolder(out_dir)
    on_main(ddp, lambda: run.check_start(resume, overwrite))  # rank 0 alone: the others may lag behind its writes
    ckpt_dir = run.checkpoints
    resume_path = ckpt_dir / "last.pt" if resume == "auto" else (Path(resume) if resume else None)
    state, changes, start, best = None, [], 0, -math.inf
    if resume_path is not None and (resume != "auto" or resume_path.exists()):
        resume_stamp = _stamp(resume_path) if resume_path.is_file() else None
        state = load_checkpoint(resume_path)  # on CPU: RNG states must stay there
        missing = [k for k in ("model", "optimizer", "rng", "iteration") if k not in state]
        if missing:
            raise UserError(f"{resume_path}: not a training checkpoint (no {', '.join(missing)}); "
                            "to start from these weights, train a new run")
        if isinstance(state.get("config"), dict):
            changes = config_changes(state["config"], cfg, str(resume_path), method.Options,
                                     method.resume_free_options)
        start, best = int(state["iteration"]), float(state["best"])
        if not training_left(start, t.total_iters, str(resume_path)):
            if ddp.is_main:  # a requeued job of a finished run: nothing to do, and no error
                print(f"{resume_path}: the run is finished (iteration {start} of {t.total_iters}); nothing to do. "
                      f"To train longer, raise train.total_iters")
            return []

    torch.manual_seed(cfg.seed)
    model = method.build_model().to(device, memory_format=memory_format)
    check_scales(model, cfg.val.scales, "val.scales")
    files = [f for spec in t.datasets for f in resolve_files(spec.name, spec.hr, "train")]
    patches = PatchSampler(files, method.hr_patch_size, t.batch_size, cfg.seed, t.augment, t.total_iters,
                           regions=method.training_regions(files), rank=ddp.rank, world_size=ddp.world_size)
    # Rank 0 alone validates: it decodes every image now (validation reuses them), not at the first validation.
    val_data = []

    def load_validation() -> None:
        val_data.extend(load_datasets(cfg.val.datasets, cfg.val.max_images))
        for data in val_data:
            data.check(cfg.val.scales, decode=True)

    on_main(ddp, load_validation)

    optimizer = make_optimizer(model.parameters(), cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
    if state is not None:
        load_weights(model, state["model"], resume_path)
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as exc:
            raise UserError(f"{resume_path}: optimizer state does not fit train.optimizer ({exc})") from None
        saved_lr = optimizer.param_groups[0]["lr"]
        apply_optimizer_config(optimizer, cfg)
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    scheduler = make_scheduler(optimizer, cfg, start)
    if state is not None and scheduler.get_last_lr()[0] != saved_lr:
        new_lr = scheduler.get_last_lr()[0]
        changes.append(f"lr at iteration {start}: {saved_lr:.6g} -> {new_lr:.6g} (the schedule in force)")
    ema = EMA(model, t.ema_decay) if t.ema_decay > 0 else None  # starts from the (resumed) weights
    if ema is not None and state is not None and state.get("ema") is not None:
        load_weights(ema.model, state["ema"], resume_path)

    def take_folder() -> None:
        run.lock()
        try:  # again, under the lock: another run may have finished or saved while we loaded data
            run.check_start(resume, overwrite)
            if state is not None and resume_stamp is not None and _stamp(resume_path) != resume_stamp:
                raise UserError(f"{resume_path} changed while this run was starting (another run saved it); "
                                f"start again")
        except UserError:
            run.unlock()
            raise

    network = describe(method, model)  # how to build and call it, for srlab upscale / zeroshot and the API

    def checkpoint(iteration: int) -> dict:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "ema": ema.model.state_dict() if ema else None, "scaler": scaler.state_dict(), "rng": rng_state(),
            "iteration": iteration, "best": best, "config": to_dict(cfg), "network": network,
        }

    log = Log(None)
    writer = None
    iteration, updating = start, False
    try:
        on_main(ddp, take_folder)  # ---- the folder is ours from here on (rank 0 holds the lock)
        if ddp.is_main:
            removed = run.clear() if overwrite else []
            orphans = run.remove_orphans()
            save_config(cfg, out_dir / "config.yaml")  # the config in force: resumed changes included
            started_from = resume_path if state is not None else None
            record_start(out_dir / "provenance.json", provenance(to_dict(cfg), started_from, device))
            log = Log(out_dir / "log.txt")
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out_dir / "tb"))
            if run.took_over:
                log(f"note: took over the run folder's lock, left by a run that ended without releasing it "
                    f"({run.took_over})")
            if removed:
                log(f"--overwrite: removed {', '.join(removed)} of the earlier run in {out_dir}")
            if orphans:
                names = ", ".join(p.name for p in orphans)
                log(f"removed {len(orphans)} temporary file(s) of interrupted saves: {names}")
            if state is not None:
                log(f"resumed from {resume_path} at iteration {start}")
                for change in changes:
                    log(f"resume: config change applied from iteration {start}: {change}")
            elif resume == "auto":
                log(f"--resume auto: no checkpoint in {ckpt_dir}; starting at iteration 0")
        if t.amp != "off" and device.type != "cuda":
            log(f"note: train.amp={t.amp} is ignored on {device.type} (CUDA only)")

        train_model: nn.Module = model
        sync_by_all_reduce = ddp.world_size > 1 and method.gradient_sync == "all_reduce"
        if sync_by_all_reduce:
            broadcast_weights(model)  # what DDP does when it wraps a network: every process starts from rank 0's
        elif ddp.world_size > 1:
            device_ids = [device.index] if device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if t.compile:
            train_model = torch.compile(train_model)

        # Its own generator: starting the loader must not draw from the global RNG (exact resume).
        loader = DataLoader(patches, batch_size=None, sampler=range(start, t.total_iters), num_workers=t.num_workers,
                            pin_memory=device.type == "cuda", prefetch_factor=4 if t.num_workers else None,
                            generator=torch.Generator().manual_seed(cfg.seed), worker_init_fn=_ignore_sigterm)
        eval_model = lambda: ema.model if ema else model  # noqa: E731

        def validate(iteration: int) -> list[Record]:
            net = inference_model(eval_model(), device, cfg.val.channels_last)
            try:
                with torch.autocast(device.type, amp_dtype, enabled=use_amp):
                    records = evaluate(lambda lr, s, d: method.infer(net, lr, s, d), val_data, cfg.val, device,
                                       method.row_name)
            except NonFiniteOutput as exc:  # one diverged validation must not end the training
                log(f"[{iteration}] validation skipped: {exc}")
                return []
            for r in records:
                tag = f"{r.dataset}_x{r.scale}_{r.degradation}"
                writer.add_scalar(f"val/{tag}/psnr_y", r.psnr_y, iteration)
                writer.add_scalar(f"val/{tag}/ssim_y", r.ssim_y, iteration)
            if val_data:
                with torch.autocast(device.type, amp_dtype, enabled=use_amp):
                    grid = _example_grid(method, net, val_data[0], cfg.val.scales[0], cfg.val.degradations[0], device)
                    pictures = collect_visuals(lambda lr, s: method.visuals(net, lr, s), val_data, cfg.val, device)
                writer.add_image("val/lr_sr_hr", grid, iteration)
                for tag, picture in pictures:
                    writer.add_image(f"val/{tag}", picture, iteration)
            log(f"[{iteration}] validation\n{format_table(records)}")
            return records

        nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        records: list[Record] = []
        model.train()
        from tqdm import tqdm

        bar = tqdm(total=t.total_iters, initial=start, disable=not ddp.is_main, dynamic_ncols=True,
                   mininterval=1 if sys.stderr.isatty() else 30)
        log(f"training {method.name} on {device} x{ddp.world_size} for {t.total_iters} iterations "
            f"({len(patches.images)} images, {sum(p.numel() for p in model.parameters()):,} parameters) -> {out_dir}")
        # Speed over each log interval: iterations per second, and the share of the time the loop
        # waited for the loader's next batch (the data path should not be the bottleneck).
        interval_start, interval_iteration, waited = time.perf_counter(), start, 0.0
        with stop_requests() as stop_signal, quiet_disk_errors_in_threads(), contextlib.closing(bar):
            try:
                ready = time.perf_counter()
                for hr in loader:
                    waited += time.perf_counter() - ready
                    hr = hr.to(device, non_blocking=True)
                    batch = method.training_batch(hr, iteration)
                    if t.channels_last:
                        batch = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                                 for k, v in batch.items()}
                    with torch.autocast(device.type, amp_dtype, enabled=use_amp):
                        losses = method.loss(train_model, batch)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(losses["loss"]).backward()
                    if sync_by_all_reduce:
                        average_gradients_(model, ddp.world_size)
                    if t.grad_clip_norm > 0 or t.grad_clip_theta > 0:
                        scaler.unscale_(optimizer)
                        if t.grad_clip_norm > 0:
                            nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip_norm)
                        if t.grad_clip_theta > 0:
                            clip_adjustable_(model.parameters(), t.grad_clip_theta, optimizer.param_groups[0]["lr"])
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
                    # Every process checks at the same iterations, so collectives line up across ranks
                    # (every 10 iterations at least, well inside SLURM's 30 s between SIGTERM and SIGKILL).
                    check_stop = ddp.world_size == 1 or iteration % 10 == 0 or due_log or due_ckpt or due_val
                    stopping = check_stop and any_rank(stop_signal, ddp)
                    due_any = due_log or due_ckpt or due_val or stopping
                    if due_any and any_rank(nonfinite | weights_nonfinite(model), ddp):
                        raise TrainingStopped(
                            f"non-finite loss before iteration {iteration}; stopped. The last good checkpoint is "
                            f"{ckpt_dir / 'last.pt'} (try a lower train.optimizer.lr or train.grad_clip_norm)")
                    if due_log and ddp.is_main:
                        values = {k: v.item() for k, v in losses.items()}
                        lr = scheduler.get_last_lr()[0]
                        for k, v in values.items():
                            writer.add_scalar(f"train/{k}", v, iteration)
                        writer.add_scalar("train/lr", lr, iteration)
                        bar.set_postfix(loss=f"{values['loss']:.4g}", lr=f"{lr:.2e}")
                        seconds = time.perf_counter() - interval_start
                        rate, data_wait = (iteration - interval_iteration) / seconds, waited / seconds
                        writer.add_scalar("train/iterations_per_second", rate, iteration)
                        writer.add_scalar("train/data_wait_share", data_wait, iteration)
                        log(f"[{iteration}/{t.total_iters}] " + " ".join(f"{k}={v:.5g}" for k, v in values.items())
                            + f" lr={lr:.3e} {rate:.2f} it/s data_wait={100 * data_wait:.0f}%")
                        interval_start, interval_iteration, waited = time.perf_counter(), iteration, 0.0
                    if due_val and ddp.is_main and not stopping:  # a stop saves first; validation can wait
                        records = validate(iteration)
                        score = records[0].psnr_y if records else -math.inf
                        if score > best:
                            best = score
                            save_checkpoint(checkpoint(iteration), ckpt_dir / "best.pt")
                    if (due_ckpt or stopping) and ddp.is_main:
                        save_checkpoint(checkpoint(iteration), ckpt_dir / "last.pt")
                    if ddp.world_size > 1 and (due_val or due_ckpt or stopping):
                        dist.barrier()  # the others wait for rank 0's save: torchrun ends them all when one exits
                    if stopping:
                        signum = int(stop_signal.item()) or signal.SIGTERM  # 0 here: another rank's signal
                        log(f"stopped by {signal.Signals(signum).name} at iteration {iteration}; saved "
                            f"{ckpt_dir / 'last.pt'} (continue with --resume auto)")
                        raise Interrupted(signum)
                    ready = time.perf_counter()
            except RuntimeError as exc:
                if not _worker_died(exc):
                    raise
                if ddp.is_main and not updating and not (nonfinite | weights_nonfinite(model)).item():
                    save_checkpoint(checkpoint(iteration), ckpt_dir / "last.pt")
                    saved = f"saved {ckpt_dir / 'last.pt'} at iteration {iteration}"
                else:
                    saved = ("not saved here: the main process writes the checkpoints" if not ddp.is_main else
                             "nothing saved: it struck while the weights were being updated, or they were not finite")
                if int(stop_signal.item()):  # a stop signal that reached a worker too: still a stop
                    log(f"stopped by {signal.Signals(int(stop_signal.item())).name} at iteration {iteration}; {saved}")
                    raise Interrupted(int(stop_signal.item())) from None
                raise UserError(f"a data-loader worker died ({str(exc).strip().splitlines()[0]}), usually killed by "
                                f"the out-of-memory killer; {saved}. Continue with --resume auto; fewer "
                                f"train.num_workers or a smaller train.batch_size use less memory") from None
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        # The log or TensorBoard could not write (checkpoints say so themselves, see atomic_write).
        raise UserError(f"cannot write the run's files in {out_dir} ({exc.strerror}); the last checkpoint "
                        f"is kept") from None
    finally:
        if ddp.is_main:
            run.unlock()  # first: nothing below may keep the folder locked
        if writer is not None:
            try:
                writer.close()
            except OSError:  # the same full or read-only disk: already reported
                pass
    return records
