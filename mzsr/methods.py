"""MZSR's stages 2 and 3 as methods of the shared runner and test script.

Stage 1 (large-scale training) needs nothing of its own: it is the shared ``supervised`` method
with ``model: {type: mzsr_net}`` (configs/mzsr/pretrain_x2.yaml).

* ``MetaTransfer`` (``method: mzsr_meta``, stage 2): each training batch is ``tasks`` tasks of
  ``task_train + task_test`` HR patches; each task gets one random kernel (then direct or bicubic
  subsampling, ``options.mode``). The loss is MZSR's
  multi-step loss (the task-test L1 after every inner step, weighted and annealed), and its
  gradient is the meta-gradient: the runner's ordinary backward and Adam step are the outer loop.
* ``ZeroShot`` (``method: mzsr``, stage 3, test only): super-resolves each test image after
  ``n`` adaptation steps on the image itself, and puts next to it, in one table, the stage-1
  network, MZSR(n) for every n asked for, and ZSSR trained from scratch on the image. On a blind
  benchmark (``test.degradations: [blind_mzsr]``) the MZSR(n > 0) rows are the oracle ("true
  kernel"), and ``options.estimators`` add MZSR(n) and ZSSR with each estimator's kernel.
"""
from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from srlab.checkpoint import load_model_file
from srlab.config import Config, FilePath
from srlab.data import to_tensor
from srlab.degradation import Degradation, degrade, named_degradation
from srlab.errors import ConfigError, UserError
from srlab.imresize import imresize
from srlab.method import AdaptingMethod, Method, Output, Row
from srlab.mzsr.estimate import Estimator, KernelEstimate, build_estimator
from srlab.mzsr.meta import memory_format_of, multi_step_weights, task_test_losses, task_test_losses_loop
from srlab.mzsr.self_validation import Choice, Diverged, candidates, choose, max_blend, sons
from srlab.mzsr.tasks import task_kernels
from srlab.mzsr.zeroshot import PAPER_ADAPT_LRS, adapt_and_upscale, adapt_to_image, check_network, step_lrs, upscale
from srlab.mzsr.zssr import zssr

# srlab upscale adapts to the central ADAPT_CROP x ADAPT_CROP LR pixels at most: the paper's test
# images are smaller than this (whole-image adaptation there), and a 24-megapixel photograph
# would need tens of GB for the gradient step.
ADAPT_CROP = 512


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The central ``side x side`` pixels of ``image`` (H, W, ...), or all of a side shorter than that."""
    top, left = max(0, (image.shape[0] - side) // 2), max(0, (image.shape[1] - side) // 2)
    return image[top : top + side, left : left + side]


@dataclass
class MetaOptions:
    pretrained: FilePath | None = None  # stage-1 checkpoint to start from (MZSR always does)
    tasks: int = 5  # tasks per meta-step; train.batch_size = tasks * (task_train + task_test)
    task_train: int = 8  # patches per task for the inner steps
    task_test: int = 8  # patches per task for the multi-step loss
    inner_steps: int = 5
    inner_lr: float = 0.01
    first_order: bool = False  # FOMAML: drop the second-order terms
    kernel_size: int = 15  # side of the random training kernels
    mode: Literal["direct", "bicubic"] = "direct"  # subsampling after the blur (MZSR trains one model per mode)
    # Share of the tasks whose blur is a photo tool's or a sharp Gaussian's (srlab.mzsr.tasks); 0 = the paper
    photo_share: float = 0.0
    # Weight of the stage-1 loss in the meta-loss: L1 of the unadapted network on MATLAB-bicubic LR
    # of the task-test patches (the paper's L^D). 0 = the paper. It keeps the meta-learned start
    # where stage 1 was on the commonest degradation, which adaptation alone did not recover.
    pretrain_loss_weight: float = 0.0
    anneal_iters: int = 3333  # multi-step loss weights reach the last step after about this many
    # "constant": the weights stay equal (1/inner_steps each), as the released MZSR models were
    # trained (the official step counter never moved, so its annealing never started)
    step_weights: Literal["annealed", "constant"] = "annealed"
    task_batching: Literal["auto", "vmap", "loop"] = "auto"  # auto: vmap on CUDA, loop on CPU (measured)
    val_adapt_steps: int = 10  # validation shows MZSR(n) ...
    val_adapt_lrs: list[float] = field(default_factory=lambda: list(PAPER_ADAPT_LRS))  # ... with these lrs
    val_adapt_backtrack: bool = False  # ... and this (recommended to srlab upscale / zeroshot, as the lrs)


@dataclass
class AdaptSettings:
    """How a meta-trained network adapts to an image at test time (a checkpoint recommends them)."""

    adapt_steps: int = 10
    adapt_lrs: list[float] = field(default_factory=lambda: list(PAPER_ADAPT_LRS))  # step i: entry min(i, last)
    adapt_backtrack: bool = False  # undo a step that raises the son's loss (false: plain SGD, the paper)


class MetaTransfer(AdaptingMethod):
    """Stage 2: MAML over random blur kernels, from the stage-1 weights. The trained network
    adapts to each image (``image_infer``) with ``options.val_adapt_steps`` / ``val_adapt_lrs``."""

    name = "mzsr_meta"
    Options = MetaOptions
    Recommended = AdaptSettings
    resume_free_options = ("pretrained", "task_batching", "val_adapt_steps", "val_adapt_lrs", "val_adapt_backtrack")
    # Under torchrun each process meta-trains on its share of the tasks and the meta-gradients
    # are averaged after backward: DDP's reducer cannot follow the inner torch.func gradients.
    gradient_sync = "all_reduce"

    @property
    def batch_group(self) -> int:
        return self.options.task_train + self.options.task_test  # one task's patches

    def recommended(self) -> dict:
        # What validation used: srlab upscale and zeroshot adapt with these unless told otherwise.
        return {"adapt_lrs": list(self.options.val_adapt_lrs), "adapt_steps": self.options.val_adapt_steps,
                "adapt_backtrack": self.options.val_adapt_backtrack}

    def use_recommended(self, settings: AdaptSettings) -> None:
        if settings.adapt_steps < 0:
            raise ConfigError(f"recommended.adapt_steps: must be >= 0, got {settings.adapt_steps}")
        if not settings.adapt_lrs or not all(math.isfinite(lr) and lr > 0 for lr in settings.adapt_lrs):
            raise ConfigError(f"recommended.adapt_lrs: must list finite learning rates > 0, got {settings.adapt_lrs}")
        self.options.val_adapt_lrs = list(settings.adapt_lrs)
        self.options.val_adapt_steps = settings.adapt_steps
        self.options.val_adapt_backtrack = settings.adapt_backtrack

    @classmethod
    def for_inference(cls, cfg: Config, model_factory: Callable[[], nn.Module]) -> MetaTransfer:
        o = MetaOptions()
        cfg.train.batch_size = o.tasks * (o.task_train + o.task_test)  # the meta-batch is a training matter
        cfg.train.patch_size = 16 * math.lcm(*cfg.train.scales)  # any multiple of every scale
        return cls(cfg, model_factory)

    def __init__(self, cfg: Config, model_factory: Callable[[], nn.Module]):
        super().__init__(cfg)
        o: MetaOptions = self.options
        self.model_factory = model_factory
        self.stage1: dict[str, torch.Tensor] | None = None  # the weights meta-transfer started from
        for key in ("tasks", "task_train", "task_test", "inner_steps", "kernel_size", "anneal_iters"):
            if getattr(o, key) < 1:
                raise ConfigError(f"options.{key}: must be >= 1, got {getattr(o, key)}")
        if not 0 <= o.photo_share <= 1:
            raise ConfigError(f"options.photo_share: must be in [0, 1], got {o.photo_share}")
        if not (math.isfinite(o.pretrain_loss_weight) and o.pretrain_loss_weight >= 0):
            raise ConfigError(f"options.pretrain_loss_weight: must be a number >= 0, got {o.pretrain_loss_weight}")
        if o.val_adapt_steps < 0:
            raise ConfigError(f"options.val_adapt_steps: must be >= 0, got {o.val_adapt_steps}")
        if not o.val_adapt_lrs or min(o.val_adapt_lrs) <= 0:
            raise ConfigError(f"options.val_adapt_lrs: must list learning rates > 0, got {o.val_adapt_lrs}")
        per_batch = o.tasks * (o.task_train + o.task_test)
        if cfg.train.batch_size != per_batch:
            raise ConfigError(f"train.batch_size: must be options.tasks x (task_train + task_test) = "
                              f"{o.tasks} x {o.task_train + o.task_test} = {per_batch}, got {cfg.train.batch_size}")
        if cfg.train.compile:
            raise ConfigError("train.compile: not supported for mzsr_meta (the inner loop calls the network "
                              "functionally with fast weights); set it to false")
        if cfg.train.amp != "off":
            raise ConfigError("train.amp: not supported for mzsr_meta (the inner gradients are not loss-scaled); "
                              "set it to off")
        # Several scales: each task draws one of them (and a kernel for it), so one network learns
        # to adapt at every scale: the paper's "Multi-scale" model (see multi_scale in README).
        self.scales = list(cfg.train.scales)
        wrong = [s for s in self.scales if cfg.train.patch_size % s]
        if wrong:
            raise ConfigError(f"train.patch_size: must be a multiple of every scale in train.scales "
                              f"{self.scales}, got {cfg.train.patch_size}")

    def build_model(self) -> nn.Module:
        model = check_network(self.model_factory(), "model")
        if self.options.pretrained:
            load_model_file(model, self.options.pretrained, "options.pretrained")
            # Kept in every checkpoint: self-validation compares the adapted network against it.
            self.stage1 = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return model

    def other_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"stage1": self.stage1} if self.stage1 is not None else {}

    def use_other_weights(self, weights: dict[str, dict[str, torch.Tensor]]) -> None:
        self.stage1 = weights.get("stage1")

    def training_batch(self, hr, iteration):
        o: MetaOptions = self.options
        hr = hr.float() / 255
        per_task = o.task_train + o.task_test
        # One kernel per task, drawn from the global RNG (seeded and checkpointed by the runner).
        # Under torchrun every process draws all of them (the RNGs stay equal) and keeps the
        # kernels of its share of the tasks: K processes meta-train on what one process would.
        tasks = hr.shape[0] // per_task
        first = (dist.get_rank() if dist.is_initialized() else 0) * tasks
        share = slice(first, first + tasks)
        # One scale for all tasks draws nothing more, so single-scale runs keep their random stream.
        scales = torch.tensor(self.scales)[torch.randint(len(self.scales), (o.tasks,))] if len(self.scales) > 1 \
            else torch.full((o.tasks,), self.scales[0])
        kernels, modes = task_kernels(scales, o.kernel_size, o.mode, o.photo_share)
        kernels, modes, scales = kernels[share].to(hr.device), modes[share], scales[share]
        y = hr.view(tasks, per_task, *hr.shape[1:])
        x = torch.empty_like(y)
        for scale, mode in sorted(set(zip(scales.tolist(), modes))):  # one batched degradation per kind, not per task
            which = torch.tensor([i for i, (s, m) in enumerate(zip(scales.tolist(), modes)) if (s, m) == (scale, mode)],
                                 device=hr.device)
            patches = y[which].flatten(0, 1)
            lr = degrade(patches, kernels[which].repeat_interleave(per_task, dim=0), scale, mode=mode).clamp(0, 1)
            x[which] = imresize(lr, size=tuple(hr.shape[-2:])).view(len(which), per_task, *hr.shape[1:])
        batch = {"train_x": x[:, : o.task_train], "train_y": y[:, : o.task_train],
                 "test_x": x[:, o.task_train :], "test_y": y[:, o.task_train :],
                 "step_weights": multi_step_weights(iteration if o.step_weights == "annealed" else 0, o.inner_steps,
                                                    o.anneal_iters).to(hr.device)}
        if o.pretrain_loss_weight > 0:  # draws nothing random: runs without it keep their stream
            batch["bicubic_x"] = torch.empty_like(batch["test_y"])
            for scale in set(scales.tolist()):
                which = (scales == scale).to(hr.device)
                lr = imresize(batch["test_y"][which].flatten(0, 1), scale=1 / scale).clamp(0, 1)
                batch["bicubic_x"][which] = imresize(lr, size=tuple(hr.shape[-2:])).view_as(batch["test_y"][which])
        return batch

    def loss(self, model, batch):
        o: MetaOptions = self.options
        batched = o.task_batching == "vmap" or (o.task_batching == "auto" and batch["train_x"].is_cuda)
        losses_fn = task_test_losses if batched else task_test_losses_loop
        params = dict(model.named_parameters())
        per_step = losses_fn(model, params, batch["train_x"], batch["train_y"], batch["test_x"], batch["test_y"],
                             o.inner_steps, o.inner_lr, o.first_order).float().mean(dim=0)  # (steps,)
        weights = batch["step_weights"]
        out = {"loss": (weights * per_step).sum()}
        if "bicubic_x" in batch:
            fmt = memory_format_of(params)
            stage1_l1 = F.l1_loss(model(batch["bicubic_x"].flatten(0, 1).contiguous(memory_format=fmt)),
                                  batch["test_y"].flatten(0, 1)).float()
            out["loss"] = out["loss"] + o.pretrain_loss_weight * stage1_l1
            out["pretrain_l1"] = stage1_l1.detach()
        for k in range(o.inner_steps):
            out[f"task_test_l1/step{k + 1}"] = per_step[k].detach()
        out["msl_weight/first"] = weights[0]
        out["msl_weight/last"] = weights[-1]
        return out

    def infer(self, model, lr, scale, degradation=None):
        steps = self.options.val_adapt_steps if degradation is not None else 0
        return Output(adapt_and_upscale(model, lr, scale, degradation, step_lrs(steps, self.options.val_adapt_lrs),
                                        backtrack=self.options.val_adapt_backtrack))

    def image_infer(self, model, lr, scale, degradation=None, on_step=None):
        """MZSR(n) for ``srlab upscale``, ``srlab zeroshot`` and the API, one rule for all: adapt
        once to (the centre of) the whole image with its kernel, then run the adapted weights on
        every tile. Without a kernel there is nothing to adapt to: the meta-learned weights run as
        they are, MZSR(0). ``on_step``: called after each adaptation step (a progress bar)."""
        steps = self.options.val_adapt_steps if degradation is not None else 0
        lrs = step_lrs(steps, self.options.val_adapt_lrs)
        centre = to_tensor(centre_crop(lr, ADAPT_CROP)).to(next(model.parameters()).device)
        adapted = adapt_to_image(model, centre, scale, degradation, lrs, on_step,
                                 backtrack=self.options.val_adapt_backtrack)
        if adapted.diverged:
            raise UserError(f"{adapted.divergence()} with learning rates {' '.join(map(str, lrs))}; nothing "
                            f"written. Try smaller learning rates or fewer steps")
        return lambda tile: upscale(model, adapted.params, tile, scale)

    def estimate_kernel(self, lr, scale, estimator, kernel_net=None):
        """The kernel of (the centre of) the uint8 image ``lr`` that ``image_infer`` adapts to, by
        ``estimator`` (``srlab.mzsr.estimate.ESTIMATORS``; "net" reads KernelNet weights ``kernel_net``)."""
        centre = to_tensor(centre_crop(lr, ADAPT_CROP))
        return build_estimator(estimator, kernel_net, seed=self.cfg.seed)(centre, scale)

    def photo_infer(self, model, lr, scale, estimate, on_step=None, jpeg: bool = False,
                    max_share: float | None = None):
        """The photo path (``srlab upscale`` without ``--kernel``): with the kernel ``estimate`` of
        the uint8 image ``lr``, self-validate the candidates on (the centre of) it, adapt the
        winner as ``image_infer`` does, and return what runs on every tile and the ``Choice``.
        ``jpeg``: the image was saved as JPEG (``self_validation.max_blend`` caps the network's share);
        ``max_share``: the cap, instead of ``max_blend``'s."""
        device = next(model.parameters()).device
        centre = to_tensor(centre_crop(lr, ADAPT_CROP)).to(device)
        meta = {k: p.detach() for k, p in model.named_parameters()}
        stage1 = {k: v.to(device) for k, v in self.stage1.items()} if self.stage1 is not None else None
        lrs = step_lrs(self.options.val_adapt_steps, self.options.val_adapt_lrs)
        options = candidates(meta, stage1, estimate, lrs, self.options.val_adapt_backtrack)
        if min(centre.shape[-2:]) < 2 * scale:  # no son to check anything against: the safe answer
            chosen = options[-1]
            return chosen.run(model, centre, scale), Choice(chosen, estimate=estimate, note=(
                f"the image ({centre.shape[-1]}x{centre.shape[-2]}) is too small to check a network against itself"))
        cap = max_blend(estimate, jpeg) if max_share is None else max_share
        choice = choose(model, centre, scale, options, sons(estimate, scale), estimate, cap)
        try:
            return choice.chosen.run(model, centre, scale, on_step), choice
        except Diverged as exc:
            raise UserError(f"{exc} with learning rates {' '.join(map(str, lrs))} ({choice.chosen.name}); nothing "
                            f"written. Try smaller learning rates or fewer steps") from None


@dataclass
class ZeroShotOptions:
    adapt_steps: list[int] = field(default_factory=lambda: [0, 1, 10])  # one MZSR(n) row each
    adapt_lrs: list[float] = field(default_factory=lambda: list(PAPER_ADAPT_LRS))  # step i: entry min(i, last)
    adapt_backtrack: bool = False  # undo a step that raises the son's loss (false: plain SGD, the paper)
    pretrained: FilePath | None = None  # stage-1 checkpoint: adds its row (no adaptation)
    zssr: bool = True  # add the ZSSR row (the same network trained from scratch on each image)
    zssr_iters: int = 3000
    zssr_lr: float = 1e-3
    zssr_crop: int = 128
    # "official": ZSSR's known-kernel configuration (scale/shear fathers, no rotations, back-
    # projection); "dihedral": crops with flips/rotations, no back-projection (row "ZSSR-dihedral")
    zssr_variants: list[Literal["official", "dihedral"]] = field(default_factory=lambda: ["official"])
    zssr_back_projection: int = 2  # official: steps after each output and after their median
    # Blind benchmarks: one "MZSR(n)+<estimator>" row (n = the largest adapt_steps) per estimator,
    # and "ZSSR+<estimator>" when zssr is on. "net" needs KernelNet weights (kernel_net).
    estimators: list[Literal["edges", "net", "kernelgan", "prior"]] = field(default_factory=list)
    kernel_net: FilePath | None = None
    kernelgan_iters: int = 3000


class ZeroShot(Method):
    """Stage 3: test-time adaptation with the image's known kernel (and its baselines)."""

    name = "mzsr"
    trainable = False
    Options = ZeroShotOptions

    def __init__(self, cfg: Config, model_factory: Callable[[], nn.Module]):
        super().__init__(cfg)
        o: ZeroShotOptions = self.options
        self.model_factory = model_factory
        if not o.adapt_steps or min(o.adapt_steps) < 0:
            raise ConfigError(f"options.adapt_steps: must list step counts >= 0, got {o.adapt_steps}")
        if not o.adapt_lrs or min(o.adapt_lrs) <= 0:
            raise ConfigError(f"options.adapt_lrs: must list learning rates > 0, got {o.adapt_lrs}")
        smallest_crop = 2 * max(cfg.test.scales)
        if o.zssr and (not o.zssr_variants or o.zssr_back_projection < 0):
            raise ConfigError(f"options: zssr_variants must list official and/or dihedral and zssr_back_projection "
                              f"must be >= 0; got {o.zssr_variants}, {o.zssr_back_projection}")
        if o.kernelgan_iters < 1:
            raise ConfigError(f"options.kernelgan_iters: must be >= 1, got {o.kernelgan_iters}")
        if "net" in o.estimators and o.kernel_net is None:
            raise ConfigError("options.kernel_net: the net estimator needs KernelNet weights "
                              "(train them with configs/mzsr/kernel_net_x2_cpu.yaml)")
        if o.zssr and (o.zssr_iters < 1 or o.zssr_lr <= 0 or o.zssr_crop < smallest_crop):
            raise ConfigError(f"options: zssr_iters must be >= 1, zssr_lr > 0 and zssr_crop >= 2 x the largest "
                              f"test scale = {smallest_crop}; got {o.zssr_iters}, {o.zssr_lr}, {o.zssr_crop}")

    def build_model(self) -> nn.Module:
        return check_network(self.model_factory(), "model")

    def infer(self, model, lr, scale, degradation=None):
        """MZSR(n) with the largest n asked for."""
        if degradation is None:
            raise ValueError("MZSR needs the degradation (kernel) of the LR image")
        return Output(adapt_and_upscale(model, lr, scale, degradation,
                                        step_lrs(max(self.options.adapt_steps), self.options.adapt_lrs),
                                        backtrack=self.options.adapt_backtrack))

    def test_rows(self, model):
        o: ZeroShotOptions = self.options
        blind = any(named_degradation(d).blind for d in self.cfg.test.degradations)
        rows = []
        if o.pretrained:
            stage1 = load_model_file(copy.deepcopy(model), o.pretrained, "options.pretrained")
            rows.append(Row("pretrained", lambda lr, s, d: Output(adapt_and_upscale(stage1, lr, s, d, []))))
        for n in o.adapt_steps:
            def infer(lr, s, d, n=n):
                return Output(adapt_and_upscale(model, lr, s, d, step_lrs(n, o.adapt_lrs), backtrack=o.adapt_backtrack))

            if n > 0 and blind:  # adapting needs the kernel: on a blind benchmark, the true one (an upper bound)
                rows.append(Row(f"MZSR({n}) true kernel", infer, sees_true_kernel=True))
            else:
                rows.append(Row(f"MZSR({n})", infer))
        device = next(model.parameters()).device

        def run_zssr(lr, s, d, augment):
            torch.manual_seed(self.cfg.seed)  # the same fresh weights for every image
            fresh = self.model_factory().to(device)
            return zssr(fresh, lr, s, d, o.zssr_iters, o.zssr_lr, o.zssr_crop, seed=self.cfg.seed,
                        augment=augment, back_projection=o.zssr_back_projection)

        if o.zssr and not blind:
            for augment in o.zssr_variants:
                name = "ZSSR" if augment == "official" else f"ZSSR-{augment}"
                rows.append(Row(name, lambda lr, s, d, augment=augment: Output(run_zssr(lr, s, d, augment))))
        steps = step_lrs(max(o.adapt_steps), o.adapt_lrs)
        for name in o.estimators:
            estimate = self._cached(build_estimator(name, o.kernel_net, o.kernelgan_iters, device, self.cfg.seed))
            rows.append(Row(f"MZSR({len(steps)})+{name}", lambda lr, s, d, estimate=estimate: _with_estimate(
                estimate(lr, s), d, lambda given: adapt_and_upscale(model, lr, s, given, steps,
                                                                    backtrack=o.adapt_backtrack),
                lambda: adapt_and_upscale(model, lr, s, None, []))))
            if o.zssr:
                rows.append(Row(f"ZSSR+{name}", lambda lr, s, d, estimate=estimate: _with_estimate(
                    estimate(lr, s), d, lambda given: run_zssr(lr, s, given, "official"),
                    lambda: adapt_and_upscale(model, lr, s, None, []))))
        return rows

    @staticmethod
    def _cached(estimator: Estimator) -> Estimator:
        """``estimator`` remembering its estimate of each image, so that MZSR and ZSSR with one
        estimator's kernel estimate it once (their rows report its seconds as estimate_s)."""
        memory: dict[tuple, KernelEstimate] = {}

        def estimate(lr: torch.Tensor, scale: int) -> KernelEstimate:
            key = (scale, tuple(lr.shape), hashlib.sha1(lr.detach().cpu().numpy().tobytes()).hexdigest())
            if key not in memory:
                memory[key] = estimator(lr, scale)
            return memory[key]

        return estimate


def _with_estimate(estimate: KernelEstimate, given: Degradation | None, upscale: Callable,
                   unadapted: Callable[[], torch.Tensor]) -> Output:
    """Run ``upscale(degradation)`` with the estimated kernel (and the subsampling the benchmark
    states), or ``unadapted()`` when the estimator says its estimate is unreliable: a wrong kernel
    can do worse than no adaptation. The SR image with the estimate, its time and whether it fell
    back as extras (``"kernel"`` is scored by the evaluator against the truth)."""
    extras = {"kernel": estimate.kernel, "estimate_s": estimate.seconds, "fallback": float(bool(estimate.unreliable))}
    # The subsampling is the benchmark's, not the kernel's: keep the stated one (plain bicubic
    # downscaling states none; the estimators assume direct subsampling).
    mode = "direct" if given is None or (given.kernel is None and not given.blind) else given.mode
    degradation = estimate.degradation(mode)
    return Output(unadapted() if degradation is None else upscale(degradation), extras)
