"""Plain-text tables for the CLI's listings (``audit show``, ``jobs list``)."""

from __future__ import annotations

from collections.abc import Sequence


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> None:
    """Columns padded to their widest cell, the last one left free (it may be long);
    ``empty`` is printed under the header when there are no rows."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    padded = len(header) - 1
    widths = [max(len(row[i]) for row in table) for i in range(padded)]
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:padded])]
        print("  ".join([*cells, row[padded]]))
    if not rows:
        print(empty)
