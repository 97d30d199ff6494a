"""Deadlines for the runner's loop: the stop timeout, the kill wait, retry delays."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable


class Timer:
    __slots__ = ("action", "cancelled", "when")

    def __init__(self, when: float, action: Callable[[], None]) -> None:
        self.when = when
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()

    def after(self, seconds: float, action: Callable[[], None]) -> Timer:
        timer = Timer(self.clock() + max(0.0, seconds), action)
        heapq.heappush(self._heap, (timer.when, next(self._order), timer))
        return timer

    def timeout(self) -> float | None:
        """Seconds until the next deadline (None: none pending)."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self.clock())

    def run_due(self) -> None:
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            _, _, timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                timer.cancelled = True
                timer.action()

    def pending(self) -> bool:
        return self.timeout() is not None
