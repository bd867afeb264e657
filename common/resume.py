"""What may change when a run is resumed, and what may not.

A checkpoint stores the resolved config of its run. Resuming compares it with the config given now,
field by field (``model.*`` and ``options.*`` too):

* **Fixed** (``FIXED``): what defines the experiment — the method and its options, the network,
  the seed, the training data (by dataset name), patches, scales, batch, augmentation, loss and
  optimiser type. A change is refused with one line naming the fields (start a new run, or
  fine-tune from the weights in a new run). A method may free options that only touch validation,
  speed or the first initialisation (``Method.resume_free_options``: MZSR's ``task_batching``, say).
* **Everything else applies** from the resumed iteration on, and is logged: ``total_iters``, log /
  checkpoint / validation cadence, validation and test sets, AMP, channels-last, compile, workers,
  clipping, EMA decay, where a dataset's folder now is (data staged to a job's scratch disk), and
  the learning rate and its schedule. The schedule is a function of the iteration and the config
  (``srlab.optim.lr_factor``), so the optimiser's hyperparameters are taken from the config, never
  from the checkpoint: a new ``lr`` or ``min_lr`` takes effect at once, exactly as the new schedule
  gives it at this iteration.

The run folder's ``config.yaml`` is then rewritten with the config in force, so it always tells
the truth.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from srlab.config import Config, file_options, from_dict, known_fields, to_dict
from srlab.errors import ConfigError, UserError

FIXED = (
    "method", "model", "options", "seed",
    "train.datasets.name", "train.patch_size", "train.scales", "train.batch_size", "train.augment", "train.loss",
    "train.optimizer.type",
)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``; a list of datasets -> one entry per field."""
    if isinstance(data, dict) and data:
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if prefix.endswith("datasets") and isinstance(data, list) and all(isinstance(d, dict) for d in data):
        return {f"{prefix}.{k}": [d.get(k) for d in data] for k in ("name", "hr", "lr")}
    return {prefix: data}


def _normalised(config: dict, options: type | None) -> dict:
    """A config as plain data with today's defaults filled in and fields removed since dropped (no change either),
    its ``options`` through the method's dataclass when it has one."""
    try:
        config = to_dict(from_dict(Config, known_fields(Config, config)))
    except ConfigError:
        config = dict(config)
    if options is not None:
        try:
            config["options"] = dataclasses.asdict(from_dict(options, config.get("options") or {}, "options"))
        except ConfigError:
            pass
        else:  # a file named differently is the same file: "runs/x.pt" then, "<config dir>/../../runs/x.pt" now
            for key in file_options(options):
                config["options"][key] = _same_file_name(config["options"][key])
    return config


def _same_file_name(value: Any) -> Any:
    if isinstance(value, list):
        return [_same_file_name(v) for v in value]
    return str(Path(value).resolve()) if isinstance(value, str) and not value.startswith("$") else value


def config_changes(saved: dict, cfg: Config, checkpoint: str, options: type | None = None,
                   free_options: tuple[str, ...] = ()) -> list[str]:
    """``["key: old -> new", ...]`` for the fields that will apply; a fixed field changed is a ``UserError``.

    ``options``: the method's ``Options`` dataclass; ``free_options``: its options that may change."""
    old, new = _flatten(_normalised(saved, options)), _flatten(_normalised(to_dict(cfg), options))
    changed = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    free = {f"options.{name}" for name in free_options}
    fixed = [k for k in changed if k not in free and any(k == f or k.startswith(f + ".") for f in FIXED)]
    if fixed:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in fixed)
        raise UserError(f"{checkpoint}: cannot resume with a changed {', '.join(fixed)} ({detail}); these define "
                        f"the run: restore them, or start a new run (--out elsewhere, or --overwrite)")
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed]


def training_left(iteration: int, total_iters: int, checkpoint: str) -> bool:
    """Whether a run resumed at ``iteration`` has work left; one past ``total_iters`` is an error."""
    if iteration > total_iters:
        raise UserError(f"{checkpoint}: the run is at iteration {iteration}, past train.total_iters ({total_iters}); "
                        f"to train longer, raise it (--opt train.total_iters=N with N > {iteration})")
    return iteration < total_iters
