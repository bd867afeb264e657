"""Wall-clock timing for the benchmarks: several versions of one job, interleaved.

Each round runs every version once, in turn, so a slow phase of a shared machine hits all of
them alike; the first ``warmup`` rounds are not counted. ``sync`` is called after every run
(``torch.cuda.synchronize`` on a GPU) so that asynchronous work is inside the measurement.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_median_seconds(versions: dict[str, Callable[[], object]], repeats: int, warmup: int,
                               sync: Callable[[], object] = lambda: None) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in versions}
    for round_ in range(warmup + repeats):
        for name, run in versions.items():
            sync()
            tic = time.perf_counter()
            run()
            sync()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - tic)
    return {name: statistics.median(t) for name, t in times.items()}
