"""Queue: per queue waiting, running, oldest waiting age, jobs/min; the load over the last hour; Redis memory."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Sparkline, Static

from raitui.components.live_table import LiveTable
from raitui.data import HOUR, ClusterSnapshot, QueueRow, RedisMemory
from raitui.format import BAD, DIM, WARN, age_text, size_text
from raitui.views.base import View

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("queue", "QUEUE", 24),
    ("waiting", "WAITING", 8),
    ("running", "RUNNING", 8),
    ("oldest", "OLDEST WAITING", 14),
    ("rate", "JOBS/MIN", 9),
    ("trend", "LAST HOUR", 30),
)
BUCKETS = 120  # the sparkline's hour in 30-second steps
TREND = "▁▂▃▄▅▆▇█"
OLD_WAIT = 600.0  # seconds of waiting that deserve attention
MEMORY_ALARM = 0.80  # Redis memory above this share of its limit turns red: trimming is losing the race


def depth_buckets(history: list[tuple[float, int]], now: float, buckets: int = BUCKETS,
                  spans: Sequence[tuple[float, float]] = ()) -> list[float]:
    """The hour before `now` in equal steps: in each, the jobs that were on the queue (waiting or running)
    during the step by their records, or the highest depth raid sampled there if that is more; a step
    without either keeps the sampled depth before it (raid samples only while one runs)."""
    step = HOUR / buckets
    start = now - HOUR
    sampled: list[float | None] = [None] * buckets
    for t, waiting in history:
        i = int((t - start) // step)
        if 0 <= i < buckets:
            sampled[i] = max(sampled[i] or 0, waiting)
    on_queue = [0] * buckets
    for begin, end in spans:
        first, last_i = max(0, int((begin - start) // step)), min(buckets - 1, int((end - start) // step))
        for i in range(first, last_i + 1):
            on_queue[i] += 1
    last = 0.0
    filled = []
    for v, n in zip(sampled, on_queue, strict=True):
        last = v if v is not None else last
        filled.append(float(max(last, n)))
    return filled


def trend_text(values: list[float], width: int = 30) -> str:
    """A one-line sparkline of `values` squeezed into `width` characters."""
    if not values:
        return ""
    per = max(1, len(values) // width)
    cells = [max(values[i:i + per]) for i in range(0, len(values), per)][-width:]
    top = max(cells) or 1.0
    return "".join(TREND[min(len(TREND) - 1, round(v / top * (len(TREND) - 1)))] for v in cells)


def redis_memory_text(m: RedisMemory | None) -> Text:
    """`Redis memory 212.4MiB of 1.0GiB (21 %)`, red from MEMORY_ALARM of the limit on."""
    if m is None:
        return Text("Redis memory: -", style=DIM)
    text = Text.assemble(("Redis memory ", DIM), (size_text(m.used), "bold"))
    if m.limit:
        share = Text(f" ({m.fraction:.0%})", style=BAD if m.fraction > MEMORY_ALARM else DIM)
        text.append_text(Text.assemble((" of ", DIM), (size_text(m.limit), "bold"),
                                       ("" if m.has_maxmemory else " (no maxmemory: the machine's)", DIM), share))
        if m.fraction > MEMORY_ALARM:
            text.stylize(BAD)
    return text


class QueueView(View):
    view_name = "queue"
    title = "Queue"
    description = "per queue: waiting, running, oldest waiting, jobs/min, depth over the last hour"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._snapshot: ClusterSnapshot | None = None

    def compose(self) -> ComposeResult:
        table = LiveTable(COLUMNS, right={"waiting", "running", "oldest", "rate"}, id="queue-table")
        table.border_title = "queues"
        yield table
        yield Static(id="redis-memory")
        with Vertical(id="queue-depth"):
            yield Static(id="queue-depth-title")
            yield Sparkline([], id="queue-sparkline")
            with Horizontal(id="queue-depth-axis"):
                yield Static("-60 min", id="queue-axis-start")
                yield Static("-30 min", id="queue-axis-middle")
                yield Static("now", id="queue-axis-end")

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        self._snapshot = snapshot
        table = self.query_one(LiveTable)
        now = snapshot.taken_at.timestamp()
        rows = {q.name: self._cells(q, now) for q in snapshot.queues}
        table.sync(rows)
        if not rows:
            self.query_one("#queue-depth-title", Static).update(Text("no queues yet", style=DIM))
        table.set_titles(f"queues ({len(rows)})")
        self.query_one("#redis-memory", Static).update(redis_memory_text(snapshot.redis_memory))
        self._show_depth()

    @staticmethod
    def _cells(q: QueueRow, now: float) -> tuple:
        oldest = Text(age_text(q.oldest_waiting_age), justify="right")
        if q.oldest_waiting_age is not None and q.oldest_waiting_age >= OLD_WAIT:
            oldest.stylize(WARN)
        waiting = Text(str(q.waiting), justify="right", style="bold" if q.waiting else DIM)
        return (
            q.name,
            waiting,
            Text(str(q.running), justify="right"),
            oldest,
            Text(f"{q.per_minute:.1f}", justify="right"),
            Text(trend_text(depth_buckets(q.history, now, spans=q.spans)), style="#5fafff"),
        )

    def _selected(self) -> QueueRow | None:
        if self._snapshot is None or not self._snapshot.queues:
            return None
        table = self.query_one(LiveTable)
        key = table.selected_key()
        return next((q for q in self._snapshot.queues if q.name == key), self._snapshot.queues[0])

    def _show_depth(self) -> None:
        q = self._selected()
        if q is None or self._snapshot is None:
            self.query_one(Sparkline).data = []
            return
        values = depth_buckets(q.history, self._snapshot.taken_at.timestamp(), spans=q.spans)
        self.query_one(Sparkline).data = values
        title = Text.assemble(("jobs waiting or running on ", DIM), (q.name, "bold"), (" over the last hour", DIM),
                              (f"   now {q.waiting + q.running}", "bold"), (f"   max {max(values):.0f}", DIM))
        if not q.history and not q.spans:
            title.append("   (no jobs in the last hour)", DIM)
        self.query_one("#queue-depth-title", Static).update(title)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_depth()
