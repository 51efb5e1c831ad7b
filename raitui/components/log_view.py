"""A log view that keeps up with a flood: a bounded ring of lines, rendered only where visible.

Lines arrive in batches (`write`). While following, the view sticks to the end; scrolling up (or
`pause`) freezes what is on screen and counts the lines that wait; `resume` takes them in and
follows again. Past `capacity` lines the oldest are dropped, counted in `dropped`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from enum import IntEnum

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


class LineKind(IntEnum):
    stdout = 0
    stderr = 1
    status = 2
    end_ok = 3
    end_bad = 4
    note = 5  # the console's own remarks (a gap, an error reading)


_COMPONENT = {
    LineKind.stdout: "log-view--stdout",
    LineKind.stderr: "log-view--stderr",
    LineKind.status: "log-view--status",
    LineKind.end_ok: "log-view--end-ok",
    LineKind.end_bad: "log-view--end-bad",
    LineKind.note: "log-view--note",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")  # everything but tab, newline and ESC


class LineRing:
    """The newest `capacity` lines: append and index in O(1) (amortised), oldest dropped first."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self.texts: list[str] = []
        self.kinds = bytearray()
        self.dropped = 0  # lines ever dropped off the front

    def __len__(self) -> int:
        return len(self.texts)

    def extend(self, texts: Sequence[str], kinds: bytes | bytearray) -> None:
        if len(texts) >= self.capacity:
            cut = len(texts) - self.capacity
            self.dropped += len(self.texts) + cut
            self.texts = list(texts[cut:])
            self.kinds = bytearray(kinds[cut:])
            return
        self.texts.extend(texts)
        self.kinds += kinds
        # Trim in chunks of a quarter of the capacity so dropping stays amortised O(1) per line.
        excess = len(self.texts) - self.capacity
        if excess > self.capacity // 4 or (excess > 0 and self.capacity < 64):
            del self.texts[:excess]
            del self.kinds[:excess]
            self.dropped += excess

    def visible_start(self) -> int:
        """Index of the first line inside the capacity (the chunked trim may keep a few more)."""
        return max(0, len(self.texts) - self.capacity)


class LogView(ScrollView, can_focus=True):
    """Lines of a job's log, coloured by kind; see the module docstring for following."""

    COMPONENT_CLASSES = set(_COMPONENT.values())

    DEFAULT_CSS = """
    LogView { background: $surface; }
    LogView > .log-view--stdout { color: $foreground; }
    LogView > .log-view--stderr { color: $error; }
    LogView > .log-view--status { color: $accent; text-style: italic; }
    LogView > .log-view--end-ok { color: $success; text-style: bold; }
    LogView > .log-view--end-bad { color: $error; text-style: bold; }
    LogView > .log-view--note { color: $warning; text-style: italic; }
    """

    BINDINGS = [
        Binding("end", "resume", "Resume", key_display="End"),
        Binding("home", "top", "Top", show=False),
    ]

    follow: reactive[bool] = reactive(True)

    class FollowChanged(Message):
        def __init__(self, log_view: LogView, follow: bool) -> None:
            super().__init__()
            self.log_view = log_view
            self.follow = follow

    def __init__(self, capacity: int = 100_000, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.ring = LineRing(capacity)
        self._pending: deque[tuple[list[str], bytes]] = deque()
        self._pending_lines = 0  # lines held back while paused (their count, even past capacity)
        self._width = 0
        self._cache: LRUCache[int, Strip] = LRUCache(2048)
        self._styles: dict[int, Style] | None = None
        self._base_style: Style | None = None  # rich_style walks the DOM: once per style change, not per line
        self.lines_written = 0  # lines taken into the ring, ever

    # what callers use
    @property
    def pending(self) -> int:
        return self._pending_lines

    @property
    def line_count(self) -> int:
        return len(self.ring) - self.ring.visible_start()

    @property
    def dropped(self) -> int:
        return self.ring.dropped + self.ring.visible_start()

    def write(self, texts: list[str], kinds: bytes | bytearray) -> None:
        """Add lines (one kind per line); shown now when following, else counted as waiting."""
        if not texts:
            return
        if not self.follow:
            self._pending.append((texts, bytes(kinds)))
            self._pending_lines += len(texts)
            # Never hold more than the ring could show: older waiting lines would be dropped anyway.
            held = sum(len(t) for t, _ in self._pending)
            while self._pending and held - len(self._pending[0][0]) >= self.ring.capacity:
                held -= len(self._pending.popleft()[0])
            return
        self._take(texts, kinds)
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def pause(self) -> None:
        self.follow = False

    def resume(self) -> None:
        """Take in the waiting lines and follow again."""
        while self._pending:
            texts, kinds = self._pending.popleft()
            self._take(texts, kinds)
        self._pending_lines = 0
        self.follow = True
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def toggle_follow(self) -> None:
        if self.follow:
            self.pause()
        else:
            self.resume()

    def action_resume(self) -> None:
        self.resume()

    def action_top(self) -> None:
        self.pause()
        self.scroll_home(animate=False, immediate=True)

    def text_lines(self) -> list[str]:
        """The lines the view holds, oldest first (for tests and copying)."""
        return self.ring.texts[self.ring.visible_start():]

    # inside
    def _take(self, texts: list[str], kinds: bytes | bytearray) -> None:
        self.ring.extend(texts, kinds)
        self.lines_written += len(texts)
        widest = max(map(len, texts))
        if widest > self._width:
            self._width = min(widest, 4096)
        self.virtual_size = Size(self._width, self.line_count)
        self.refresh()

    def on_resize(self) -> None:
        if self.follow:  # the first lines may come before the view has its size
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def watch_follow(self, follow: bool) -> None:
        self.post_message(self.FollowChanged(self, follow))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # The reader scrolled up: stop following so what they read stays put.
        if self.follow and new_value < old_value and round(new_value) < self.max_scroll_y:
            self.follow = False

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._base_style = None
        self._cache.clear()

    def _style(self, kind: int) -> Style:
        if self._styles is None:
            base = self.base_style
            self._styles = {k: base + self.get_component_rich_style(c) for k, c in _COMPONENT.items()}
        return self._styles.get(kind, self._styles[LineKind.stdout])

    @property
    def base_style(self) -> Style:
        if self._base_style is None:
            self._base_style = self.rich_style
        return self._base_style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = self.ring.visible_start() + scroll_y + y
        rich_style = self.base_style
        if index >= len(self.ring):
            return Strip.blank(width, rich_style)
        key = self.ring.dropped + index  # a line's number in the whole log: stable as the ring moves
        strip = self._cache.get(key)
        if strip is None:
            strip = self._line_strip(self.ring.texts[index], self.ring.kinds[index])
            self._cache[key] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, rich_style).apply_offsets(scroll_x, y)

    def _line_strip(self, line: str, kind: int) -> Strip:
        style = self._style(kind)
        if "\t" in line:
            line = line.expandtabs()
        if "\x1b" in line:  # programs colour their output: keep its colours, drop other escapes
            text = Text.from_ansi(line, style=style, no_wrap=True, end="")
            return Strip(text.render(self.app.console)).simplify()
        if _CONTROL.search(line):
            line = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", line)
        return Strip([Segment(line, style)])
