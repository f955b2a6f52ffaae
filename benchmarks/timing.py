"""Timing shared by the benchmarks (each run as ``python benchmarks/bench_….py``, which puts this
folder on the import path)."""
import time


def best_seconds(function, repeat: int):
    """(fastest of ``repeat`` timed calls after a warm-up — the least disturbed by other processes —
    in seconds, the last call's result). The warm-up also pays one-off costs (numba compilation,
    oneDNN primitive creation, a geometry's cached maps)."""
    result = function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result
