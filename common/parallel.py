"""Independent pieces of one CPU computation on threads, each with a single intra-op thread.

Evaluation is many medium-sized ops (one SSIM strip is a few hundred KB of float64). Left to
PyTorch's intra-op threads, every op ends in an OpenMP barrier at which the finished threads
spin; when other programs keep the cores busy, a thread that lost its core makes the others
spin for a whole time slice at every op. Measured on a 2-core machine with three busy loops
beside it: SSIM of 16 Urban100-sized images took 9.5 s with 2 intra-op threads and 2.2 s with
the strips split over two single-threaded workers (1.0 s and 1.1 s when idle): whole pieces on
separate threads have no barrier inside them.

``map_pieces(fn, pieces, like)`` runs ``fn`` on every piece and returns the results in order.
It runs them in a pool of ``torch.get_num_threads()`` workers when ``like`` (a tensor) is on
the CPU, gradients are off and there is more than one thread to use; otherwise in the calling
thread, in order (CUDA queues work asynchronously anyway, and a data-loader worker has one
thread). Pieces must not overlap in what they write.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

import torch

P = TypeVar("P")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_threads = 0
_lock = threading.Lock()


def _single_threaded_worker() -> None:
    torch.set_num_threads(1)  # per thread: the caller keeps its own intra-op threads


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_threads
    with _lock:
        if _pool is None or _pool_threads != threads:  # created on first use; again if the thread count changed
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="srlab-piece", initializer=_single_threaded_worker)
            _pool_threads = threads
        return _pool


def _forget_pool_after_fork() -> None:
    global _pool, _pool_threads
    _pool, _pool_threads = None, 0  # the parent's worker threads do not exist in a forked child


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _without_grad(fn: Callable[[P], R]) -> Callable[[P], R]:
    def run(piece: P) -> R:
        with torch.no_grad():  # grad mode is per thread: a worker would otherwise record a graph
            return fn(piece)

    return run


def map_pieces(fn: Callable[[P], R], pieces: Iterable[P], like: torch.Tensor) -> list[R]:
    pieces = list(pieces)
    threads = torch.get_num_threads()
    needs_graph = torch.is_grad_enabled() and like.requires_grad
    if like.device.type != "cpu" or needs_graph or threads < 2 or len(pieces) < 2:
        return [fn(p) for p in pieces]
    return list(_executor(threads).map(_without_grad(fn), pieces))
