"""Fake secret values for tests, that a failing test's report does not print.

pytest shows the arguments of every frame of a failing test's traceback (the test's
fixtures, a helper's parameters) by their ``repr``. A value wrapped in :class:`Hidden`
is still the same ``str`` everywhere else (comparisons, slicing, encoding, JSON), but
its ``repr`` names only its length. Slices and concatenations are plain ``str``: wrap
again what is passed on. :class:`HiddenList` does the same for a list of received
messages that may hold a value.
"""

from __future__ import annotations

from typing import Any


class Hidden(str):
    """A ``str`` whose ``repr`` never shows it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<hidden: {len(self)} characters>"


class HiddenList(list[Any]):
    """A ``list`` whose ``repr`` shows only its length."""

    def __repr__(self) -> str:
        return f"<hidden: {len(self)} items>"
