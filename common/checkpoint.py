"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A training checkpoint is a dict: ``model`` (the network's state_dict), ``optimizer``, ``ema``
(its state_dict, or None), ``scaler``, ``rng``, ``iteration`` (completed iterations), ``best``
(best validation PSNR_Y so far), ``config`` (the resolved config as plain data) and ``card`` (the
network card as plain data, ``srlab.card``: what ``srlab.loading.load`` reads). Checkpoints written
before cards carry ``network`` (a description, or only recommended settings) or nothing; the
loader makes their card from ``config``. The learning-rate schedule is not saved: it is a function
of the iteration and the config (``srlab.optim.make_scheduler``).
"""
from __future__ import annotations

import json
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from srlab.errors import ConfigError, UserError
from srlab.outputs import atomic_write


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write atomically (``srlab.outputs.atomic_write``): a failed save keeps the previous file."""
    atomic_write(path, lambda f: torch.save(state, f))


def save_json(data, path: str | Path, indent: int | None = None) -> None:
    """Write ``data`` as strict JSON, atomically. NaN/inf are refused, never written as bare ``NaN``."""
    try:
        text = json.dumps(data, indent=indent, allow_nan=False)
    except ValueError:
        raise UserError(f"refusing to write {path}: it would hold NaN or infinity") from None
    atomic_write(path, lambda f: f.write(text.encode()))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise UserError(f"{path}: not a readable checkpoint (the file is empty: 0 bytes; an interrupted copy?)")
    # torch.save writes a zip archive (legacy files: a pickle, which starts with 0x80).
    if head != b"PK\x03\x04" and head[:1] != b"\x80":
        raise UserError(f"{path}: not a readable checkpoint (not a PyTorch file: it starts with {head!r}; "
                        "a text file, or a download that saved an error page?)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path}: not a readable checkpoint (not a file of tensors; files holding other "
                        "Python objects are never loaded, since loading them could run code)") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError) as exc:
        reason = str(exc).strip().split("\n")[0][:200] or type(exc).__name__
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
    """Load ``weights`` into ``model``; weights that do not fit, or hold NaN/inf, are one-line errors."""
    broken = [k for k, v in weights.items()
              if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise UserError(f"{path}: {len(broken)} weight tensor(s) hold NaN or infinity (e.g. {broken[0]!r}); "
                        "these weights cannot give an image (use an earlier checkpoint)")
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


def check_rng_state(state, path: str | Path) -> None:
    """A one-line error unless ``state`` (a checkpoint's ``rng``) can be restored: tried here, before
    the run starts, and the process's own generators put back as they were."""
    saved = rng_state()
    try:
        set_rng_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        reason = str(exc).strip().split("\n")[0][:120] or type(exc).__name__
        raise UserError(f"{path}: its rng state cannot be restored ({reason}); the checkpoint is damaged") from None
    finally:
        set_rng_state(saved)
