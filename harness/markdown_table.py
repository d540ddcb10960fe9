"""One Markdown-table writer for every table the harness prints.

Why our own ten lines instead of ``pandas.DataFrame.to_markdown``: that needs ``tabulate`` and pads
every cell to the column width, so one long weights hash re-flows a whole table and a diff of two
reports shows every line changed. Here each row is one line, ``|`` inside a cell is escaped and a
newline becomes ``<br>``, so any text can go in a cell without breaking the table.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence


def _cell(value: Any) -> str:
    text = "–" if value is None else str(value)
    return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (header, ``|---|`` rule, one line a row), ending in a newline.

    ``None`` cells print as ``–`` (a value that does not exist, never a blank). Every row must have
    as many cells as the header.
    """
    header = list(header)
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"markdown_table: row {i} has {len(row)} cells, the header has {len(header)}")
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"
