"""Log stream port: a job's output, replayable from its first entry, then live.

Embedded and production backend: a Redis Stream per job (`RedisLogStream`), trimmed to a maximum
length and expiring `retention` seconds after the job's end entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from rai.domain.models import LogEntry


class LogStream(Protocol):
    def append(self, job_id: str, entries: list[LogEntry]) -> str:
        """Append entries in order; returns the id of the last one."""

    def read(
        self, job_id: str, after: str = "0", block: float | None = None, count: int = 1000
    ) -> list[tuple[str, LogEntry]]:
        """Entries after id `after` ("0" = from the first); waits up to `block` s when none."""

    def follow(self, job_id: str, after: str = "0", idle: float | None = None,
               on_quiet: Callable[[], None] | None = None) -> Iterator[LogEntry]:
        """Every entry from `after` on, live, ending after the end entry (or `idle` s with nothing new);
        `on_quiet` is called every couple of seconds while nothing comes."""

    def expire(self, job_id: str, seconds: float) -> None:
        """Delete the stream `seconds` from now (after the end entry: the retention period)."""

    def length(self, job_id: str) -> int: ...

    def last_entry(self, job_id: str) -> LogEntry | None:
        """The newest entry, None when there is none."""
