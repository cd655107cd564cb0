"""The latency–accuracy Pareto front, for bench reports and tune alike."""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

__all__ = ["pareto_front"]

Item = TypeVar("Item")


def pareto_front(items: Sequence[Item], cost: Callable[[Item], float | None],
                 score: Callable[[Item], float | None]) -> list[Item]:
    """The items no other item beats on both `cost` (lower is better) and `score` (higher is better), cheapest
    first; an item without either number is not on it, and of two equal items the first is kept."""
    points = [(c, s, index) for index, item in enumerate(items)
              if (c := cost(item)) is not None and (s := score(item)) is not None]
    front: list[Item] = []
    best: float | None = None
    for _cost, value, index in sorted(points, key=lambda point: (point[0], -point[1], point[2])):
        if best is None or value > best:
            front.append(items[index])
            best = value
    return front
