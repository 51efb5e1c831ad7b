"""A DataTable kept in step with keyed rows: changed cells update in place, nothing is rebuilt.

Rows come as `{key: cells}` each refresh; `sync` removes gone rows, adds new ones, updates only the
cells that changed (inside one `batch_update`), and puts rows in the given order while the cursor
stays on the same key. The last column takes the width the others leave.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable


class LiveTable(DataTable):
    def __init__(self, columns: Sequence[tuple[str, str, int]], right: set[str] | frozenset[str] = frozenset(),
                 fill_last: bool = True, **kwargs) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self.column_spec = tuple(columns)
        self.right = set(right)
        self.fill_last = fill_last
        self._shown: dict[str, tuple] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for key, label, width in self.column_spec:
            self.add_column(Text(label, justify="right" if key in self.right else "left"), key=key, width=width)

    def sync(self, rows: dict[str, tuple], order: list[str] | None = None) -> None:
        order = list(rows) if order is None else order
        cursor_key = self.selected_key()
        with self.app.batch_update():
            for key in [k for k in self._shown if k not in rows]:
                self.remove_row(key)
                del self._shown[key]
            for key, cells in rows.items():
                old = self._shown.get(key)
                if old is None:
                    self.add_row(*cells, key=key)
                elif old != cells:
                    for (column, _, _), before, after in zip(self.column_spec, old, cells, strict=True):
                        if before != after:
                            self.update_cell(key, column, after)
                self._shown[key] = cells
            if order != self._order:
                rank = {key: i for i, key in enumerate(order)}
                first = self.column_spec[0][0]
                self.sort(first, key=lambda cell: rank.get(cell.plain if isinstance(cell, Text) else str(cell),
                                                           len(rank)))
                self._order = order
                if cursor_key in rank:
                    self.move_cursor(row=rank[cursor_key], animate=False)

    def set_titles(self, title: str, subtitle: str = "") -> None:
        """Border title and subtitle, touched only when they change (each change repaints the border)."""
        if self.border_title != title:
            self.border_title = title
        if (self.border_subtitle or "") != subtitle:
            self.border_subtitle = subtitle

    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:  # the cursor is past the rows for a moment
            return None
        return row_key.value

    def on_resize(self) -> None:
        self.fit_last_column()

    def fit_last_column(self) -> None:
        columns = list(self.columns.values())
        if not columns or not self.fill_last:
            return
        last = columns[-1]
        others = sum(c.get_render_width(self) for c in columns[:-1])
        width = max(self.column_spec[-1][2], self.scrollable_content_region.width - others - 2 * self.cell_padding)
        if last.width != width:
            last.width = width
            # DataTable has no public way to resize a column: ask for the same work add_column does.
            self._require_update_dimensions = True
            self._clear_caches()
            self.refresh()
