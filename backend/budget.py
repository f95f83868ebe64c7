"""A budget of memory that requests share: each waits, on the event loop and holding no thread,
until its share fits, first come first served.

The photo route decodes pictures whose headers say how large they are: a 1.6 kB lossless WebP can
declare 40 megapixels and take 650 MB to decode. Without a bound, N such uploads at once cost N
times that (four took a server from 0.24 to 2.9 GB). With one, they cost at most the budget: the
rest wait their turn, and give up with 503 after a while.
"""

from __future__ import annotations

import asyncio
from collections import deque


class MemoryBudget:
    """``capacity`` bytes; ``acquire`` waits for a share (a share larger than the whole budget
    waits for all of it), ``release`` gives it back. Waiters are served in order, so a large
    share is not starved by small ones that keep arriving. ``peak``: the most ever held at once.
    Use it from one event loop."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future]] = deque()

    @property
    def waiting(self) -> int:
        return sum(not fut.done() for _, fut in self._waiters)

    def _take(self, cost: int) -> None:
        self.in_use += cost
        self.peak = max(self.peak, self.in_use)

    def _wake(self) -> None:
        while self._waiters:
            cost, fut = self._waiters[0]
            if fut.done():          # gave up waiting
                self._waiters.popleft()
                continue
            if self.in_use + cost > self.capacity:
                return
            self._waiters.popleft()
            self._take(cost)
            fut.set_result(None)

    async def acquire(self, cost: int, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for ``cost`` bytes (``TimeoutError`` after that); the
        share taken, to hand back to ``release``."""
        cost = max(0, min(int(cost), self.capacity))
        if not self._waiters and self.in_use + cost <= self.capacity:
            self._take(cost)
            return cost
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((cost, fut))
        try:
            async with asyncio.timeout(timeout):
                await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release(cost)  # granted just as the wait ended: give it back
            else:
                fut.cancel()
                self._wake()        # the next in line may fit now
            raise
        return cost

    def release(self, cost: int) -> None:
        self.in_use -= cost
        self._wake()
