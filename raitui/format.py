"""How the console writes states, times, ages and sizes: one place, so every view agrees."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from rai.domain.models import JobState
from rai.units import format_duration, format_size

# Rich styles cannot use Textual's theme variables: these are the theme's usual colours.
_RICH_STATE = {
    JobState.queued: "bold #9aa5b1",
    JobState.running: "bold #5fafff",
    JobState.succeeded: "#4ec97b",
    JobState.failed: "#ff6b6b",
    JobState.timeout: "#e6b34a",
    JobState.oom: "#e6b34a",
    JobState.cancelled: "#9aa5b1",
    JobState.refused: "#ff6b6b",
    JobState.error: "bold #ff6b6b",
}
NODE_STATE = {"active": "#4ec97b", "draining": "bold #e6b34a", "low disk": "bold #ff6b6b", "lost": "bold #ff6b6b"}
DIM = "#8a8f98"
WARN = "bold #e6b34a"
BAD = "bold #ff6b6b"


def state_text(state: JobState) -> Text:
    return Text(state.value, style=_RICH_STATE.get(state, ""))


def local(at: datetime) -> datetime:
    return at.astimezone()


def time_text(at: datetime | None, now: datetime) -> str:
    """`21:05:12` today, `03-14 21:05` on another day, `-` when unknown."""
    if at is None:
        return "-"
    at, now = local(at), local(now)
    if at.date() == now.date():
        return at.strftime("%H:%M:%S")
    return at.strftime("%m-%d %H:%M")


def age_text(seconds: float | None) -> str:
    """`4s`, `2m05s`, `1h10m`: how long ago or how long for."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    return format_duration(seconds)


def duration_text(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def size_text(n: int | float | None) -> str:
    return format_size(n)


def percent_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
