"""The top of the console: the cluster at a glance, the view tabs, and a banner when a backend is away."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.content import Content
from textual.widgets import Static

from raitui.data import ClusterSnapshot
from raitui.format import BAD, DIM, WARN, local


class ClusterHeader(Static):
    """`rai console · queue 12 waiting · 3 running · nodes 2 up 1 lost · 21:05:12`."""

    def show(self, snapshot: ClusterSnapshot | None, where: str, stale_for: float = 0.0) -> None:
        text = Text.assemble(("rai", "bold #5fafff"), (" console", "bold"), ("  " + where, DIM))
        text.append("   ")
        if snapshot is None:
            text.append("connecting…", DIM)
        else:
            redis_ok = snapshot.redis_error is None
            waiting = Text(str(snapshot.waiting) if redis_ok else "?", style="bold")
            text.append("queue ", DIM)
            text.append_text(waiting)
            text.append(" waiting", DIM)
            text.append("  ·  ", DIM)
            text.append(str(snapshot.running) if redis_ok else "?", "bold")
            text.append(" running", DIM)
            text.append("  ·  ", DIM)
            text.append("nodes ", DIM)
            text.append(str(snapshot.nodes_up) if redis_ok else "?", "bold #4ec97b")
            text.append(" up", DIM)
            if snapshot.nodes_lost:
                text.append(f" {snapshot.nodes_lost}", BAD)
                text.append(" lost", DIM)
            text.append("  ·  ", DIM)
            text.append(local(snapshot.taken_at).strftime("%H:%M:%S"), DIM)
            if stale_for > 0:
                text.append(f"  (no update for {stale_for:.0f}s)", WARN)
        self.update(text, layout=False)


class ViewTabs(Static):
    """`1 Jobs  2 Queue  3 Nodes  4 Daemon`, the current one highlighted; click to switch."""

    def show(self, views: list[tuple[str, str]], current: str) -> None:
        parts = []
        for i, (name, title) in enumerate(views, start=1):
            style = "bold reverse $accent" if name == current else "$foreground"
            parts.append(f"[@click=app.show_view('{name}')][{style}] {i} {title} [/][/]")
        hint = "[$text-muted]    : view   / filter   ? help   ctrl+p commands[/]"
        self.update(Content.from_markup(" ".join(parts) + hint), layout=False)


class ServiceBanner(Static):
    """Says, in place, which backend does not answer; hidden while all is well."""

    def show(self, snapshot: ClusterSnapshot | None, redis_url: str, db_where: str, retry: float,
             at: datetime | None = None) -> None:
        problems = []
        if snapshot is not None and snapshot.redis_error:
            error = snapshot.redis_error
            problems.append(error if redis_url in error else f"Redis at {redis_url} does not answer: {error}")
        if snapshot is not None and snapshot.db_error:
            problems.append(f"the database ({db_where}) does not answer: {snapshot.db_error}")
        self.display = bool(problems)
        if problems:
            text = Text()
            for p in problems:
                text.append("⚠ ", "bold")
                text.append(p)
                text.append(f" — retrying every {retry:.0f}s\n" if retry >= 1 else " — retrying\n")
            text.rstrip()
            self.update(text)
