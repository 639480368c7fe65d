"""Which target gets the n-th request: uniform, zipf (a few hot models) or round-robin, all seeded.

Round-robin is global across workers: worker i's n-th send is the (n·W + i)-th send overall, so W workers
together hit every target exactly equally often.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable

Chooser = Callable[[int], int]


def zipf_weights(count: int, exponent: float) -> list[float]:
    """Weight of rank k (0-based) ∝ 1/(k+1)^s: the first target is the hottest."""
    return [1.0 / (k + 1) ** exponent for k in range(count)]


def zipf_order(count: int, seed: int) -> list[int]:
    """Targets from hottest to coldest: a seeded shuffle, the same in every worker.

    Ranking targets in their given order would make the hottest models the first ones placed, which placement
    puts together on the first server: one server would take most of the load and the test would measure that
    server's queue rather than the pack.
    """
    order = list(range(count))
    random.Random(f"zipf-order-{seed}").shuffle(order)
    return order


def make_chooser(
    spread: str, count: int, *, seed: int, worker_index: int = 0, workers: int = 1, zipf_exponent: float = 1.1
) -> Chooser:
    if count < 1:
        raise ValueError("at least one target is needed")
    if spread == "round-robin":
        return lambda n: (n * workers + worker_index) % count
    rng = random.Random(seed)
    if spread == "uniform":
        return lambda n: rng.randrange(count)
    if spread == "zipf":
        cumulative = list(itertools.accumulate(zipf_weights(count, zipf_exponent)))
        total = cumulative[-1]
        last = count - 1
        order = zipf_order(count, seed)
        return lambda n: order[min(bisect.bisect_right(cumulative, rng.random() * total), last)]
    raise ValueError(f"unknown spread {spread!r}: use uniform, zipf or round-robin")
