"""The MAML core of MZSR: inner SGD steps on fast weights, differentiable, batched over tasks.

A network's weights are a plain dict ``{name: tensor}`` and the network is called with
``torch.func.functional_call(model, params, (x,))``, so the inner loop never touches the
module's own parameters and the meta-gradient flows back to them through every inner step.

* ``adapt(model, params, lr_input, hr, steps, inner_lr, first_order=False)``: the fast weights
  after ``steps`` plain SGD steps on ``L1(model(lr_input), hr)``, one task. Second order by
  default: the result is differentiable with respect to ``params`` through the inner gradients
  (``create_graph=True``); ``first_order=True`` treats the inner gradients as constants (FOMAML).
* ``task_test_losses(...)``: for T tasks at once (``torch.func.vmap`` over the task dimension),
  the task-test loss after each inner step, ``(T, steps)``: what MZSR's multi-step loss weighs.
  ``task_test_losses_loop`` is the same with a Python loop over tasks: as fast or faster on a
  CPU (see ``scripts/benchmark_mzsr.py``), so ``MetaTransfer`` picks it there.
* ``multi_step_weights(iteration, steps, anneal_iters)``: the multi-step loss weights of
  "How to train your MAML" (Antoniou et al. 2019), annealed towards the last step.
* ``finetune(model, params, x, y, lrs, backtrack=False)``: test-time adaptation, no
  meta-gradient: one plain SGD step per entry of ``lrs`` (``backtrack``: undo a step that raises
  the loss and halve the later ones).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

Params = dict[str, torch.Tensor]


def adapt(model: nn.Module, params: Params, lr_input: torch.Tensor, hr: torch.Tensor, steps: int,
          inner_lr: float, first_order: bool = False) -> Params:
    """Fast weights after ``steps`` SGD steps of L1(model(lr_input), hr) from ``params``."""
    for _ in range(steps):
        loss = F.l1_loss(functional_call(model, params, (lr_input,)), hr)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        params = {name: p - inner_lr * g for (name, p), g in zip(params.items(), grads)}
    return params


def memory_format_of(params: Params) -> torch.memory_format:
    """Channels-last if the first (convolution) weight is stored channels-last."""
    first = next(iter(params.values()))
    cl = first.dim() == 4 and first.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl else torch.contiguous_format


def _inner_step(model: nn.Module, first_order: bool) -> Callable[[Params, torch.Tensor, torch.Tensor, float], Params]:
    """One SGD step written with ``torch.func.grad`` (usable under ``vmap``)."""

    def train_loss(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(functional_call(model, params, (x,)), y)

    def step(params: Params, x: torch.Tensor, y: torch.Tensor, inner_lr: float) -> Params:
        grads = grad(train_loss)(params, x, y)
        if first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        return {name: p - inner_lr * grads[name] for name, p in params.items()}

    return step


def task_test_losses(model: nn.Module, params: Params, train_x: torch.Tensor, train_y: torch.Tensor,
                     test_x: torch.Tensor, test_y: torch.Tensor, steps: int, inner_lr: float,
                     first_order: bool = False) -> torch.Tensor:
    """Task-test L1 after each of ``steps`` inner steps, for T tasks at once: ``(T, steps)``.

    ``train_x``/``train_y``/``test_x``/``test_y`` are ``(T, N, C, H, W)``: T tasks of N patches.
    Every task starts from the same ``params``; ``vmap`` runs the T inner loops as one batched
    computation (its convolutions become one grouped convolution) instead of a Python loop.
    """
    step = _inner_step(model, first_order)

    def one_task(tx: torch.Tensor, ty: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor) -> torch.Tensor:
        fast, losses = params, []
        for _ in range(steps):
            fast = step(fast, tx, ty, inner_lr)
            losses.append(F.l1_loss(functional_call(model, fast, (vx,)), vy))
        return torch.stack(losses)

    return vmap(one_task)(train_x, train_y, test_x, test_y)


def task_test_losses_loop(model: nn.Module, params: Params, train_x: torch.Tensor, train_y: torch.Tensor,
                          test_x: torch.Tensor, test_y: torch.Tensor, steps: int, inner_lr: float,
                          first_order: bool = False) -> torch.Tensor:
    """The same as ``task_test_losses`` with a Python loop over tasks and steps (the baseline).

    Each task's patches follow the weights' memory format (channels-last weights: channels-last
    patches, about 10% faster on CPU)."""
    fmt = memory_format_of(params)
    rows = []
    for tx, ty, vx, vy in zip(train_x, train_y, test_x, test_y):
        tx, vx = tx.contiguous(memory_format=fmt), vx.contiguous(memory_format=fmt)
        fast, losses = params, []
        for _ in range(steps):
            fast = adapt(model, fast, tx, ty, 1, inner_lr, first_order)
            losses.append(F.l1_loss(functional_call(model, fast, (vx,)), vy))
        rows.append(torch.stack(losses))
    return torch.stack(rows)


def multi_step_weights(iteration: int, steps: int, anneal_iters: int) -> torch.Tensor:
    """Weights of the task-test losses after inner steps 1..``steps`` at meta-iteration ``iteration``.

    They start equal (1/steps each); the earlier ones fall linearly to a floor of 0.03/steps,
    reached after about ``anneal_iters`` iterations, and the last one takes what they lose, so
    they always sum to 1. (MZSR's code uses this schedule with anneal_iters = 10000/3, but its
    global step was never incremented, so its weights stayed equal.)
    """
    start, floor = 1 / steps, 0.03 / steps
    decay = start / anneal_iters
    early = max(start - iteration * decay, floor)
    last = min(start + iteration * (steps - 1) * decay, 1 - (steps - 1) * floor)
    return torch.tensor([early] * (steps - 1) + [last])


def finetune(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, lrs: list[float],
             on_step: Callable[[], None] | None = None, backtrack: bool = False) -> Params:
    """Plain SGD on L1(model(x), y) from ``params``, one step per learning rate in ``lrs``.

    No graph is kept between steps (this is test time, not meta-training); returns detached weights.
    ``on_step`` is called after every step (a progress bar).

    ``backtrack``: a step that raises the loss (or makes it NaN) is undone and every later step is
    half as long. Meta-learned weights are sensitive by design, and on an image with strong edges
    (Set5's butterfly) a learning rate that suits the others overshoots step after step: measured,
    the son's L1 rose from 0.028 to 0.045 over ten steps and the SR lost 3.9 dB. The loss of each
    step's result is the one the next step differentiates, so backtracking costs one extra forward
    (the last step's check, which needs no gradient), not one per step.
    """
    point = {name: p.detach() for name, p in params.items()}
    if not backtrack:
        for lr in lrs:
            grads = _loss_and_grads(model, point, x, y)[1]
            point = {name: p - lr * grads[name] for name, p in point.items()}
            if on_step is not None:
                on_step()
        return point
    loss, grads = _loss_and_grads(model, point, x, y)
    loss = loss.item()
    shrink = 1.0
    for i, lr in enumerate(lrs):
        candidate = {name: p - shrink * lr * grads[name] for name, p in point.items()}
        step_follows = i + 1 < len(lrs)
        candidate_loss, candidate_grads = _loss_and_grads(model, candidate, x, y, with_grads=step_follows)
        candidate_loss = candidate_loss.item()  # the one sync per step that backtracking needs
        if candidate_loss <= loss:
            point, loss, grads = candidate, candidate_loss, candidate_grads
        else:  # NaN lands here too
            shrink /= 2
        if on_step is not None:
            on_step()
    return point


def _loss_and_grads(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor,
                    with_grads: bool = True) -> tuple[torch.Tensor, Params | None]:
    """L1(model(x), y) with ``params`` (a detached tensor: plain SGD never waits for the device to
    read it) and its gradient (None without ``with_grads``: the forward alone)."""
    if not with_grads:
        with torch.no_grad():
            return F.l1_loss(functional_call(model, params, (x,)), y), None
    with torch.enable_grad():
        leaves = {name: p.detach().requires_grad_(True) for name, p in params.items()}
        loss = F.l1_loss(functional_call(model, leaves, (x,)), y)
        grads = torch.autograd.grad(loss, list(leaves.values()))
    return loss.detach(), {name: g.detach() for name, g in zip(leaves, grads)}
