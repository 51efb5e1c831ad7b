"""The batching writer raid puts a running job's output through, on any LogStream (rai/backends/logs.py):
few large entries, UTF-8 kept whole, stdout and stderr apart, a byte cap that keeps the head and tail."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from tenacity import RetryCallState

from rai.backends.held_tail import HELD_ALIGN, HeldTail
from rai.backends.logs import LogStream
from rai.domain.models import JobEnd, LogEntry, LogKind
from rai.errors import ServiceUnavailable
from rai.retrying import backoff
from rai.units import format_size, plural

log = logging.getLogger("rai.logs")

ENTRY_MAX_BYTES = 256 * 1024  # output per entry: each costs every hop a share, so a flood goes in few (raid: -25%)
BATCH_MAX_ENTRIES = 256  # entries handed to the stream per append
BATCH_MAX_BYTES = 4 * 1024 * 1024  # bytes of JSON per append
SEND_FIRST_WAIT = 0.05  # seconds before a failed batch is written again, doubling ...
SEND_MAX_WAIT = 2.0  # ... up to this, for `retry_for` seconds in all


def _complete_len(buf: bytearray | bytes, end: int | None = None) -> int:
    """Length of `buf[:end]` without a trailing incomplete UTF-8 sequence (kept for the next batch)."""
    n = len(buf) if end is None else end
    for back in range(1, min(4, n) + 1):
        b = buf[n - back]
        if b < 0x80:
            return n
        if b >= 0xC0:  # lead byte: how long its sequence is
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4 if b < 0xF8 else 1
            return n - back if need > back else n
        # a continuation byte: look further back
    return n


class LogWriter:
    """Batches a running job's output into few, large log entries, written by a background thread.

    Consecutive output of one kind is merged into an entry of up to `max_bytes` bytes, cut when the kind
    changes, when `max_bytes` is reached (at a newline in the last half when there is one), on
    `status`/`end`/`flush`, or `max_delay` seconds after the first unwritten byte. A multi-byte UTF-8
    character is never split across entries. Entries are written in the order they were made.

    When the log stream fails, a batch is retried with backoff for `retry_for` seconds and then dropped
    (counted in `lost_bytes`); later batches are then tried once each until one gets through, and a status
    entry then says how much output was lost. Up to `max_pending` bytes wait in memory; beyond that
    `output` blocks, which stalls the job's output rather than memory.

    `max_log_bytes` (pubsub.max_log_bytes; None or 0: no cap) bounds the stdout+stderr bytes a log keeps: the
    first half (the head) is written as it comes, output past it is held back (rai.backends.held_tail, a status
    entry says so); at `end`/`close` a note says how much was left out, then the tail follows (in order,
    stdout and stderr apart, from a whole line and character), then the end entry. The job itself goes on.
    """

    def __init__(self, logs: LogStream, job_id: str, max_bytes: int = ENTRY_MAX_BYTES, max_delay: float = 0.05,
                 retry_for: float = 120.0, max_pending: int | None = None, max_log_bytes: int | None = None):
        self.logs, self.job_id = logs, job_id
        self.max_bytes = max(16, int(max_bytes))
        cap = int(max_log_bytes or 0)
        self.max_log_bytes = cap if cap > 0 else None
        self._head_limit = cap // 2
        self._tail = HeldTail(max(1, cap - cap // 2))  # what is held back past the head
        self.output_bytes = 0  # stdout+stderr bytes the job wrote
        self._holding = False  # past the head: output is held back, not written
        self._reported_left_out = (0, 0)
        self.max_delay = max(0.0, max_delay)
        self.retry_for = retry_for
        self.max_pending = max_pending or 16 * self.max_bytes
        self.lost_bytes = 0  # output dropped after retrying for `retry_for` seconds
        self.failed_writes = 0  # attempts to write a batch that failed (and were retried or dropped)
        self.error: BaseException | None = None  # the last failure
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._kind: LogKind | None = None
        self._buf = bytearray()
        self._tails: dict[LogKind, bytes] = {}  # incomplete UTF-8 ends, per kind
        self._first_at: float | None = None
        self._ready: deque[tuple[LogEntry, int]] = deque()
        self._ready_bytes = 0
        self._queued = 0  # entries ever made
        self._done = 0  # entries ever written or dropped
        self._dropped_max = -1  # index of the last dropped entry
        self._checked = 0  # entries whose loss flush() has already reported
        self._failing = False  # gave up on a batch; try later ones once until one gets through
        self._unreported_loss = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"logwriter-{job_id}", daemon=True)
        self._thread.start()

    # what raid calls
    def output(self, kind: str, data: bytes) -> None:
        """Raw stdout/stderr bytes of the job; returns at once unless too much waits to be written."""
        name = getattr(kind, "value", kind)
        if name not in ("stdout", "stderr"):
            raise ValueError(f"output kind must be stdout or stderr, not {name!r}")
        if not data:
            return
        stream = LogKind(name)
        with self._lock:  # the condition's lock, taken without the Condition's extra call
            if self._closed:
                raise ValueError("LogWriter is closed")
            before = self.output_bytes
            self.output_bytes += len(data)
            if self.max_log_bytes is None or (not self._holding and self.output_bytes <= self._head_limit):
                self._put(stream, data)
            else:
                if not self._holding:  # the head is full: what fits goes on, the rest is held back
                    room = self._head_limit - before
                    if room > 0:
                        self._put(stream, data[:room])
                        data = data[room:]
                    self._start_holding()
                self._tail.hold(stream, data)
            self._backpressure()

    def status(self, text: str) -> None:
        """A status line, after all output written before it."""
        with self._cond:
            if self._holding:  # keeps its place among the held-back output
                self._tail.status(text)
            else:
                self._status(text)

    def end(self, end: JobEnd) -> None:
        """The job's final entry, after everything else; waits until it is written.

        Raises ServiceUnavailable when the end entry could not be written."""
        with self._cond:
            self._cut(final=True)
            self._release()
            self._emit(LogEntry(kind=LogKind.end, end=end), 0)
            index = self._queued - 1
            self._wait_done(self._queued)
            if self._dropped_max >= index:
                raise ServiceUnavailable(
                    f"the end of job {self.job_id} could not be written to its log: {self.error}",
                    hint="check that Redis (pubsub.url) runs and is reachable",
                )
            self._checked = self._queued

    def flush(self) -> None:
        """Write everything so far (but an incomplete character, and output held back past the head of a
        capped log); waits until it is written.

        Raises ServiceUnavailable when some of it (since the last flush) had to be dropped."""
        with self._cond:
            self._cut()
            target = self._queued
            self._wait_done(target)
            lost = self._dropped_max >= self._checked
            self._checked = max(self._checked, target)
            if lost:
                raise ServiceUnavailable(
                    f"some output of job {self.job_id} could not be written to its log: {self.error}",
                    hint="check that Redis (pubsub.url) runs and is reachable",
                )

    def close(self) -> None:
        """Write what is left (an incomplete character at the end becomes U+FFFD) and stop; never raises."""
        with self._cond:
            if self._closed:
                return
            self._cut(final=True)
            self._release()
            self._closed = True
            self._cond.notify_all()
        self._thread.join(self.retry_for + 30)

    @property
    def held_bytes(self) -> int:
        """Output bytes held back in memory (at most `max_log_bytes - max_log_bytes // 2`)."""
        return self._tail.bytes

    @property
    def left_out_bytes(self) -> int:  # output bytes left out of the middle of a capped log
        return self._tail.left_out_bytes

    @property
    def left_out_lines(self) -> int:  # newlines in what was left out
        return self._tail.left_out_lines

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # inside, with the lock held
    def _put(self, kind: LogKind, data: bytes) -> None:
        """Into the current entry, cutting full entries off it."""
        if kind != self._kind:
            self._switch(kind)
        buf = self._buf
        buf += data
        limit = self.max_bytes
        if len(buf) >= limit:
            pos = 0
            while len(buf) - pos >= limit:
                cut = buf.rfind(b"\n", pos + limit // 2, pos + limit) + 1
                if not cut:  # no newline near the limit: cut there, but not inside a character
                    cut = _complete_len(buf, pos + limit)
                self._emit(LogEntry(kind=kind, body=buf[pos:cut].decode("utf-8", "replace")), cut - pos)
                pos = cut
            del buf[:pos]
            self._first_at = None
        if self._first_at is None and _complete_len(buf):
            self._first_at = time.monotonic()
            self._cond.notify_all()

    def _backpressure(self) -> None:
        while self._ready_bytes > self.max_pending:
            if self._failing or not self._thread.is_alive():
                self._drop_oldest()  # the log stream is down: keep memory bounded, not the job waiting
                break
            self._cond.wait(1.0)

    def _switch(self, kind: LogKind) -> None:
        self._cut()
        if self._kind is not None and self._buf:
            self._tails[self._kind] = bytes(self._buf)
        self._kind = kind
        self._buf = bytearray(self._tails.pop(kind, b""))

    def _cut(self, final: bool = False) -> None:
        """Make an entry of the current output (keeping an incomplete character unless `final`)."""
        buf = self._buf
        if buf and self._kind is not None:  # output waits only under the kind it came as
            n = len(buf) if final else _complete_len(buf)
            if n:
                self._emit(LogEntry(kind=self._kind, body=buf[:n].decode("utf-8", "replace")), n)
                del buf[:n]
        self._first_at = None
        if final:
            for kind, tail in self._tails.items():
                self._emit(LogEntry(kind=kind, body=tail.decode("utf-8", "replace")), len(tail))
            self._tails.clear()

    def _status(self, text: str) -> None:
        self._cut()
        self._emit(LogEntry(kind=LogKind.status, body=text), len(text))

    def _start_holding(self) -> None:
        """The head is full: it ends at a line's end when one is near, what is not written yet is held back."""
        buf = self._buf
        cut = (buf.rfind(b"\n", max(0, len(buf) - HELD_ALIGN)) + 1  # a short piece of a line is held back,
               or (_complete_len(buf) if len(buf) >= HELD_ALIGN else 0))  # a long line cut at a whole character
        if cut and self._kind is not None:
            self._emit(LogEntry(kind=self._kind, body=buf[:cut].decode("utf-8", "replace")), cut)
            del buf[:cut]
        rest = [*self._tails.items()]  # earlier kinds' incomplete characters first
        if self._kind is not None:
            rest.append((self._kind, bytes(buf)))
        self._tails.clear()
        self._kind, self._buf, self._first_at = None, bytearray(), None
        cap, tail = self.max_log_bytes, self._tail.limit
        self._status(f"log limit: the output has passed {format_size(self._head_limit)}, half of the "
                     f"{format_size(cap)} a job's log keeps; from here on it is held back, and only its last "
                     f"{format_size(tail)} will be shown, when the job ends (the job keeps running)")
        self._holding = True
        for kind, data in rest:
            if data:
                self._tail.hold(kind, data)

    def _release(self) -> None:
        """At the end: a note on what was left out, the status lines from the middle, then the tail."""
        if not self._holding:
            return
        held = self._tail
        held.start_whole()
        left = self.left_out_bytes - self._reported_left_out[0]
        lines = self.left_out_lines - self._reported_left_out[1]
        self._reported_left_out = (self.left_out_bytes, self.left_out_lines)
        if left:
            self._status(f"log limit: {format_size(left)} of output ({left} bytes, about {plural(lines, 'line')}) "
                         f"left out here, over the {format_size(self.max_log_bytes)} a job's log keeps; "
                         f"the last {format_size(held.bytes)} follow")
        elif held.items:
            self._status(f"log limit: the output held back since {format_size(self._head_limit)} follows; "
                         "nothing was left out")
        for text in held.middle_status:
            self._status(text)
        if held.middle_status_more:
            self._status(f"(and {plural(held.middle_status_more, 'more status line')} from the left-out part)")
        held.middle_status.clear()
        held.middle_status_more = 0
        while held.items:
            kind, item = held.items.popleft()
            if isinstance(item, str):
                self._status(item)
                continue
            held.bytes -= len(item)
            self._put(kind, bytes(item))
            self._backpressure()
        self._cut(final=True)

    def _emit(self, entry: LogEntry, size: int) -> None:
        self._ready.append((entry, size))
        self._ready_bytes += size
        self._queued += 1
        self._cond.notify_all()

    def _drop_oldest(self) -> None:
        """Drop waiting output from the front (never a status or end entry) down to half of `max_pending`."""
        first = self._queued - len(self._ready)  # index of the first waiting entry
        dropped = lost = 0
        while self._ready and self._ready_bytes > self.max_pending // 2:
            entry, n = self._ready[0]
            if entry.kind not in (LogKind.stdout, LogKind.stderr):
                break
            self._ready.popleft()
            self._ready_bytes -= n
            dropped += 1
            lost += n
        if dropped:
            self._done += dropped
            self._dropped_max = max(self._dropped_max, first + dropped - 1)
            self.lost_bytes += lost
            self._unreported_loss += lost
            self._cond.notify_all()

    def _wait_done(self, target: int) -> None:
        self._cond.notify_all()
        while self._done < target and self._thread.is_alive():
            self._cond.wait(1.0)

    # the writing thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ready:
                    wait = None
                    if self._first_at is not None:
                        wait = self._first_at + self.max_delay - time.monotonic()
                        if wait <= 0:
                            self._cut()
                            continue
                    elif self._closed:
                        return
                    self._cond.wait(wait)
                batch: list[LogEntry] = []
                size = output = 0
                while self._ready and len(batch) < BATCH_MAX_ENTRIES and size < BATCH_MAX_BYTES:
                    entry, n = self._ready.popleft()
                    batch.append(entry)
                    size += n
                    if entry.kind in (LogKind.stdout, LogKind.stderr):
                        output += n
            ok = self._send(batch)
            with self._cond:
                self._done += len(batch)
                self._ready_bytes -= size
                if not ok:
                    self._dropped_max = self._done - 1
                    self.lost_bytes += output
                    self._unreported_loss += output
                self._cond.notify_all()

    def _send(self, batch: list[LogEntry]) -> bool:
        """Write a batch, retrying with backoff; False when it had to be dropped."""
        important = any(e.kind == LogKind.end for e in batch)

        def write_once() -> int:
            note = self._unreported_loss
            entries = batch
            if note:
                entries = [LogEntry(kind=LogKind.status, body=f"{note} bytes of output were lost: "
                                    "the log stream was unreachable"), *batch]
            try:
                self.logs.append(self.job_id, entries)
            except Exception as e:
                self.failed_writes += 1
                self.error = e
                raise
            return note

        def retrying_in(state: RetryCallState) -> None:
            log.debug("writing the log of %s failed (%s); retrying in %.2fs", self.job_id, self.error,
                      state.upcoming_sleep)

        # while the stream is down, later batches (but the end) are tried once each until one gets through
        retrying = backoff(self.retry_for, SEND_FIRST_WAIT, SEND_MAX_WAIT, before_sleep=retrying_in,
                           give_up=lambda _state: self._failing and not important)
        try:
            note = retrying(write_once)
        except Exception as e:
            if not self._failing:
                log.warning("dropping log output of job %s: %s", self.job_id, e)
            self._failing = True
            return False
        with self._cond:
            self._unreported_loss -= note
            self._failing = False
        return True
