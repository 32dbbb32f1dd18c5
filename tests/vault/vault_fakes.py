"""Fakes shared by the vault tests."""

from __future__ import annotations

import time


class FakeClock:
    """Injectable clock: tests drive time instead of sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
