"""Plain-text tables for the developer tools' reports (bench, cost, the synth summary)."""

from __future__ import annotations

from collections.abc import Sequence


def columns(rows: Sequence[Sequence[str]], right: tuple[int, ...] = (), indent: str = "") -> list[str]:
    """One line per row: cells padded to their column's width, two spaces apart, the columns in `right`
    right-aligned (figures), no trailing spaces. The first row is usually the header."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines
