"""Jobs: recent and running jobs, newest first, updating in place; `/` filters, `enter` tails, `ctrl+d` cancels."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from rai.domain import fairshare
from rai.domain.models import JobRecord, JobState
from rai.live.places import Place
from raitui.components.live_table import LiveTable
from raitui.data import ClusterSnapshot, JobFilter
from raitui.format import DIM, duration_text, state_text, time_text
from raitui.views.base import View

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "ID", 27),
    ("user", "USER", 10),
    ("team", "TEAM", 8),
    ("state", "STATE", 11),  # a waiting job's place in line too: "queued 2nd"
    ("node", "NODE", 10),
    ("queued", "QUEUED", 11),
    ("started", "STARTED", 10),  # a waiting job's ETA: "in ~6 min"
    ("duration", "DURATION", 8),
    ("exit", "EXIT", 4),
    ("message", "MESSAGE", 8),  # takes the width the others leave
)


class JobsTable(LiveTable):
    """The jobs, one row per job id; `JobsView` keeps it in step with the snapshots."""

    BINDINGS = [Binding("enter", "select_cursor", "Open log", key_display="⏎")]


class JobsView(View):
    view_name = "jobs"
    title = "Jobs"
    description = "recent and running jobs; enter opens a job's live log"

    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("enter", "open_tail", "Open log", key_display="⏎"),
        Binding("ctrl+d", "cancel_job", "Cancel job"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._snapshot: ClusterSnapshot | None = None

    def compose(self) -> ComposeResult:
        self._table = JobsTable(COLUMNS, right={"exit"}, id="jobs-table")
        self._table.border_title = "jobs"
        yield self._table
        yield Static("", id="jobs-empty")
        yield Input(placeholder="filter: words, or user: state: team: node: id: queue:  (enter keeps, esc clears)",
                    id="jobs-filter", classes="filter")

    def on_mount(self) -> None:
        self.query_one("#jobs-filter", Input).display = False
        self.query_one("#jobs-empty", Static).display = False

    @property
    def table(self) -> JobsTable:
        return self._table

    @property
    def job_filter(self) -> JobFilter:
        return self.console.job_filter

    # showing
    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        self._snapshot = snapshot
        self._show_jobs()

    def _show_jobs(self) -> None:
        snapshot = self._snapshot
        if snapshot is None:
            return
        job_filter = self.job_filter
        jobs = [r for r in snapshot.jobs if job_filter.matches(r)]
        rows = {r.job_id: self._cells(r, snapshot) for r in jobs}
        table = self.table
        table.sync(rows)
        table.set_titles(f"jobs ({len(rows)})", f"filter: {job_filter.text}" if job_filter.text else "")
        self._show_empty(snapshot, bool(rows))

    def _show_empty(self, snapshot: ClusterSnapshot, any_rows: bool) -> None:
        """An empty table says why, and what to do: a newcomer's first job, or a filter that matches nothing."""
        hint = self.query_one("#jobs-empty", Static)
        text = ""
        if not any_rows and snapshot.redis_error is None and snapshot.db_error is None:
            if self.job_filter.text:
                text = f"No job matches “{self.job_filter.text}”.  / edits the filter, esc clears it."
            elif not snapshot.jobs:
                text = ("No jobs yet. Submit one from a second terminal:\n\n"
                        "    rai submit -p examples/hello\n\n"
                        "It shows here as it waits, runs and ends; ⏎ on its row opens its live log.")
        hint.update(text)
        hint.display = bool(text)

    @staticmethod
    def _cells(r: JobRecord, snapshot: ClusterSnapshot) -> tuple[Any, ...]:
        now = snapshot.taken_at
        if r.duration is not None:
            duration = duration_text(r.duration)
        elif r.started_at is not None and not r.state.finished:
            duration = duration_text((now - r.started_at).total_seconds())
        else:
            duration = "-"
        exit_code = Text("-" if r.exit_code is None else str(r.exit_code), justify="right")
        if r.exit_code not in (None, 0):
            exit_code.stylize("#ff6b6b")
        message = r.message.splitlines()[0] if r.message else ""
        return (
            r.job_id,
            r.username,
            r.team or Text("-", style=DIM),
            *_state_and_start(r, snapshot),
            duration,
            exit_code,
            Text(message, style=DIM, no_wrap=True, overflow="ellipsis"),
        )

    def selected_job_id(self) -> str | None:
        return self.table.selected_key()

    def selected_record(self) -> JobRecord | None:
        job_id = self.selected_job_id()
        if job_id is None or self._snapshot is None:
            return None
        return next((r for r in self._snapshot.jobs if r.job_id == job_id), None)

    # keys
    def action_filter(self) -> None:
        box = self.query_one("#jobs-filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#jobs-filter", Input)
        box.value = ""
        box.display = False
        self.console.set_job_filter("")
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "jobs-filter":
            self.console.set_job_filter(event.value)
            self._show_jobs()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "jobs-filter":
            if not event.value.strip():
                event.input.display = False
            self.table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.console.open_tail(event.row_key.value)

    def action_open_tail(self) -> None:
        job_id = self.selected_job_id()
        if job_id:
            self.console.open_tail(job_id)

    def action_cancel_job(self) -> None:
        job_id = self.selected_job_id()
        if job_id is None:
            self.app.notify("no job selected", severity="warning")
            return
        self.console.confirm_cancel(job_id, self.selected_record())

    def on_shown(self) -> None:
        self.table.focus()


def _state_and_start(r: JobRecord, snapshot: ClusterSnapshot) -> tuple[Any, ...]:
    """STATE, NODE, QUEUED, STARTED: a waiting job's place in line and ETA (rai/live/places.py, the rule
    `rai status` tells the student) in the state and start cells."""
    now = snapshot.taken_at
    place: Place | None = snapshot.places.get(r.job_id) if r.state == JobState.queued else None
    state = state_text(r.state)
    started: Any = time_text(r.started_at, now) if r.started_at else Text("-", style=DIM)
    if place is not None:
        state.append(f" {place.ordinal}", style="bold")
        started = Text(f"in {fairshare.about(place.eta_seconds, short=True)}" if place.eta_seconds is not None
                       else "no node", style=f"italic {DIM}")
    return (state, r.node or Text("-", style=DIM), time_text(r.submitted_at, now), started)
