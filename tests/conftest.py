import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

# A few-second training config for the tests of the training loop and the commands.
TINY = """\
name: tiny
method: supervised
device: cpu
seed: 3
model: {type: mzsr_net, channels: 8, num_layers: 3}
train:
  datasets: [skimage_train]
  total_iters: 8
  batch_size: 4
  patch_size: 16
  optimizer: {type: adam, lr: 1.0e-3}
  scheduler: {type: cosine, warmup_iters: 2}
  ema_decay: 0.9
  num_workers: 0
  log_every: 2
  val_every: 0
  checkpoint_every: 2
val: {datasets: [skimage_test], max_images: 1}
"""

SHARED_DATA = Path(os.environ.get("SR_DATA_ROOT") or REPO.parent / "shared" / "data")


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    """``python scripts/<name> args...`` from the repository root, output captured."""
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


def run_inline(name: str, *args) -> subprocess.CompletedProcess:
    """``scripts/<name> args...`` run in this process (no second torch import: seconds faster), with
    its exit status and output captured like ``run_script``. For checks of arguments and errors."""
    import contextlib
    import io
    import runpy

    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = [name, *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(REPO / "scripts" / name), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())


class ActAt:
    """Wraps a method so that ``act()`` runs during training iteration ``at`` (1-based), inside its
    loss: a signal as a user or SLURM would send it, a killed worker, ..."""

    def __init__(self, method, at: int, act):
        self.method, self.at, self.act, self.calls = method, at, act, 0

    def __getattr__(self, name):
        return getattr(self.method, name)

    def loss(self, model, batch):
        self.calls += 1
        if self.calls == self.at:
            self.act()
        return self.method.loss(model, batch)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def shared_data() -> Path:
    """The real benchmark data (CI has it beside the checkout); skipped where absent."""
    if not (SHARED_DATA / "benchmarks" / "Set5" / "HR").is_dir():
        pytest.skip(f"no benchmark data at {SHARED_DATA} (set SR_DATA_ROOT)")
    return SHARED_DATA


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.fixture
def tiny(tmp_path):
    """``tiny(*overrides)``: the runner tests' 8-iteration config (``TINY``); ``tiny.path`` is its file."""
    from srlab.config import load_config
    from srlab.registry import METHODS

    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)

    def make(*opts):
        return load_config(path, list(opts), METHODS)

    make.path = path
    return make
