"""A table of keys and one or more value columns that always fits its width (no sideways scrolling)."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

SCROLLBAR = 2  # cells the vertical scrollbar takes when the rows overflow


class KeyValueTable(DataTable):
    """Rows of (key, value, ...): the key column takes what its longest key needs (at most
    `key_share` of the width), the value columns share the rest and end long values with "…".

    Rebuilt at the new width on resize, so a long path never pushes a column out of view.
    """

    def __init__(self, headers: tuple[str, ...], *, key_share: float = 0.4, show_header: bool = True,
                 id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, show_header=show_header)
        self.headers = headers
        self.key_share = key_share
        self.rows_shown: list[tuple] = []
        self._width = -1

    def set_rows(self, rows: list[tuple]) -> None:
        self.rows_shown = list(rows)
        self._fill()

    def on_resize(self) -> None:
        if self.size.width != self._width:
            self._fill()

    def _fill(self) -> None:
        self._width = self.size.width
        values = len(self.headers) - 1
        pad = 2 * self.cell_padding
        room = max(0, self._width - SCROLLBAR - pad * len(self.headers))
        longest = max((cell_len(_plain(row[0])) for row in self.rows_shown), default=0)
        key_cells = max(4, min(longest, int(room * self.key_share)))
        value_cells = max(4, (room - key_cells) // max(1, values))
        cursor = self.cursor_row
        self.clear(columns=True)
        self.add_column(self.headers[0], key="key", width=key_cells)
        for i, header in enumerate(self.headers[1:]):
            self.add_column(header, key=f"value{i}", width=value_cells)
        for row in self.rows_shown:
            self.add_row(*(_cell(value) for value in row))
        if self.rows_shown:
            self.move_cursor(row=min(cursor, len(self.rows_shown) - 1), animate=False)


def _plain(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def _cell(value: object) -> Text:
    text = value.copy() if isinstance(value, Text) else Text(str(value))
    text.no_wrap, text.overflow = True, "ellipsis"
    return text
