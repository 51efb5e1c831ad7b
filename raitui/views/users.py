"""Users: each user's recent usage (job-hours over the last day, decayed with a 1 h half-life), what runs
and waits now, quota left when quotas are configured; `o` changes the order, `/` filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input

from raitui.components.live_table import LiveTable
from raitui.format import BAD, DIM
from raitui.user_usage import UserUsage, half_life_words
from raitui.views.base import ReloadingView

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("user", "USER", 14),
    ("team", "TEAM", 8),
    ("usage", "USAGE (DECAYED)", 15),
    ("hours", "JOB-H 24H", 9),
    ("jobs", "JOBS 24H", 8),
    ("running", "RUNNING", 7),
    ("waiting", "WAITING", 7),
    ("quota", "QUOTA LEFT", 12),
)
RIGHT = {"usage", "hours", "jobs", "running", "waiting"}
ORDERS: tuple[tuple[str, Callable[[UserUsage], Any], bool], ...] = (  # name, key, descending
    ("usage", lambda u: u.usage, True),
    ("waiting", lambda u: u.waiting, True),
    ("running", lambda u: u.running, True),
    ("jobs", lambda u: u.jobs, True),
    ("user", lambda u: u.username, False),
)


def hours_text(h: float) -> Text:
    return Text(f"{h:.2f}", justify="right", style="" if h >= 0.005 else DIM)


class UsersView(ReloadingView[list[UserUsage]]):
    view_name = "users"
    title = "Users"
    description = "per user: fair-share usage, job-hours and jobs over the last day, running, waiting, quota left"

    BINDINGS = [
        Binding("o", "next_order", "Order by"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    reload_every = 2.0  # seconds between reads of the day's job records

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.users: list[UserUsage] = []
        self.order = 0
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        table = LiveTable(COLUMNS, right=RIGHT, id="users-table")
        table.border_title = "users"
        yield table
        yield Input(placeholder="filter: words in the user or team name  (enter keeps, esc clears)",
                    id="users-filter", classes="filter")

    def on_mount(self) -> None:
        self.query_one("#users-filter", Input).display = False

    @property
    def table(self) -> LiveTable:
        return self.query_one(LiveTable)

    def read(self) -> list[UserUsage]:
        return self.console.data.users()

    def loaded(self, value: list[UserUsage]) -> None:
        self.users = value

    def show_loaded(self) -> None:
        self.show_users()

    def shown_users(self) -> list[UserUsage]:
        words = self.filter_text.lower().split()
        shown = [u for u in self.users if all(w in f"{u.username} {u.team or ''}".lower() for w in words)]
        _, key, descending = ORDERS[self.order]
        shown.sort(key=lambda u: u.username)
        shown.sort(key=key, reverse=descending)  # stable: ties stay by name
        return shown

    def show_users(self) -> None:
        shown = self.shown_users()
        table = self.table
        table.sync({u.username: self._cells(u) for u in shown}, [u.username for u in shown])
        count = f"{len(shown)} of {len(self.users)}" if self.filter_text else str(len(self.users))
        table.set_titles(f"users ({count}) by {ORDERS[self.order][0]}",
                         f"cannot read the job records: {self.error}" if self.error
                         else (f"filter: {self.filter_text}" if self.filter_text else
                               f"usage: {half_life_words(self.console.data.config.scheduler.half_life)} half-life"))

    @staticmethod
    def _cells(u: UserUsage) -> tuple[Any, ...]:
        return (
            u.username,
            u.team or Text("-", style=DIM),
            hours_text(u.usage),
            hours_text(u.hours),
            Text(str(u.jobs), justify="right"),
            Text(str(u.running), justify="right", style="bold" if u.running else DIM),
            Text(str(u.waiting), justify="right", style="bold" if u.waiting else DIM),
            Text(u.quota_left, style=BAD if u.over_quota else "") if u.quota_left else Text("-", style=DIM),
        )

    def action_next_order(self) -> None:
        self.order = (self.order + 1) % len(ORDERS)
        self.show_users()

    def action_filter(self) -> None:
        box = self.query_one("#users-filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#users-filter", Input)
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.show_users()
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "users-filter":
            self.filter_text = event.value.strip()
            self.show_users()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "users-filter":
            if not event.value.strip():
                event.input.display = False
            self.table.focus()
