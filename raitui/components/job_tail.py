"""The live tail of one job: its whole log from the first entry, then live from Redis.

A worker thread reads entries and splits them into lines; every ~50 ms the screen takes what has
arrived in one batch into the LogView, so a job printing 50 000 lines/s costs ~20 small updates a
second, not 50 000.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import get_current_worker

from rai.domain.models import JobRecord, LogEntry, LogKind
from rai.units import format_duration
from raitui.components.keys_bar import KeysBar
from raitui.components.log_view import LineKind, LogView
from raitui.data import ConsoleData, describe_error
from raitui.format import state_text, time_text

FLUSH_INTERVAL = 0.05  # seconds between two batches taken into the view
MAX_BACKLOG = 200_000  # lines read but not yet shown before the reader waits for the screen
RATE_WINDOW = 2.0  # seconds over which the arrival rate is shown
READ_COUNT = 20  # entries per read (up to ~64 KB each): short turns, so the reader never holds the UI long


class LineSplitter:
    """Log entries to lines. An entry may end inside a line (the writer cuts long or slow output):
    that rest waits for the next entry of its kind, or is shown alone after a quiet moment."""

    def __init__(self) -> None:
        self._rest: dict[int, str] = {}

    def entry(self, entry: LogEntry) -> tuple[list[str], bytearray]:
        texts: list[str] = []
        kinds = bytearray()
        if entry.kind in (LogKind.stdout, LogKind.stderr):
            kind = LineKind.stdout if entry.kind == LogKind.stdout else LineKind.stderr
            body = self._rest.pop(kind, "") + entry.body
            lines = body.split("\n")
            rest = lines.pop()
            if rest:
                self._rest[kind] = rest
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
            return lines, bytearray([kind]) * len(lines)
        texts, kinds = self.flush()
        if entry.kind == LogKind.status:
            for line in entry.body.splitlines() or [""]:
                texts.append(f"» {line}")
                kinds.append(LineKind.status)
        elif entry.kind == LogKind.end and entry.end is not None:
            texts.append(end_line(entry))
            kinds.append(LineKind.end_ok if entry.end.state.value == "succeeded" else LineKind.end_bad)
        return texts, kinds

    def flush(self) -> tuple[list[str], bytearray]:
        """The unfinished lines, as lines."""
        texts = list(self._rest.values())
        kinds = bytearray(self._rest.keys())
        self._rest.clear()
        return texts, kinds


def end_line(entry: LogEntry) -> str:
    end = entry.end
    assert end is not None
    parts = [f"■ {end.state.value}"]
    if end.exit_code is not None:
        parts.append(f"exit {end.exit_code}")
    parts.append(format_duration(end.duration))
    if end.output_url or end.output_key:
        parts.append(f"outputs: {end.output_url or end.output_key}")
    line = " · ".join(parts)
    return f"{line} · {end.message}" if end.message else line


class JobSummary(Static):
    """One line about the job above its log: who, where, state."""

    def show(self, job_id: str, record: JobRecord | None, clock) -> None:
        text = Text.assemble(("job ", "dim"), (job_id, "bold"))
        if record is None:
            text.append("  (no record yet)", "dim")
        else:
            text.append("  ")
            text.append_text(state_text(record.state))
            text.append(f"  {record.username}", "bold")
            if record.team:
                text.append(f" ({record.team})")
            text.append(f"  on {record.node or '-'}  queue {record.queue or '-'}", "dim")
            text.append(f"  submitted {time_text(record.submitted_at, clock())}", "dim")
            if record.finished_at is None and record.started_at is not None:
                text.append(f"  running {format_duration((clock() - record.started_at).total_seconds())}", "dim")
        self.update(text, layout=False)


class TailStatus(Static):
    """Follow state, waiting lines, totals, and any trouble reading."""


class JobTailScreen(Screen):
    """`esc` back, `s` follow on/off, `End` resume, `ctrl+d` cancel."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("s", "toggle_follow", "Follow on/off"),
        Binding("ctrl+d", "cancel_job", "Cancel job"),
    ]

    def __init__(self, data: ConsoleData, job_id: str, capacity: int = 100_000,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        super().__init__()
        self.data = data
        self.job_id = job_id
        self.capacity = capacity
        self.flush_interval = flush_interval
        self.record: JobRecord | None = None
        self._inbox: deque[tuple[list[str], bytearray]] = deque()
        self._produced = 0  # lines the reader put in the inbox (written by the reader only)
        self._consumed = 0  # lines the screen took out (written by the screen only)
        self._read_error: str | None = None
        self._ended = False
        self._wake = threading.Event()
        self._rate: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])
        self._status_text = ""
        self.log_view = LogView(capacity, id="tail-log")
        self.summary = JobSummary(id="tail-summary")
        self.status_line = TailStatus(id="tail-status")

    def compose(self) -> ComposeResult:
        yield self.summary
        yield self.log_view
        yield self.status_line
        yield KeysBar(id="tail-keys")

    def on_mount(self) -> None:
        self.summary.show(self.job_id, None, self.data.clock)
        self.log_view.focus()
        self._read_log()
        self._read_record()
        self.set_interval(self.flush_interval, self._flush)
        self.set_interval(1.0, self._read_record)

    def on_unmount(self) -> None:
        self._wake.set()

    # reading, in threads
    @work(thread=True, exclusive=True, group="tail-log")
    def _read_log(self) -> None:
        worker = get_current_worker()
        splitter = LineSplitter()
        after = "0"
        while not worker.is_cancelled and self.is_attached:
            if self._produced - self._consumed > MAX_BACKLOG:
                time.sleep(0.01)  # the screen is behind: leave the rest in Redis for now
                continue
            try:
                batch = self.data.read_log(self.job_id, after=after, block=0.5, count=READ_COUNT)
            except Exception as e:  # Redis went away: say so, keep the place, try again
                self._read_error = describe_error(e)
                self._wake.wait(1.0)
                continue
            self._read_error = None
            if not batch:
                texts, kinds = splitter.flush()
                self._put(texts, kinds)
                continue
            texts = []
            kinds = bytearray()
            for entry_id, entry in batch:
                after = entry_id
                t, k = splitter.entry(entry)
                texts += t
                kinds += k
                if entry.kind == LogKind.end:
                    self._ended = True
            self._put(texts, kinds)
            if self._ended:
                return

    def _put(self, texts: list[str], kinds: bytearray) -> None:
        if texts:
            self._inbox.append((texts, kinds))
            self._produced += len(texts)

    @work(thread=True, exclusive=True, group="tail-record")
    def _read_record(self) -> None:
        try:
            record = self.data.job(self.job_id)
        except Exception:
            return  # the status line already tells when Redis is away
        self.app.call_from_thread(self._show_record, record)

    def _show_record(self, record: JobRecord | None) -> None:
        self.record = record
        self.summary.show(self.job_id, record, self.data.clock)

    # showing, on the screen's thread
    def _flush(self) -> None:
        texts: list[str] = []
        kinds = bytearray()
        while self._inbox and len(texts) < MAX_BACKLOG:
            t, k = self._inbox.popleft()
            texts += t
            kinds += k
        if texts:
            self._consumed += len(texts)
            self.log_view.write(texts, kinds)
        self._show_status()

    def _show_status(self) -> None:
        view = self.log_view
        now = time.monotonic()
        self._rate.append((now, self._consumed))
        while len(self._rate) > 1 and self._rate[1][0] <= now - RATE_WINDOW:
            self._rate.popleft()  # keep one sample at or before the window's start as the baseline
        rate = (self._consumed - self._rate[0][1]) / RATE_WINDOW
        text = Text()
        if view.follow:
            text.append(" FOLLOW ", "bold reverse green")
        else:
            text.append(" PAUSED ", "bold reverse yellow")
            text.append(f"  {view.pending:,} new lines waiting (End to resume)", "bold yellow")
        text.append(f"  {view.line_count:,} lines", "dim")
        if view.dropped:
            text.append(f" (oldest {view.dropped:,} dropped: the view keeps {view.ring.capacity:,})", "dim")
        if rate >= 100:  # a trickle needs no figure; a flood does
            text.append(f"  {rate:,.0f} lines/s", "dim")
        if not view.line_count and not view.pending and not self._read_error and not self._ended:
            state = self.record.state.value if self.record else "not known yet"
            text.append(f"  no output yet (the job is {state}); it shows here as soon as it comes", "dim")
        if self._read_error:
            text.append(f"  ⚠ {self._read_error}: retrying", "bold red")
        elif self._ended:
            text.append("  log complete", "dim")
        plain = text.plain
        if plain != self._status_text:
            self._status_text = plain
            self.status_line.update(text, layout=False)

    @property
    def status_plain(self) -> str:
        """The status line as plain text (what it says now)."""
        return self._status_text

    # keys
    def action_toggle_follow(self) -> None:
        self.log_view.toggle_follow()
        self._show_status()

    def action_back(self) -> None:
        self.app.pop_screen()
        self.app.show_views()  # type: ignore[attr-defined]  # they were not kept current under this screen

    def action_cancel_job(self) -> None:
        self.app.confirm_cancel(self.job_id, self.record)  # type: ignore[attr-defined]

    def on_log_view_follow_changed(self, _message: LogView.FollowChanged) -> None:
        self._show_status()
