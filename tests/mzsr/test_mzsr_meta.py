"""The MAML core: the second-order meta-gradient is right (finite differences), first order
differs, and the task-batched version equals the per-task loop."""
import pytest
import torch
from torch import nn

from srlab.mzsr.meta import adapt, task_test_losses, task_test_losses_loop
from srlab.mzsr.model import MZSRNet


def tiny_problem(tasks=1):
    torch.manual_seed(0)
    model = MZSRNet(channels=4, num_layers=3, in_channels=1).double()
    for p in model.parameters():  # random weights (the real init zeroes the last layer)
        nn.init.normal_(p, std=0.3)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    data = [torch.rand(tasks, 2, 1, 6, 6, dtype=torch.float64) for _ in range(4)]
    return model, params, data


def meta_loss(model, params, data, first_order=False, steps=2, inner_lr=0.05):
    tx, ty, vx, vy = (d[0] for d in data)
    fast = adapt(model, params, tx, ty, steps, inner_lr, first_order)
    return torch.nn.functional.l1_loss(torch.func.functional_call(model, fast, (vx,)), vy)


def test_second_order_meta_gradient_matches_finite_differences():
    model, params, data = tiny_problem()
    grads = torch.autograd.grad(meta_loss(model, params, data), list(params.values()))
    first = torch.autograd.grad(meta_loss(model, params, data, first_order=True), list(params.values()))
    torch.manual_seed(1)
    for _ in range(3):  # directional derivatives along random directions
        direction = {k: torch.randn_like(v) for k, v in params.items()}
        eps = 1e-6
        shifted = lambda sign: {k: (v + sign * eps * direction[k]).detach().requires_grad_(True)  # noqa: E731
                                for k, v in params.items()}
        numeric = (meta_loss(model, shifted(1), data).item() - meta_loss(model, shifted(-1), data).item()) / (2 * eps)
        analytic = sum((g * d).sum() for g, d in zip(grads, direction.values())).item()
        first_order = sum((g * d).sum() for g, d in zip(first, direction.values())).item()
        assert analytic == pytest.approx(numeric, rel=1e-4)
        # First order drops the Hessian terms: a different number, off by far more than 1e-4.
        assert abs(first_order - numeric) > 1e-3 * abs(numeric)


def test_second_order_keeps_the_graph_and_first_order_does_not():
    model, params, data = tiny_problem()
    tx, ty = data[0][0], data[1][0]
    # fast = p - lr * grad(p): second order, the first layer's fast weights depend on the last
    # layer's weights through the inner gradient (a cross term of the Hessian); first order, not.
    first_layer, last_layer = "body.0.weight", "body.4.weight"
    fast = adapt(model, params, tx, ty, 1, 0.05)
    cross = torch.autograd.grad(fast[first_layer].sum(), params[last_layer], allow_unused=True)[0]
    assert cross is not None and cross.abs().max() > 1e-6
    fast = adapt(model, params, tx, ty, 1, 0.05, first_order=True)
    cross = torch.autograd.grad(fast[first_layer].sum(), params[last_layer], allow_unused=True)[0]
    assert cross is None or cross.abs().max() == 0


@pytest.mark.parametrize("first_order", [False, True])
def test_batched_tasks_equal_the_per_task_loop(first_order):
    model, params, data = tiny_problem(tasks=3)
    batched = task_test_losses(model, params, *data, steps=3, inner_lr=0.05, first_order=first_order)
    loop = task_test_losses_loop(model, params, *data, steps=3, inner_lr=0.05, first_order=first_order)
    assert batched.shape == (3, 3)
    torch.testing.assert_close(batched, loop, rtol=1e-10, atol=1e-12)
    g_batched = torch.autograd.grad(batched.sum(), list(params.values()))
    g_loop = torch.autograd.grad(loop.sum(), list(params.values()))
    for a, b in zip(g_batched, g_loop):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
