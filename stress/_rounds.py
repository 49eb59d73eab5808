"""Rounds of turns: the one way every comparison in bench.py is measured.

A shared 2-core VM drifts (CPU time and fsync rates move by 2x within minutes).
So contenders are never measured one after the other and then compared: each
round runs every contender once, the order alternating between rounds
(A B C, then C B A, ...), and a contender's figure is the median of its rounds
with their min and max. A ratio between two contenders is taken round by round
(both ran within the same minute) and reported the same way.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Spread:
    """The median of some per-round figures, with their min and max."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        values = [v for v in values if v is not None]
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass
class Outcome(Generic[T]):
    """One contender's results, one per round it completed, or the error that stopped it."""

    runs: list[T]
    error: BaseException | None = None


def order_of_round(names: Sequence[str], r: int) -> list[str]:
    """Round 0 runs the contenders as listed, round 1 in reverse, and so on."""
    return list(names) if r % 2 == 0 else list(reversed(names))


def take_turns(
    contenders: Sequence[tuple[str, Callable[[], T]]], rounds: int, label: str = ""
) -> dict[str, Outcome[T]]:
    """Run ``rounds`` rounds; in each, every contender once, in alternating order.

    A contender that raises is dropped from the later rounds; its Outcome keeps
    the error (its earlier runs are discarded, so that every kept figure pairs
    with the other contenders' figures of the same rounds).
    """
    fns = dict(contenders)
    outcomes: dict[str, Outcome[T]] = {name: Outcome([]) for name in fns}
    for r in range(rounds):
        print(f"  {label} round {r + 1} of {rounds} ...", file=sys.stderr, flush=True)
        for name in order_of_round(list(fns), r):
            out = outcomes[name]
            if out.error is not None:
                continue
            try:
                out.runs.append(fns[name]())
            except Exception as exc:  # noqa: BLE001 - reported in the contender's row
                out.error, out.runs = exc, []
    return outcomes


def per_round_ratios(mine: Sequence[float | None], base: Sequence[float | None]) -> Spread | None:
    """Median (min, max) of mine[r] / base[r] over the rounds both have."""
    return Spread.of([a / b for a, b in zip(mine, base, strict=False) if a is not None and b])
