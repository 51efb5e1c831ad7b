"""Rankings: each ranked project and kind's leaderboard with real team names (the console is staff-side).

`[` `]` switch between the kinds of `projects:`, `s` sorts by the next column (or click a header;
again reverses), `a` shows every recorded result instead of each team's counting one, enter opens
the job's log, `e` writes the CSV staff grade from (the same file as `rai-admin ranking export`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from rai.domain.leaderboard import Board, team_label, write_csv
from rai.domain.models import RankingEntry
from rai.domain.projects import RankedKind, ranked_kinds
from raitui.components.live_table import LiveTable
from raitui.format import BAD, DIM, local
from raitui.views.base import ReloadingView

# what one read gives: the kind it was read for, its board, each team's members, the labels' key
Loaded = tuple[RankedKind, Board, dict[str, list[str]], str]
# The job's id is in the CSV and in the log that enter opens; the table keeps to what ranks.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("rank", "RANK", 4), ("team", "TEAM", 8), ("members", "MEMBERS", 14), ("value", "VALUE", 9),
    ("results", "VALID", 5), ("recorded", "RECORDED", 11), ("by", "BY", 10), ("label", "STUDENTS SEE", 23),
    ("note", "NOTE", 12),
)
SORTABLE = ("rank", "team", "value", "results", "recorded", "by")


@dataclass
class Row:
    """One line of the table: a team's counting result, or (with `a`) any recorded result."""

    entry: RankingEntry
    rank: int | None  # None: not the team's counting result
    results: int  # the team's valid results in this kind
    members: str
    label: str

    def sort_key(self, column: str, lower_is_better: bool) -> Any:
        e = self.entry
        if column in ("rank", "value"):  # unranked rows after the ranked ones, best first
            return (self.rank is None, self.rank or 0, e.value if lower_is_better else -e.value)
        return {"team": e.team, "results": self.results, "recorded": e.at, "by": e.username}[column]


class RankingsTable(LiveTable):
    """Rebuilt (`show`) only when what it shows changes: a leaderboard is small and changes rarely."""

    BINDINGS = [Binding("enter", "select_cursor", "Open log", key_display="⏎")]


class RankingsView(ReloadingView[Loaded]):
    view_name = "rankings"
    title = "Rankings"
    description = "leaderboards with real team names: [ ] kind, s sort, a all results, enter log, e export CSV"

    BINDINGS = [
        Binding("right_square_bracket", "next_kind(1)", "Next kind", key_display="]"),
        Binding("left_square_bracket", "next_kind(-1)", "Previous kind", key_display="["),
        Binding("s", "sort_next", "Sort"),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("a", "toggle_all", "All results"),
        Binding("enter", "open_log", "Open log", key_display="⏎"),
        Binding("e", "export", "Export CSV"),
    ]

    reload_every = 3.0  # seconds between two reads of the leaderboard while the view is shown

    def __init__(self, export_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export_dir = export_dir  # where `e` writes; None: the directory the console was started in
        self.kinds: list[RankedKind] = []
        self.current = 0
        self.sort_column = "rank"
        self.descending = False
        self.show_all = False
        self.board: Board | None = None
        self.members: dict[str, list[str]] = {}
        self.secret = ""
        self._shown: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="rankings-title")
        table = RankingsTable(COLUMNS, right={"rank", "value", "results"}, id="rankings-table")
        table.border_title = "rankings"
        yield table

    def on_mount(self) -> None:
        self.kinds = ranked_kinds(self.console.data.config.projects)
        self.show_board()

    @property
    def table(self) -> RankingsTable:
        return self.query_one(RankingsTable)

    @property
    def kind(self) -> RankedKind | None:
        return self.kinds[self.current] if self.kinds else None

    # loading, in a thread (ReloadingView)
    def read(self) -> Loaded | None:
        kind = self.kind
        if kind is None:
            return None
        return (kind, *self.console.data.leaderboard(kind))

    def loaded(self, value: Loaded) -> None:
        kind, board, members, secret = value
        if kind != self.kind:  # switched meanwhile: read the new one
            self.call_later(self.reload)
            return
        self.board, self.members, self.secret = board, members, secret

    def show_loaded(self) -> None:
        self.show_board()

    # showing
    def rows(self) -> list[Row]:
        board = self.board
        if board is None:
            return []
        standing = {s.team: s for s in board.rows}
        counting = {s.entry.job_id for s in board.rows}
        entries = board.entries if self.show_all else [s.entry for s in board.rows]
        rows = []
        for e in entries:
            s = standing.get(e.team)
            rows.append(Row(e, s.rank if s and e.job_id in counting else None, s.valid_results if s else 0,
                            " ".join(self.members.get(e.team, [])), team_label(self.secret, e.team)))
        rows.sort(key=lambda r: r.sort_key(self.sort_column, board.kind.lower_is_better), reverse=self.descending)
        return rows

    def show_board(self) -> None:
        title = self.query_one("#rankings-title", Static)
        kind, board = self.kind, self.board
        if kind is None:
            title.update(Text("no ranked projects: add a projects: section to the config "
                              "(README: Ranked submissions)", style=DIM))
            return
        if board is not None and board.kind != kind:
            board = None  # still the last kind's
        shown = board is not None
        what = f"{kind.metric}, {'lower' if kind.lower_is_better else 'higher'} is better, each team's " \
               f"{'best' if kind.counts == 'best' else 'latest'}"
        counts = f" · {len(board.rows)} teams ranked, {len(board.entries)} results" if board else ""
        title.update(Text.assemble((f" {kind.name}", "bold"), f" · {kind.title} · {what}{counts}",
                                   (f" · kind {self.current + 1} of {len(self.kinds)} ([ ])", DIM), no_wrap=True,
                                   overflow="ellipsis"))
        rows = self.rows() if shown else []
        table = self.table
        cells = tuple((r.entry.job_id, self._cells(r)) for r in rows)
        if cells != self._shown:
            cursor = self.selected_job_id()
            with self.app.batch_update():
                table.clear()
                for key, row in cells:
                    table.add_row(*row, key=key)
                keys = [key for key, _ in cells]
                if cursor in keys:
                    table.move_cursor(row=keys.index(cursor), animate=False)
            self._shown = cells
        arrow = "↓" if self.descending else "↑"
        subtitle = f"sorted by {self.sort_column} {arrow}"
        if self.error:
            subtitle = f"cannot read the rankings: {self.error}"
        table.set_titles(f"{kind.name} ({'all results' if self.show_all else 'counting results'}: {len(rows)})",
                         subtitle)

    @staticmethod
    def _cells(r: Row) -> tuple[Any, ...]:
        e = r.entry
        note = "; ".join(e.details.get("invalid", [])) if not e.valid else ("" if r.rank else "not counting")
        return (
            Text(str(r.rank) if r.rank else "-", justify="right", style="" if r.rank else DIM),
            Text(e.team, style="bold", no_wrap=True, overflow="ellipsis"),
            Text(r.members, no_wrap=True, overflow="ellipsis") if r.members else Text("-", style=DIM),
            Text(f"{e.value:g}", justify="right", style="" if e.valid else BAD),
            Text(str(r.results), justify="right"),
            local(e.at).strftime("%m-%d %H:%M"),
            e.username,
            Text(r.label, style=DIM),
            Text(note, style=BAD if not e.valid else DIM, no_wrap=True, overflow="ellipsis"),
        )

    def selected_job_id(self) -> str | None:
        return self.table.selected_key()

    # keys
    def action_next_kind(self, step: int) -> None:
        if not self.kinds:
            return
        self.current = (self.current + step) % len(self.kinds)
        self.board = None
        self.show_board()
        self.reload()

    def action_sort_next(self) -> None:
        self.sort_column = SORTABLE[(SORTABLE.index(self.sort_column) + 1) % len(SORTABLE)]
        self.descending = False
        self.show_board()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self.show_board()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = event.column_key.value
        if column not in SORTABLE:
            return
        self.descending = not self.descending if column == self.sort_column else False
        self.sort_column = column
        self.show_board()

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self.show_board()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.console.open_tail(event.row_key.value)

    def action_open_log(self) -> None:
        job_id = self.selected_job_id()
        if job_id:
            self.console.open_tail(job_id)

    def action_export(self) -> None:
        board = self.board
        if board is None or board.kind != self.kind:
            self.app.notify("no leaderboard to export yet", severity="warning")
            return
        folder = self.export_dir or Path.cwd()
        suffix = "-all" if self.show_all else ""
        self._export(board, folder / f"ranking-{board.kind.project}-{board.kind.kind}{suffix}.csv", self.show_all)

    @work(thread=True, group="rankings-export")
    def _export(self, board: Board, path: Path, every: bool) -> None:
        try:
            with open(path, "w", newline="") as f:
                n = write_csv(f, board.kind.project, board.kind.kind, board.rows,
                              entries=board.entries if every else None, label_secret=self.secret,
                              members=self.members)
            message, severity = f"{n} rows of {board.kind.name} written to {path}", "information"
        except OSError as e:
            message, severity = f"cannot write {path}: {e.strerror}", "error"
        self.app.call_from_thread(self.app.notify, message, severity=severity)
