"""MZSR stages 2 and 3 and ZSSR: task batches, the annealed multi-step loss (and that TensorBoard
shows it), the meta-gradient through the runner's backward, test-time adaptation, ZSSR's lr
policy, the Table-2 test script and scripts/zeroshot.py."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, run_inline, run_script, write_png
from torch import nn

from srlab.config import load_config
from srlab.degradation import degrade, named_degradation, random_kernels
from srlab.errors import ConfigError
from srlab.imresize import imresize
from srlab.mzsr.meta import adapt, multi_step_weights
from srlab.mzsr.model import MZSRNet
from srlab.mzsr.zeroshot import adapt_and_upscale, son_pair, step_lrs
from srlab.mzsr.zssr import ZSSRSchedule, lr_should_drop, zssr
from srlab.registry import build_method
from srlab.runner import train

META_CPU = REPO / "configs" / "mzsr" / "meta_x2_cpu.yaml"
TEST_CPU = REPO / "configs" / "mzsr" / "test_x2_cpu.yaml"
TINY_MODEL = ["model.channels=4", "model.num_layers=3"]


def tiny_meta(overrides=()):
    opts = ["options.pretrained=null", "options.tasks=2", "options.task_train=2", "options.task_test=1",
            "train.batch_size=6", "train.patch_size=16", *TINY_MODEL, *overrides]
    return build_method(load_config(META_CPU, opts))


def random_weights(model):
    for p in model.parameters():
        nn.init.normal_(p, std=0.2)
    return model


def test_multi_step_weights_start_equal_sum_to_one_and_anneal_to_the_last_step():
    first = multi_step_weights(0, 5, 100)
    torch.testing.assert_close(first, torch.full((5,), 0.2))
    lasts = [multi_step_weights(i, 5, 100)[-1].item() for i in range(0, 200, 10)]
    assert all(b > a for a, b in zip(lasts[:10], lasts[1:10]))  # rising while annealing
    for i in (0, 37, 99, 500):
        assert multi_step_weights(i, 5, 100).sum().item() == pytest.approx(1.0)
    final = multi_step_weights(10_000, 5, 100)
    torch.testing.assert_close(final[:-1], torch.full((4,), 0.03 / 5))
    assert final[-1].item() == pytest.approx(1 - 4 * 0.03 / 5)


def test_a_task_batch_uses_one_kernel_per_task():
    method = tiny_meta(["options.photo_share=0"])  # the paper's tasks: MZSR's Gaussians only
    method.build_model()
    hr = (torch.rand(6, 3, 16, 16) * 255).to(torch.uint8)
    torch.manual_seed(3)
    batch = method.training_batch(hr, iteration=0)
    torch.manual_seed(3)
    kernels = random_kernels(2, 2, 15)
    assert batch["train_x"].shape == (2, 2, 3, 16, 16) and batch["test_x"].shape == (2, 1, 3, 16, 16)
    for t in range(2):
        patches = hr[3 * t : 3 * t + 3].float() / 255
        expected = imresize(degrade(patches, kernels[t], 2, "direct"), scale=2)
        torch.testing.assert_close(batch["train_x"][t], expected[:2])
        torch.testing.assert_close(batch["test_x"][t], expected[2:])
        torch.testing.assert_close(batch["test_y"][t], patches[2:])


def test_multi_scale_tasks_each_draw_a_scale_and_its_kernel():
    method = tiny_meta(["options.tasks=4", "train.batch_size=12", "train.scales=[2,4]", "options.photo_share=0"])
    method.build_model()
    hr = (torch.rand(12, 3, 16, 16) * 255).to(torch.uint8)
    torch.manual_seed(5)
    batch = method.training_batch(hr, iteration=0)
    torch.manual_seed(5)
    scales = torch.tensor([2, 4])[torch.randint(2, (4,))]
    kernels = random_kernels(4, scales, 15)
    assert set(scales.tolist()) == {2, 4}  # seed 5 draws both, so both paths run
    for t, scale in enumerate(scales.tolist()):
        patches = hr[3 * t : 3 * t + 3].float() / 255
        expected = imresize(degrade(patches, kernels[t], scale, "direct").clamp(0, 1), scale=scale)
        torch.testing.assert_close(batch["train_x"][t], expected[:2])
        torch.testing.assert_close(batch["test_x"][t], expected[2:])
    # the kernels are drawn for each task's own scale: l1 <= 2.5 x scale, and x4 kernels are wider
    torch.manual_seed(0)
    k2 = random_kernels(1, 2, 15)
    torch.manual_seed(0)
    k4 = random_kernels(1, torch.tensor([4]), 15)
    assert k4.max() < k2.max()  # the same random numbers spread over a larger variance
    with pytest.raises(ConfigError, match=r"train.patch_size: must be a multiple of every scale in train.scales \[2, 3\]"):
        tiny_meta(["train.scales=[2,3]"])


def test_the_runner_backward_is_the_second_order_meta_gradient():
    method = tiny_meta(["options.inner_steps=2", "options.pretrain_loss_weight=0"])  # the MAML part alone
    model = random_weights(method.build_model()).double()
    hr = (torch.rand(6, 3, 16, 16) * 255).to(torch.uint8)
    batch = {k: v.double() for k, v in method.training_batch(hr, iteration=50).items()}
    model.zero_grad()
    method.loss(model, batch)["loss"].backward()
    # The same multi-step loss written out with adapt(), one task and one step at a time.
    params = dict(model.named_parameters())
    total = 0
    for t in range(2):
        fast = params
        for k in range(2):
            fast = adapt(model, fast, batch["train_x"][t], batch["train_y"][t], 1, 0.01)
            test_loss = F.l1_loss(torch.func.functional_call(model, fast, (batch["test_x"][t],)), batch["test_y"][t])
            total = total + batch["step_weights"][k] * test_loss / 2
    expected = torch.autograd.grad(total, list(params.values()))
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-9, atol=1e-12)


def test_meta_training_logs_the_annealed_weights_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    opts = ["train.datasets=[skimage_train]", "train.total_iters=4", "train.log_every=1", "train.num_workers=0",
            "train.checkpoint_every=4", "options.anneal_iters=10", "options.val_adapt_steps=1",
            "val.datasets=[skimage_test]", "val.max_images=1", "val.degradations=[gd_2.0]"]
    method = tiny_meta(opts)
    records = train(method, method.cfg, tmp_path)
    assert records[0].degradation == "gd_2.0" and records[0].method == "mzsr_meta"
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    last = [e.value for e in events.Scalars("train/msl_weight/last")]
    first = [e.value for e in events.Scalars("train/msl_weight/first")]
    assert len(last) == 4 and all(b > a for a, b in zip(last, last[1:]))
    assert all(b < a for a, b in zip(first, first[1:]))
    assert "train/task_test_l1/step3" in events.Tags()["scalars"]


def test_two_processes_with_half_the_tasks_each_meta_train_what_one_process_does(tmp_path):
    """torchrun, 2 gloo processes with 2 of the 4 tasks each: the meta-gradients are averaged after
    backward (all_reduce), and the weights after 3 meta-steps are one process's with all 4 tasks."""
    import os
    import subprocess
    import sys

    from srlab.checkpoint import load_checkpoint

    opts = ["options.pretrained=null", "options.tasks=4", "options.task_train=2", "options.task_test=1",
            "options.inner_steps=2", "train.batch_size=12", "train.patch_size=16", *TINY_MODEL,
            "train.datasets=[skimage_train]", "train.total_iters=3", "train.num_workers=0", "train.log_every=1",
            "train.checkpoint_every=3", "val.datasets=[skimage_test]", "val.max_images=1",
            "options.val_adapt_steps=0", "seed=5"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29518",
               "scripts/train.py", "--config", str(META_CPU), "--out", str(tmp_path / "two"),
               *(x for opt in opts for x in ("--opt", opt))]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training mzsr_meta on cpu x2" in (tmp_path / "two" / "log.txt").read_text()
    method = build_method(load_config(META_CPU, opts))
    train(method, method.cfg, tmp_path / "one")
    two = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")["model"]
    one = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")["model"]
    start = {k: v for k, v in MZSRNet(channels=4, num_layers=3).state_dict().items()}
    assert any(not torch.equal(one[k], start[k]) for k in one)  # it trained
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6)


def test_meta_tasks_must_split_evenly_across_processes():
    from srlab.distributed import check_shares
    from srlab.errors import UserError

    method = tiny_meta()  # 2 tasks of 3 patches
    assert method.gradient_sync == "all_reduce" and method.batch_group == 3
    check_shares(6, 2, method.batch_group)
    with pytest.raises(UserError, match="6 does not split into 3 processes' equal shares of whole groups of 3"):
        check_shares(6, 3, method.batch_group)
    check_shares(6, 3, 1)  # 2 patches each, for a method without groups


def test_constant_step_weights_stay_equal_as_in_the_released_models():
    hr = (torch.rand(6, 3, 16, 16) * 255).to(torch.uint8)
    constant = tiny_meta(["options.step_weights=constant", "options.inner_steps=4"])
    annealed = tiny_meta(["options.inner_steps=4", "options.anneal_iters=10"])
    for method in (constant, annealed):
        method.build_model()
    for iteration in (0, 5, 1000):
        torch.testing.assert_close(constant.training_batch(hr, iteration)["step_weights"], torch.full((4,), 0.25))
    assert annealed.training_batch(hr, 1000)["step_weights"][-1] > 0.9
    with pytest.raises(ConfigError, match="options.step_weights"):
        tiny_meta(["options.step_weights=equal"])


def test_the_stage1_loss_term_adds_the_unadapted_bicubic_l1_and_draws_nothing_random():
    hr = (torch.rand(12, 3, 16, 16) * 255).to(torch.uint8)
    multi = ["options.tasks=4", "train.batch_size=12", "train.scales=[2,4]"]
    plain = tiny_meta([*multi, "options.pretrain_loss_weight=0"])
    anchored = tiny_meta([*multi, "options.pretrain_loss_weight=0.5"])
    model = random_weights(plain.build_model())
    anchored.build_model()
    torch.manual_seed(5)  # draws x2 and x4 tasks
    without = plain.training_batch(hr, iteration=0)
    torch.manual_seed(5)
    batch = anchored.training_batch(hr, iteration=0)
    for key in without:  # the same tasks: the term takes nothing from the random stream
        torch.testing.assert_close(batch[key], without[key])
    assert "bicubic_x" not in without
    scales = torch.tensor([2, 4])[torch.randint(2, (4,), generator=torch.Generator().manual_seed(5))]
    for t, scale in enumerate(scales.tolist()):  # each task's patches, MATLAB-bicubic at its own scale
        expected = imresize(imresize(batch["test_y"][t], scale=1 / scale).clamp(0, 1), size=(16, 16))
        torch.testing.assert_close(batch["bicubic_x"][t], expected)
    base, total = plain.loss(model, without), anchored.loss(model, batch)
    stage1_l1 = F.l1_loss(model(batch["bicubic_x"].flatten(0, 1)), batch["test_y"].flatten(0, 1))
    torch.testing.assert_close(total["pretrain_l1"], stage1_l1)
    torch.testing.assert_close(total["loss"], base["loss"] + 0.5 * stage1_l1)
    with pytest.raises(ConfigError, match=r"options.pretrain_loss_weight: must be a number >= 0, got -1.0"):
        tiny_meta(["options.pretrain_loss_weight=-1"])


def test_meta_config_errors_are_one_line_and_name_the_key():
    with pytest.raises(ConfigError, match=r"train.batch_size: must be options.tasks x .* = 6, got 7"):
        tiny_meta(["train.batch_size=7"])
    with pytest.raises(ConfigError, match=r"options.inner_stepz: unknown key; did you mean 'inner_steps'"):
        tiny_meta(["options.inner_stepz=3"])
    with pytest.raises(ConfigError, match=r"options.task_batching: 'grouped' is not allowed"):
        tiny_meta(["options.task_batching=grouped"])
    with pytest.raises(ConfigError, match=r"options: method 'supervised' has no options"):
        build_method(load_config(REPO / "configs" / "demo.yaml", ["options.tasks=3"]))


def test_the_son_pair_is_the_lr_image_degraded_again():
    lr = torch.rand(1, 3, 21, 18)
    gd = named_degradation("gd_2.0")
    x, y = son_pair(lr, 2, gd)
    assert y.shape == (1, 3, 20, 18) and torch.equal(y, lr[..., :20, :18])
    torch.testing.assert_close(x, imresize(degrade(y, gd.kernel, 2, "direct"), size=(20, 18)))
    assert step_lrs(6, [2e-2, 1e-2, 1e-2, 1e-2, 5e-3]) == [2e-2, 1e-2, 1e-2, 1e-2, 5e-3, 5e-3]


def test_adaptation_lowers_the_son_loss_and_zero_steps_is_the_plain_network():
    torch.manual_seed(0)
    model = random_weights(MZSRNet(channels=8, num_layers=3)).eval()
    for p in model.parameters():
        p.data.mul_(0.3)
    lr = torch.rand(1, 3, 24, 24)
    gd = named_degradation("gd_2.0")
    before = list(model.state_dict().values())
    sr0 = adapt_and_upscale(model, lr, 2, gd, [])
    torch.testing.assert_close(sr0, model(imresize(lr, scale=2)))
    x, y = son_pair(lr, 2, gd)
    from srlab.mzsr.meta import finetune

    params = {k: v.detach() for k, v in model.named_parameters()}
    losses = [F.l1_loss(torch.func.functional_call(model, finetune(model, params, x, y, [0.02] * n), (x,)), y).item()
              for n in (0, 1, 5)]
    assert losses[2] < losses[1] < losses[0]
    assert adapt_and_upscale(model, lr, 2, gd, [0.02] * 5).shape == (1, 3, 48, 48)
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values()))  # weights untouched
    # plain SGD is adapt()'s step, exactly (the paper's MZSR(n))
    expected = adapt(model, dict(model.named_parameters()), x, y, 3, 0.02, first_order=True)
    for name, p in finetune(model, params, x, y, [0.02] * 3).items():
        torch.testing.assert_close(p, expected[name].detach(), rtol=0, atol=0)


def test_backtracking_never_lets_the_son_loss_rise_and_changes_nothing_when_no_step_overshoots():
    from srlab.mzsr.meta import finetune

    torch.manual_seed(0)
    model = random_weights(MZSRNet(channels=8, num_layers=3)).eval()
    for p in model.parameters():
        p.data.mul_(0.3)
    x, y = son_pair(torch.rand(1, 3, 24, 24), 2, named_degradation("gd_2.0"))
    params = {k: v.detach() for k, v in model.named_parameters()}

    def son_l1(weights):
        return F.l1_loss(torch.func.functional_call(model, weights, (x,)), y).item()

    start, big = son_l1(params), [50.0] * 6  # far too large: plain SGD overshoots
    assert son_l1(finetune(model, params, x, y, big)) > start
    steps = []
    backtracked = finetune(model, params, x, y, big, on_step=lambda: steps.append(1), backtrack=True)
    assert len(steps) == 6 and son_l1(backtracked) <= start
    assert any(not torch.equal(backtracked[k], params[k]) for k in params)  # it halved its way to a smaller step
    small = [0.02] * 4  # every step lowers the loss: backtracking is plain SGD
    for name, p in finetune(model, params, x, y, small, backtrack=True).items():
        torch.testing.assert_close(p, finetune(model, params, x, y, small)[name], rtol=0, atol=0)


def test_zssr_lr_policy_drops_only_when_the_error_stops_falling():
    s = ZSSRSchedule()
    falling = [(i * 50, 1.0 - 0.01 * i) for i in range(6)]
    flat = [(i * 50, 0.5 + 0.001 * (-1) ** i) for i in range(6)]
    assert not lr_should_drop(falling, s) and lr_should_drop(flat, s)


@pytest.mark.parametrize("augment", ["official", "dihedral"])
def test_zssr_trains_a_fresh_network_on_the_image(augment):
    lr = torch.rand(1, 3, 20, 20)
    gd = named_degradation("gd_2.0")
    torch.manual_seed(0)
    model = MZSRNet(channels=8, num_layers=3)
    start = [p.detach().clone() for p in model.parameters()]
    sr = zssr(model, lr, 2, gd, iters=5, learning_rate=1e-3, crop=16, augment=augment)
    assert sr.shape == (1, 3, 40, 40)
    assert any(not torch.equal(a, b) for a, b in zip(start, model.parameters()))
    torch.manual_seed(0)
    again = zssr(MZSRNet(channels=8, num_layers=3), lr, 2, gd, iters=5, learning_rate=1e-3, crop=16, augment=augment)
    torch.testing.assert_close(sr, again)  # seeded crops and augmentation


class Draws:
    """Stands in for numpy's Generator in official_father: the given values, in order."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)

    uniform = normal = lambda self, *args: self.values.pop(0)  # noqa: E731


def test_official_zssr_fathers_are_exact_crops_or_warps_and_never_rotated():
    from srlab.mzsr.zssr import official_father

    image = torch.rand(1, 3, 30, 40, dtype=torch.float64)
    # chooser 0.01 (as is) / 0.3 (whole-pixel shift): a plain crop at round(u * (size - crop))
    for chooser in (0.01, 0.3):
        father = official_father(image, 16, Draws(chooser, 0.5, 0.25))
        torch.testing.assert_close(father, image[..., 4:20, 12:28], rtol=0, atol=1e-12)
    # affine, scale 1, no jitter or shear, whole-pixel shifts: the same crop through the bicubic warp
    father = official_father(image, 16, Draws(0.9, 1.0, 0.0, 0.0, 0.0, 12 / 24, 4 / 14))
    torch.testing.assert_close(father, image[..., 4:20, 12:28], rtol=0, atol=1e-9)
    # scale 0.5: the image shrinks, and what lies outside it is zero, as in the official code
    father = official_father(image, 16, Draws(0.9, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0))
    assert father[..., :, :6].abs().max() == 0 and father[..., 8:, 8:].abs().max() > 0


def test_official_zssr_fathers_match_opencvs_warp():
    """The official code warps with cv2.warpPerspective(INTER_CUBIC); measured: equal to 1e-5."""
    cv2 = pytest.importorskip("cv2")  # not a dependency; where it is installed
    from srlab.mzsr.zssr import official_father

    image = np.random.default_rng(0).random((70, 90, 3)).astype(np.float32)
    draws = [0.9, 0.7, 0.4, -0.5, 0.8, 0.3, 0.6]  # affine: scale .7, aspect .1, shears -.05 and .08
    father = official_father(torch.from_numpy(image).permute(2, 0, 1)[None].double(), 48, Draws(*draws))
    s, d, shx, shy = 0.7, 0.4 * 0.25, -0.5 * 0.1, 0.8 * 0.1
    sx, sy = 0.3 * (s * 90 - 48), 0.6 * max(s * 70 - 48, 0)
    c = np.array([[1, 0, 45], [0, 1, 35], [0, 0, 1.0]])
    m = (c @ np.array([[1, 0, -sx], [0, 1, -sy], [0, 0, 1]]) @ np.array([[1, shx, 0], [shy, 1, 0], [0, 0, 1]])
         @ np.diag([s + d / 2, s - d / 2, 1]) @ np.linalg.inv(c))
    expected = np.clip(cv2.warpPerspective(image, m, (48, 48), flags=cv2.INTER_CUBIC), 0, 1)
    np.testing.assert_allclose(father[0].permute(1, 2, 0).numpy(), expected, atol=3e-5)


def test_back_projection_makes_the_sr_consistent_with_the_lr():
    from srlab.mzsr.zssr import back_project

    gd = named_degradation("gd_2.0")
    hr = torch.rand(1, 3, 32, 32)
    lr = gd.apply(hr, 2)
    sr = imresize(lr, scale=2).clamp(0, 1)
    errors = []
    for _ in range(4):
        errors.append((gd.apply(sr, 2) - lr).abs().mean().item())
        sr = back_project(sr, lr, 2, gd)
    assert all(b < a for a, b in zip(errors, errors[1:]))


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A checkpoint as train.py writes it (weights + config), for a 4-channel network."""
    method = tiny_meta()
    torch.manual_seed(0)
    model = random_weights(method.build_model())
    for p in model.parameters():
        p.data.mul_(0.1)
    from srlab.checkpoint import save_checkpoint
    from srlab.config import to_dict

    path = tmp_path / "tiny.pt"
    save_checkpoint({"model": model.state_dict(), "config": to_dict(method.cfg)}, path)
    return path


def test_the_test_script_prints_the_table2_comparison(tmp_path, tiny_checkpoint):
    hr = (np.random.default_rng(0).random((24, 28, 3)) * 255).astype(np.uint8)
    write_png(tmp_path / "hr" / "a.png", hr)
    out = tmp_path / "out"
    opts = [f"options.pretrained={tiny_checkpoint}", "options.zssr_iters=3", "options.zssr_crop=12",
            "options.adapt_steps=[0,2]", *TINY_MODEL, "test.degradations=[gd_2.0,gb_1.3]", "test.scales=[2]"]
    result = run_script("test.py", "--config", TEST_CPU, "--checkpoint", tiny_checkpoint,
                        "--dataset", f"tiny={tmp_path / 'hr'}", "--out", out, *sum((["--opt", o] for o in opts), []))
    assert result.returncode == 0, result.stderr
    header = [line for line in result.stdout.splitlines() if "Bicubic" in line]
    assert [c.strip() for c in header[0].strip("| ").split("|")] == [
        "dataset", "scale", "degradation", "Bicubic", "pretrained", "MZSR(0)", "MZSR(2)", "ZSSR"]
    records = json.loads((out / "results.json").read_text())["records"]
    assert {(r["method"], r["degradation"]) for r in records} == {
        (m, d) for m in ("pretrained", "MZSR(0)", "MZSR(2)", "ZSSR") for d in ("gd_2.0", "gb_1.3")}
    by = {(r["method"], r["degradation"]): r for r in records}
    # The stage-1 row and MZSR(0) use the same weights here (one checkpoint for both): same numbers.
    assert by[("pretrained", "gd_2.0")]["psnr_y"] == by[("MZSR(0)", "gd_2.0")]["psnr_y"]
    assert by[("MZSR(2)", "gd_2.0")]["psnr_y"] != by[("MZSR(0)", "gd_2.0")]["psnr_y"]


def test_zeroshot_script_super_resolves_one_image(tmp_path, tiny_checkpoint):
    lr = (np.random.default_rng(0).random((10, 14, 3)) * 255).astype(np.uint8)
    image = write_png(tmp_path / "lr.png", lr)
    np.save(tmp_path / "k.npy", np.outer([1, 2, 1], [1, 2, 1]).astype(float))
    for i, kernel in enumerate(("gd_2.0", tmp_path / "k.npy")):
        out = tmp_path / f"sr{i}.png"
        result = run_inline("zeroshot.py", "--checkpoint", tiny_checkpoint, "--image", image, "--kernel", kernel,
                            "--scale", 2, "--steps", 2, "--out", out)
        assert result.returncode == 0, result.stderr
        from PIL import Image

        assert Image.open(out).size == (28, 20)
    bad = run_inline("zeroshot.py", "--checkpoint", tiny_checkpoint, "--image", image, "--kernel", "gd_3.0",
                     "--out", tmp_path / "x.png")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown degradation 'gd_3.0'" in bad.stderr


def test_meta_benchmark_runs_and_reports_every_version(tmp_path):
    result = run_script("benchmark_mzsr.py", "--device", "cpu", "--tasks", 2, "--steps", 1, "--patches", 1,
                        "--size", 8, "--repeats", 1, "--out", tmp_path / "b.json")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert set(report["seconds_per_meta_step"]) == {"per_task_loop", "vmap_batched", "loop_channels_last"}
    assert report["auto_picks"] == "loop_channels_last" and all(v > 0 for v in report["speedup_over_loop"].values())


@pytest.mark.parametrize("config, weights", [(TEST_CPU, "meta_x2_cpu.pt"),
                                             (REPO / "configs" / "mzsr" / "test_bicubic_x2_cpu.yaml",
                                              "meta_bicubic_x2_cpu.pt")], ids=["direct_gd_2.0", "bicubic_gb_1.3"])
def test_committed_cpu_weights_adapt_to_a_blurred_set5_image(config, weights, tmp_path, shared_data):
    """The shipped CPU weights through the real CLI, on Set5's 'bird' with the config's kernel (seconds)."""
    import shutil

    shutil.copy(shared_data / "benchmarks" / "Set5" / "HR" / "bird.png", tmp_path / "bird.png")
    result = run_script("test.py", "--config", config, "--checkpoint", REPO / "weights" / "mzsr" / weights,
                        "--dataset", f"bird={tmp_path}", "--out", tmp_path / "out", "--opt", "options.zssr=false")
    assert result.returncode == 0, result.stderr
    psnr = {r["method"]: r["psnr_y"] for r in json.loads((tmp_path / "out" / "results.json").read_text())["records"]}
    bicubic = json.loads((tmp_path / "out" / "results.json").read_text())["records"][0]["bicubic_psnr_y"]
    assert psnr["MZSR(10)"] > psnr["MZSR(1)"] > psnr["MZSR(0)"]
    assert psnr["MZSR(10)"] > psnr["pretrained"] and psnr["MZSR(10)"] >= bicubic + 3
    if weights == "meta_x2_cpu.pt":  # the bicubic-subsampling model starts below stage 1 (Set5: 28.73 vs 31.62)
        assert psnr["MZSR(0)"] > psnr["pretrained"]


@pytest.mark.slow  # 20-35 s: all of Set5; the parts are the stage-1 loss and backtracking tests above
def test_the_shipped_bicubic_model_adapts_without_losing_stage1_on_plain_bicubic_set5(tmp_path, shared_data):
    """The promise on MATLAB-bicubic Set5 x2: MZSR(10) within 0.3 dB of stage 1, MZSR(1) above interpolation
    (before the stage-1 loss term and backtracking: 35.31 and 32.14, stage 1 36.57, interpolation 33.65)."""
    result = run_script("test.py", "--config", REPO / "configs" / "mzsr" / "test_bicubic_x2_cpu.yaml",
                        "--checkpoint", REPO / "weights" / "mzsr" / "meta_bicubic_x2_cpu.pt", "--out", tmp_path / "out",
                        "--opt", "options.zssr=false", "--opt", "options.adapt_steps=[1,10]",
                        "--dataset", f"Set5={shared_data / 'benchmarks' / 'Set5' / 'HR'}",
                        "--opt", "test.degradations=[bicubic]")
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "out" / "results.json").read_text())["records"]
    psnr = {r["method"]: r["psnr_y"] for r in records}
    assert psnr["MZSR(10)"] >= psnr["pretrained"] - 0.3
    assert psnr["MZSR(1)"] > records[0]["bicubic_psnr_y"]


def test_bad_inputs_are_one_line_errors(tmp_path, tiny_checkpoint):
    image = write_png(tmp_path / "lr.png", np.zeros((3, 9, 3), np.uint8))
    np.save(tmp_path / "nan.npy", np.full((3, 3), np.nan))
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    cases = [
        (["--image", image, "--kernel", "gd_2.0"], "too small to degrade once more"),
        (["--image", image, "--kernel", tmp_path / "nan.npy"], "finite, non-negative"),
        (["--image", image, "--kernel", tmp_path / "text.npy"], "cannot read a 2-D kernel"),
    ]
    for args, message in cases:
        result = run_inline("zeroshot.py", "--checkpoint", tiny_checkpoint, *args, "--out", tmp_path / "x.png")
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    with pytest.raises(ConfigError, match="options.pretrained: .*missing.pt: checkpoint not found"):
        tiny_meta(["options.pretrained=missing.pt"]).build_model()
    with pytest.raises(ConfigError, match="does not take the bicubic-upscaled RGB image"):
        build_method(load_config(TEST_CPU, ["model.type=vdsr", "model.channels=4", "model.num_layers=3"])).build_model()
    with pytest.raises(ConfigError, match="zssr_crop >= 2 x the largest test scale = 8"):
        build_method(load_config(TEST_CPU, ["options.zssr_crop=6", "test.scales=[4]"]))
    with pytest.raises(ConfigError, match="train.amp: not supported for mzsr_meta"):
        tiny_meta(["train.amp=bf16"])


def test_stage1_config_is_the_official_recipe_lr_halved_every_100k_down_to_1e4_for_800k():
    from srlab.optim import lr_factor

    for scale in (2, 4):
        cfg = load_config(REPO / "configs" / "mzsr" / f"pretrain_x{scale}.yaml")
        t = cfg.train
        assert t.total_iters == 800_000 and t.batch_size == 32 and t.patch_size == 96
        lrs = [t.optimizer.lr * lr_factor(step, t.scheduler, t.total_iters, t.optimizer.lr)
               for step in (0, 99_999, 100_000, 199_999, 200_000, 500_000, 799_999)]
        assert lrs == pytest.approx([4e-4, 4e-4, 2e-4, 2e-4, 1e-4, 1e-4, 1e-4])


def test_every_mzsr_config_loads_and_builds_the_papers_setting():
    from srlab.registry import METHODS

    for path in sorted((REPO / "configs" / "mzsr").glob("*.yaml")):
        cfg = load_config(path, [], METHODS)
        method = build_method(cfg)
        if "_cpu" not in path.name:
            assert cfg.model == {"type": "mzsr_net"}  # the paper's network, 225,091 parameters
        if cfg.method == "mzsr_meta" and "_cpu" not in path.name:
            o = method.options
            assert (o.tasks, o.task_train, o.task_test, o.inner_steps, o.inner_lr, o.first_order) == (5, 8, 8, 5, 0.01, False)
            assert cfg.train.patch_size == 64 and cfg.train.total_iters == 100_000 and cfg.train.optimizer.lr == 1e-4
    assert sum(p.numel() for p in MZSRNet().parameters()) == 225_091
