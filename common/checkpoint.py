"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A training checkpoint is a dict: ``model`` (the network's state_dict), ``optimizer``,
``scheduler``, ``ema`` (or None), ``scaler``, ``rng``, ``iteration`` (completed iterations),
``best`` (best validation PSNR_Y so far) and ``config`` (the resolved config as plain data).
"""
from __future__ import annotations

import json
import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from common.errors import ConfigError, UserError


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_json(data, path: str | Path, indent: int | None = None) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=indent))
    tmp.replace(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path}: not a readable checkpoint (not a file of tensors; files holding other "
                        "Python objects are never loaded, since loading them could run code)") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError) as exc:
        reason = str(exc).strip().split("\n")[0][:200]
        raise UserError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    return state


def model_state(state: dict, path: str | Path, prefer_ema: bool = True) -> dict:
    """The weights to evaluate: the EMA weights when the run kept them, else ``model``.

    A bare state_dict (a file with only tensors) is accepted too.
    """
    if prefer_ema and isinstance(state.get("ema"), dict):
        return state["ema"]
    if isinstance(state.get("model"), dict):
        return state["model"]
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    raise UserError(f"{path}: no 'model' weights in this checkpoint")


def load_weights(model: torch.nn.Module, weights: dict, path: str | Path) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().split("\n")
        detail = " ".join(line.strip() for line in first[:3])[:300]
        raise UserError(f"{path}: weights do not fit {type(model).__name__} ({detail})") from None


def load_model_file(model: torch.nn.Module, path: str | Path, key: str | None = None) -> torch.nn.Module:
    """Load the weights to evaluate (``model_state``) of checkpoint ``path`` into ``model``.

    ``key``: the config key that named the file (``options.pretrained``); errors then start with it.
    """
    try:
        load_weights(model, model_state(load_checkpoint(path), path), path)
    except UserError as exc:
        if key is None:
            raise
        raise ConfigError(f"{key}: {exc}") from None
    return model


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
