"""Several processes training one network (``torchrun``, PyTorch DDP), and what keeps them in step.

Under ``torchrun`` each process trains on its share of every batch (``check_shares``); the gradients
are averaged either by DDP during backward or, for a loss DDP cannot follow, by the loop after
backward (``average_gradients_``). Rank 0 alone validates, logs and saves; the others follow it
through collectives that every process reaches at the same point (``any_rank``, ``on_main``,
``barrier``). With one process every function here is a no-op or a plain call.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from srlab.errors import UserError


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Distributed:
    """Join the process group when started by ``torchrun`` (which sets WORLD_SIZE and RANK)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL starts: one GPU per process
    if not dist.is_initialized():
        # Rank 0 validates alone while the others wait: allow long validations.
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=2))
    return Distributed(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def check_shares(batch_size: int, world_size: int, group: int) -> None:
    """Each process must get an equal share of the batch, made of whole groups (MZSR's tasks)."""
    if batch_size % (world_size * group):
        what = f"equal shares of whole groups of {group} patches (one task each)" if group > 1 else "equal shares"
        raise UserError(f"train.batch_size: {batch_size} does not split into {world_size} processes' {what}")


def parallel_model(model: nn.Module, ddp: Distributed, device: torch.device, average_by_hand: bool) -> nn.Module:
    """``model`` as the loss calls it: wrapped in DDP, which averages the gradients during backward;
    or, with ``average_by_hand`` (a loss DDP cannot follow), ``model`` itself, for the loop to call
    ``average_gradients_`` after backward. One process: ``model``."""
    if ddp.world_size == 1:
        return model
    if average_by_hand:
        broadcast_weights(model)  # what DDP does when it wraps a network: every process starts from rank 0's
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def broadcast_weights(model: nn.Module) -> None:
    """Rank 0's parameters and buffers to every process."""
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)


def average_gradients_(model: nn.Module, world_size: int) -> None:
    """Every parameter's ``.grad`` becomes the mean over the processes: one all_reduce of all the
    gradients flattened into one tensor (a gradient no process made stays ``None``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    made = torch.tensor([p.grad is not None for p in params], device=params[0].device)
    dist.all_reduce(made, op=dist.ReduceOp.MAX)  # gloo has no logical or; MAX of 0/1 is one
    params = [p for p, m in zip(params, made.tolist()) if m]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)  # a sum: gloo has no average
    flat /= world_size
    offset = 0
    for p in params:
        mean = flat[offset : offset + p.numel()].view(p.shape)
        if p.grad is None:
            p.grad = torch.empty_like(p)  # the parameter's memory format, as autograd would make it
        p.grad.copy_(mean)
        offset += p.numel()


def any_rank(flag: torch.Tensor, ddp: Distributed) -> bool:
    """True if ``flag`` is set on any process (so every process takes the same branch)."""
    if ddp.world_size > 1:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        flag = flag.to(device=device, dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def on_main(ddp: Distributed, action) -> None:
    """Run ``action`` on the main process only; if it fails, every process stops (none is left
    waiting in a collective for a main process that is gone)."""
    failure = None
    if ddp.is_main:
        try:
            action()
        except Exception as exc:
            failure = exc
    if any_rank(torch.tensor(failure is not None), ddp):
        raise failure or UserError("stopped: the main process could not start (its error says why)")


def barrier(ddp: Distributed) -> None:
    """Wait until every process gets here (one process: at once)."""
    if ddp.world_size > 1:
        dist.barrier()
