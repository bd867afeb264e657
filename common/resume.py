"""What may change when a run is resumed, and what may not.

A checkpoint stores the resolved config of its run. Resuming compares it with the config given now:

* **Fixed** (``FIXED``): what defines the experiment — the method and its options, the network,
  the seed, the training data, patches, scales, batch, augmentation, loss and optimiser type.
  A change is refused with one line naming the fields (start a new run, or fine-tune from the
  weights in a new run).
* **Everything else applies** from the resumed iteration on, and is logged: ``total_iters``, log /
  checkpoint / validation cadence, validation and test sets, AMP, channels-last, compile,
  workers, clipping, EMA decay, and the learning rate and its schedule. The schedule is a function
  of the iteration and the config (``common.runner.lr_factor``), so the optimiser's hyperparameters
  are taken from the config, never from the checkpoint: a new ``lr`` or ``min_lr`` takes effect
  at once, exactly as if the run had used it from the start at this iteration.

The run folder's ``config.yaml`` is then rewritten with the config in force, so it always tells
the truth.
"""
from __future__ import annotations

from typing import Any

from common.config import Config, from_dict, to_dict
from common.errors import ConfigError, UserError

FIXED = (
    "method", "model", "options", "seed",
    "train.datasets", "train.patch_size", "train.scales", "train.batch_size", "train.augment", "train.loss",
    "train.optimizer.type",
)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data and prefix.split(".")[0] not in ("model", "options"):
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}  # model and options compare as wholes: their keys are free-form


def _normalised(saved: dict) -> dict:
    """The saved config with today's defaults filled in, so a field added since is no change."""
    try:
        return to_dict(from_dict(Config, saved))
    except ConfigError:
        return saved


def config_changes(saved: dict, cfg: Config, checkpoint: str) -> list[str]:
    """``["key: old -> new", ...]`` for the fields that will apply; a fixed field changed is a ``UserError``."""
    old, new = _flatten(_normalised(saved)), _flatten(to_dict(cfg))
    changed = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    fixed = [k for k in changed if any(k == f or k.startswith(f + ".") for f in FIXED)]
    if fixed:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in fixed)
        raise UserError(f"{checkpoint}: cannot resume with a changed {', '.join(fixed)} ({detail}); these define "
                        f"the run: restore them, or start a new run (--out elsewhere, or --overwrite)")
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed]


def check_progress(iteration: int, total_iters: int, checkpoint: str) -> None:
    if iteration >= total_iters:
        done = "finished" if iteration == total_iters else f"past train.total_iters ({total_iters})"
        raise UserError(f"{checkpoint}: the run is already at iteration {iteration}, {done}; to train longer, "
                        f"raise it (--opt train.total_iters=N with N > {iteration})")
