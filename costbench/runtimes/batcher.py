"""The server scenario's dynamic batcher, shared by LoadGen's SUT and the benchmark's hand-written load loop,
so the two differ only in what generates the load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Batcher:
    """Items in from any thread; ``run(batch)`` on the batcher's own thread when it holds ``max_batch`` items
    or its oldest item has waited ``max_wait_s`` (each item's wait counts from its own arrival)."""

    def __init__(self, run: Callable[[list[Any]], None], max_batch: int, max_wait_s: float) -> None:
        self.run, self.max_batch, self.max_wait_s = run, max_batch, max_wait_s
        self.pending: list[Any] = []
        self.arrived: list[float] = []
        self.cond = threading.Condition()
        self.stopped = False
        self.batches = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def add(self, items: list[Any]) -> None:
        now = time.perf_counter()
        with self.cond:
            was_empty = not self.pending
            self.pending.extend(items)
            self.arrived.extend([now] * len(items))
            # Wake the loop only to start a wait or to run a full batch: otherwise its timed wait already
            # ends when the oldest item is due, and a wake-up per arrival costs the GIL at high rates.
            if was_empty or len(self.pending) >= self.max_batch:
                self.cond.notify()

    def stop(self) -> None:
        """Run what is left, then end the loop."""
        with self.cond:
            self.stopped = True
            self.cond.notify()
        self.thread.join()

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.stopped and len(self.pending) < self.max_batch:
                    if not self.pending:
                        self.cond.wait()
                        continue
                    left = self.arrived[0] + self.max_wait_s - time.perf_counter()
                    if left <= 0:
                        break
                    self.cond.wait(left)
                if not self.pending:
                    return
                batch, self.pending = self.pending[:self.max_batch], self.pending[self.max_batch:]
                del self.arrived[:self.max_batch]
            self.run(batch)
            self.batches += 1
