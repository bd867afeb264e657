"""The CUDA paths: what CI (CPU only) cannot run. Skipped without a CUDA GPU.

* Every family trains a few iterations with ``train.amp`` bf16 and fp16, ``train.channels_last``
  and ``train.compile`` on and off: the losses are finite and close to fp32's (the same batches,
  the same initial weights).
* A run stopped and resumed on CUDA ends where the uninterrupted run does, to float tolerance:
  the batches, kernels and schedule are the same (as on CPU), but cuDNN's backward kernels add
  in a nondeterministic order, so the weights need not be bit-identical.
* MZSR's vmap meta-step equals the per-task loop; ClassSR's batched routing equals one-by-one
  routing; evaluation on CUDA equals the CPU's within 0.01 dB on Set5 (PyTorch's defaults:
  cuDNN may use TF32 for convolutions).

On a GPU machine: ``pytest tests/test_cuda.py`` (about a few minutes, most of it torch.compile).
``SRLAB_TEST_DEVICE=cpu`` runs the same code on the CPU, which only checks the tests themselves
(AMP is then ignored by the runner, so every variant trains in fp32).
"""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO, ActAt

from srlab.checkpoint import load_checkpoint
from srlab.commands.benchmark_training import switches
from srlab.config import load_config
from srlab.registry import build_method
from srlab.runner import train
from srlab.stopping import Interrupted

DEVICE = os.environ.get("SRLAB_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU")

CONFIGS = REPO / "configs"
# A few iterations of every family on the embedded photographs; one validation image at the end.
SHORT = ["train.datasets=[skimage_train]", "train.total_iters=4", "train.num_workers=0", "train.log_every=1",
         "train.checkpoint_every=4", "train.val_every=0", "train.ema_decay=0", "train.scheduler.warmup_iters=0",
         "val.datasets=[skimage_test]", "val.max_images=1", f"device={DEVICE}"]
FAMILIES = {
    "vdsr": (CONFIGS / "asymsr" / "vdsr_x234_cpu.yaml", []),
    "asym_vdsr": (CONFIGS / "asymsr" / "asym_vdsr_x234_cpu.yaml", []),
    "mzsr_pretrain": (CONFIGS / "mzsr" / "pretrain_x2_cpu.yaml", []),
    "msrresnet_o": (CONFIGS / "classsr" / "msrresnet_o_x4_cpu.yaml", []),
    # ClassSR stage 3 from random weights: the classifier and the three branches all learn.
    "classsr": (CONFIGS / "classsr" / "msrresnet_o_x4_cpu.yaml",
                ["method=classsr", "model={type: classsr, widths: [16, 24, 32], nb: 2, scale: 4}",
                 "options.freeze_branches=false", "train.batch_size=8"]),
}
# The speed switches as the training benchmark sets them (``switches``), and the relative
# tolerance on every logged loss against fp32: AMP rounds more than a change of layout or compiler.
TOLERANCES = {"bf16": 0.05, "fp16": 0.05, "channels_last": 0.01, "compile": 0.01, "all": 0.05}
# The variants that compile carry the `compile` mark: a GPU session can run the rest first (-m "not compile").
VARIANTS = [pytest.param(v, marks=pytest.mark.compile) if v in ("compile", "all") else v for v in TOLERANCES]


def logged_losses(run) -> list[float]:
    lines = (run / "log.txt").read_text().splitlines()
    return [float(line.split("loss=")[1].split()[0]) for line in lines if line.startswith("[") and " loss=" in line]


def train_short(config, overrides, out):
    cfg = load_config(config, [*SHORT, *overrides])
    torch.manual_seed(0)
    records = train(build_method(cfg), cfg, out)
    return logged_losses(out), records


@pytest.fixture(scope="module")
def fp32_losses(tmp_path_factory):
    """Each family's fp32 losses (channels-first, eager), trained once for all the variants."""
    out = tmp_path_factory.mktemp("fp32")
    return {name: train_short(config, [*overrides, *switches("fp32")], out / name)[0]
            for name, (config, overrides) in FAMILIES.items()}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_trains_under_amp_channels_last_and_compile_close_to_fp32(family, variant, fp32_losses,
                                                                               tmp_path):
    config, overrides = FAMILIES[family]
    losses, records = train_short(config, [*overrides, *switches(variant)], tmp_path / "run")
    reference = fp32_losses[family]
    assert len(losses) == len(reference) == 4
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses == pytest.approx(reference, rel=TOLERANCES[variant]), (family, variant, losses, reference)
    assert records and all(r.psnr_y > 10 for r in records)  # validation ran on the same device


META = CONFIGS / "mzsr" / "meta_x2_cpu.yaml"
META_SHORT = ["options.pretrained=null", "options.val_adapt_steps=1"]


@pytest.mark.parametrize("switches", [[], ["train.channels_last=true"]], ids=["vmap", "vmap_channels_last"])
def test_meta_transfer_trains_on_cuda_as_the_per_task_loop_does(switches, tmp_path):
    """mzsr_meta (vmap over tasks, the default on CUDA) against the per-task loop; AMP and
    compile are refused for meta-training (tested on CPU)."""
    losses, records = train_short(META, [*META_SHORT, *switches], tmp_path / "run")
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    loop, _ = train_short(META, [*META_SHORT, "options.task_batching=loop"], tmp_path / "loop")
    assert losses == pytest.approx(loop, rel=0.01)
    assert records and records[0].psnr_y > 10


def test_resume_on_cuda_continues_where_it_stopped(tmp_path):
    config = CONFIGS / "asymsr" / "asym_vdsr_x234_cpu.yaml"
    opts = [*SHORT, "train.total_iters=8", "train.checkpoint_every=8", "train.ema_decay=0.9"]
    cfg = load_config(config, opts)
    train(build_method(cfg), cfg, tmp_path / "straight")
    method = ActAt(build_method(cfg), 3, lambda: signal.raise_signal(signal.SIGINT))
    with pytest.raises(Interrupted):
        train(method, cfg, tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["iteration"] == 3
    train(build_method(cfg), cfg, tmp_path / "resumed", resume="auto")
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert resumed["iteration"] == 8
    for key in ("model", "ema"):
        for name, tensor in straight[key].items():
            torch.testing.assert_close(resumed[key][name], tensor, rtol=1e-3, atol=1e-5)
    identical = all(torch.equal(t, resumed["model"][n]) for n, t in straight["model"].items())
    print(f"resumed weights bit-identical to the uninterrupted run: {identical}")


@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_meta_step_equals_the_per_task_loop_on_cuda(first_order):
    from srlab.mzsr.meta import task_test_losses, task_test_losses_loop
    from srlab.mzsr.model import MZSRNet

    torch.manual_seed(0)
    model = MZSRNet(channels=16, num_layers=4).to(DEVICE)
    for p in model.parameters():  # random weights (the real init zeroes the last layer)
        torch.nn.init.normal_(p, std=0.1)
    data = [torch.rand(5, 4, 3, 24, 24, device=DEVICE) for _ in range(4)]
    results = []
    for losses_fn in (task_test_losses, task_test_losses_loop):
        params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
        losses = losses_fn(model, params, *data, steps=3, inner_lr=0.01, first_order=first_order)
        results.append((losses, torch.autograd.grad(losses.sum(), list(params.values()))))
    (batched, g_batched), (loop, g_loop) = results
    torch.testing.assert_close(batched, loop, rtol=1e-4, atol=1e-6)
    for a, b in zip(g_batched, g_loop):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_classsr_batched_routing_equals_one_by_one_routing(shared_data):
    from srlab.checkpoint import model_state
    from srlab.classsr.infer import route_and_upscale
    from srlab.data import load_image, to_tensor

    weights = REPO / "weights" / "classsr" / "classsr_x4_cpu.pt"
    model = build_method(load_config(CONFIGS / "classsr" / "test_x4_cpu.yaml")).build_model()
    model.load_state_dict(model_state(load_checkpoint(weights), weights))
    model = model.to(DEVICE).eval()
    butterfly = next((shared_data / "benchmarks" / "Set5" / "HR").glob("butterfly.*"))  # .png, or .webp in a data pack
    lr = to_tensor(load_image(butterfly)[:128, :128]).to(DEVICE)
    batched, classes, _ = route_and_upscale(model.classifier, model.branches, lr, 4, max_tiles=256)
    one_by_one, classes_one, _ = route_and_upscale(model.classifier, model.branches, lr, 4, max_tiles=1)
    assert torch.equal(classes, classes_one)
    assert len(set(classes.tolist())) > 1  # the test routes to more than one branch
    torch.testing.assert_close(batched, one_by_one, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("config, weights", [
    ("asymsr/asym_vdsr_x234_cpu.yaml", "asymsr/asym_vdsr_x234_cpu.pt"),
    ("classsr/test_x4_cpu.yaml", "classsr/classsr_x4_cpu.pt"),
], ids=["asym_vdsr", "classsr"])
def test_evaluation_on_cuda_equals_the_cpu_within_0_01_db_on_set5(config, weights, shared_data, tmp_path):
    results: dict[str, dict] = {}
    for device in ("cpu", DEVICE):
        out = tmp_path / f"on_{len(results)}"
        proc = subprocess.run([sys.executable, "scripts/test.py", "--config", f"configs/{config}", "--checkpoint",
                               f"weights/{weights}", "--opt", "test.datasets=[Set5]", "--opt", f"device={device}",
                               "--out", str(out)],
                              cwd=REPO, capture_output=True, text=True, env={**os.environ, "SR_DATA_ROOT": str(shared_data)})
        assert proc.returncode == 0, proc.stderr[-2000:]
        records = json.loads((out / "results.json").read_text())["records"]
        results[device] = {(r["method"], r["scale"]): (r["psnr_y"], r["ssim_y"]) for r in records}
    assert results["cpu"].keys() == results[DEVICE].keys()
    for key, (psnr, ssim) in results["cpu"].items():
        assert abs(results[DEVICE][key][0] - psnr) <= 0.01, (key, results[DEVICE][key], psnr)
        assert abs(results[DEVICE][key][1] - ssim) <= 1e-4, (key, results[DEVICE][key], ssim)
