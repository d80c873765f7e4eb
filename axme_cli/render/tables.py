"""Tables: rich on a TTY, tab-aligned plain text otherwise."""

from __future__ import annotations

from typing import Any

from axme_cli.render.console import out
from axme_cli.render.style import STATUS_STYLE, fancy, forced


def table(columns: list[str], rows: list[list[Any]], *, empty: str = "Nothing to show.",
          status_column: str | None = "STATUS") -> None:
    if not rows:
        out(empty)
        return
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if fancy():
        from rich.console import Console
        from rich.table import Table

        t = Table(box=None, header_style="bold", pad_edge=False)
        for i, col in enumerate(columns):
            if i == 0:  # the id people copy into the next command: never wrapped or cut
                t.add_column(col, no_wrap=True, min_width=max(len(col), *(len(r[0]) for r in cells)))
            else:
                t.add_column(col)
        idx = columns.index(status_column) if status_column in columns else -1
        for row in cells:
            styled = list(row)
            if idx >= 0 and row[idx] in STATUS_STYLE:
                styled[idx] = f"[{STATUS_STYLE[row[idx]]}]{row[idx]}[/]"
            t.add_row(*styled)
        Console(force_terminal=forced()).print(t)
        return
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    out("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        out("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
