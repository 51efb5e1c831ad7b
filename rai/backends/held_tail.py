"""The held-back tail of a capped log (pubsub.max_log_bytes): output past the log's head is kept in memory, of
which only the newest `limit` bytes stay (the oldest go, counted); status lines made meanwhile keep their
place, those from the left-out middle are kept apart to follow the note. LogWriter releases it at the end:
a note on what was left out, the middle's status lines, then the tail, starting at a whole line and character."""

from __future__ import annotations

from collections import deque

from rai.domain.models import LogKind

HELD_CHUNK = 64 * 1024  # bytes per chunk of held-back output (the tail past the head of a capped log)
HELD_ALIGN = 4096  # the kept tail starts after the first newline in its first bytes (a whole line)
MIDDLE_STATUS_MAX = 100  # status lines from the left-out middle written after the note; more are only counted


class HeldTail:
    """Output held back past the head of a capped log: at most `limit` bytes in at most `max_chunks` chunks."""

    def __init__(self, limit: int):
        self.limit = limit
        self.max_chunks = max(64, limit // 256)  # chunks: tiny alternating writes stay bounded too
        self.items: deque[tuple[LogKind, bytearray | str]] = deque()  # (kind, bytes) or (status, text)
        self.bytes = 0
        self.left_out_bytes = 0  # output left out of the middle
        self.left_out_lines = 0  # newlines in what was left out
        self.trimmed = False  # the oldest held output went since the last release: start the tail at a line
        self.dropped_line_end = False  # the last byte left out ended a line
        self.middle_status: list[str] = []
        self.middle_status_more = 0

    def status(self, text: str) -> None:
        """A status line made while output is held back: it keeps its place among it."""
        self.items.append((LogKind.status, text))
        self.trim()

    def hold(self, kind: LogKind, data: bytes) -> None:
        """Held-back output: appended to the tail, whose oldest bytes go past `limit`."""
        if not data:
            return
        if len(data) > self.limit:  # more than the whole tail at once: only its end can stay
            cut = len(data) - self.limit
            self.left_out_bytes += cut
            self.left_out_lines += data.count(b"\n", 0, cut)
            self.trimmed = True
            self.dropped_line_end = data[cut - 1] == 0x0A
            kept: bytes | memoryview = memoryview(data)[cut:]
        else:
            kept = data
        held = self.items
        pos = 0
        last = held[-1][1] if held and held[-1][0] == kind else None
        if isinstance(last, bytearray) and len(last) < HELD_CHUNK:
            pos = min(HELD_CHUNK - len(last), len(kept))
            last += kept[:pos]
        while pos < len(kept):
            held.append((kind, bytearray(kept[pos:pos + HELD_CHUNK])))
            pos += HELD_CHUNK
        self.bytes += len(kept)
        self.trim()

    def trim(self) -> None:
        """Drop the oldest held output down to `limit` bytes (and `max_chunks` chunks)."""
        held = self.items
        while held and (self.bytes > self.limit or len(held) > self.max_chunks):
            kind, item = held[0]
            if isinstance(item, str):  # a status line from the left-out middle: written after the note
                held.popleft()
                if len(self.middle_status) < MIDDLE_STATUS_MAX:
                    self.middle_status.append(item)
                else:
                    self.middle_status_more += 1
                continue
            excess = self.bytes - self.limit
            n = len(item) if len(held) > self.max_chunks or excess >= len(item) else excess
            self.left_out_lines += item.count(b"\n", 0, n)
            self.dropped_line_end = item[n - 1] == 0x0A
            if n == len(item):
                held.popleft()
            else:
                del item[:n]
            self.bytes -= n
            self.left_out_bytes += n
            self.trimmed = True

    def start_whole(self) -> None:
        """After a trim, the tail starts at a character, and at a line when one starts soon."""
        if not self.trimmed:
            return
        seen: set[str] = set()
        for index, (kind, item) in enumerate(self.items):
            if isinstance(item, str) or kind in seen:
                continue
            seen.add(kind)
            skip = 0
            while skip < min(3, len(item)) and 0x80 <= item[skip] < 0xC0:
                skip += 1
            if index == 0 and not self.dropped_line_end:
                skip = max(skip, item.find(b"\n", 0, HELD_ALIGN) + 1)
            if skip:
                self.left_out_lines += item.count(b"\n", 0, skip)
                del item[:skip]
                self.bytes -= skip
                self.left_out_bytes += skip
        self.trimmed = False
