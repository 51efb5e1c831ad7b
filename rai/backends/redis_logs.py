"""A job's log as a Redis Stream (the writer raid batches its output with is rai/backends/log_writer.py).

Keys (prefix `rai:`):

- `rai:log:<job_id>`: the job's stream; each entry has one field `e`, a LogEntry JSON. Trimmed to
  about `max_entries` entries (XADD MAXLEN ~); expires `retention` seconds after its end entry.
  raid's LogWriter also keeps a job's output in it to `pubsub.max_log_bytes`: its head and tail,
  with a note on how much of the middle was left out.
- `rai:logseq:<job_id>`: a small hash (writer -> last batch number and id) that makes a retried
  append idempotent: a batch whose reply was lost in a connection blip is not written twice. It
  expires an hour after the last append.

Readers replay from any id (`"0"`: the first entry) and then block for new entries, so `rai submit`
shows a job's output from its first line whether it started before or after the client looked.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import redis
from pydantic import ValidationError
from tenacity import RetryCallState

from rai.domain.models import LogEntry, LogKind
from rai.errors import ServiceUnavailable
from rai.live.redis_keys import PREFIX, RedisKeys
from rai.retrying import backoff

log = logging.getLogger("rai.logs")

FIELD = b"e"
SEQ_TTL_MS = 3600 * 1000  # how long a writer's last batch number is remembered
APPEND_MAX_ENTRIES = 256  # entries per round trip (one script call)
APPEND_MAX_BYTES = 4 * 1024 * 1024  # bytes of JSON per round trip
QUIET_EVERY = 2.0  # seconds between on_quiet calls of follow() while nothing comes

_BLIPS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
BLIP_FIRST_WAIT = 0.05  # seconds before a batch is written (or a follow reads) again after a blip, doubling ...
BLIP_MAX_WAIT = 1.0  # ... up to this; the bound in all is the stream's `retry_for` seconds

# Append a batch once: KEYS = stream, seq hash; ARGV = writer, batch number, maxlen, entries...
# A retry of a batch that already landed returns the id it got instead of writing it again.
_APPEND = """
local done = redis.call('HGET', KEYS[2], ARGV[1])
if done then
  local sep = string.find(done, ' ', 1, true)
  if sep and string.sub(done, 1, sep - 1) == ARGV[2] then return string.sub(done, sep + 1) end
end
local id
for i = 4, #ARGV do
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[i])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. id)
redis.call('PEXPIRE', KEYS[2], SEQ_TTL_MS)
return id
""".replace("SEQ_TTL_MS", str(SEQ_TTL_MS))


def _unavailable(e: BaseException, what: str = "Redis does not answer") -> ServiceUnavailable:
    return ServiceUnavailable(f"{what}: {e}", hint="check that Redis (pubsub.url) runs and is reachable")


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


StreamRow = tuple[bytes, dict[bytes, bytes]]  # an entry's id and fields, as a client without decode_responses reads


def range_rows(reply: Any) -> list[StreamRow]:
    """The entries of an XRANGE or XREVRANGE reply (`[(id, fields), ...]`; redis-py types it loosely)."""
    return [(entry_id, fields or {}) for entry_id, fields in reply or []]


def read_rows(reply: Any) -> list[StreamRow]:
    """The entries of an XREAD reply on one stream (`[[stream, [(id, fields), ...]]]`, None when none came)."""
    return range_rows(reply[0][1]) if reply else []


class RedisLogStream:
    """LogStream on one Redis Stream per job; see the module docstring for the keys."""

    def __init__(self, redis_client: redis.Redis, max_entries: int = 100_000, prefix: str = PREFIX,
                 retry_for: float = 10.0):
        self.r = redis_client
        self.max_entries = max(1, int(max_entries))
        self.prefix = prefix
        self.keys = RedisKeys(prefix)
        self.retry_for = retry_for  # seconds append and follow keep retrying through a blip
        self._writer = uuid.uuid4().hex[:12]
        self._batches = itertools.count(1)
        self._append = self.r.register_script(_APPEND)

    def key(self, job_id: str) -> str:
        return self.keys.log(job_id)

    def seq_key(self, job_id: str) -> str:
        return self.keys.log_seq(job_id)

    # writing
    def append(self, job_id: str, entries: list[LogEntry]) -> str:
        """Append in order (atomically per round trip of up to 256 entries / 4 MiB); the last id.

        Retries through a connection blip for `retry_for` seconds without writing anything twice,
        then raises ServiceUnavailable."""
        last = ""
        chunk: list[bytes] = []
        size = 0
        for entry in entries:
            data = entry.to_json().encode()
            if chunk and (len(chunk) >= APPEND_MAX_ENTRIES or size + len(data) > APPEND_MAX_BYTES):
                last = self._append_once(job_id, chunk)
                chunk, size = [], 0
            chunk.append(data)
            size += len(data)
        if chunk:
            last = self._append_once(job_id, chunk)
        return last

    def _append_once(self, job_id: str, payloads: list[bytes]) -> str:
        # One writer name per thread: batches of one thread are sequential, so "same number" is exact.
        writer = f"{self._writer}:{threading.get_ident()}"
        args = [writer, next(self._batches), self.max_entries, *payloads]
        keys = [self.key(job_id), self.seq_key(job_id)]
        retrying = backoff(self.retry_for, BLIP_FIRST_WAIT, BLIP_MAX_WAIT, retry_on=_BLIPS)
        try:
            return _s(retrying(self._append, keys=keys, args=args))
        except _BLIPS as e:
            raise _unavailable(e, f"cannot write the log of job {job_id} to Redis") from e

    def expire(self, job_id: str, seconds: float) -> None:
        ms = max(1, int(seconds * 1000))
        pipe = self.r.pipeline(transaction=False)
        pipe.pexpire(self.key(job_id), ms)
        pipe.pexpire(self.seq_key(job_id), min(ms, SEQ_TTL_MS))
        try:
            pipe.execute()
        except _BLIPS as e:
            raise _unavailable(e) from e

    def length(self, job_id: str) -> int:
        try:
            return int(self.r.xlen(self.key(job_id)))
        except _BLIPS as e:
            raise _unavailable(e) from e

    # reading
    def read(
        self, job_id: str, after: str = "0", block: float | None = None, count: int = 1000
    ) -> list[tuple[str, LogEntry]]:
        """Entries after id `after` ("0": from the first); waits up to `block` s when there are none."""
        try:
            return self._read(job_id, after, block, count)
        except _BLIPS as e:
            raise _unavailable(e) from e

    def _read(self, job_id: str, after: str, block: float | None, count: int = 1000) -> list[tuple[str, LogEntry]]:
        block_ms = None
        if block is not None and block > 0:
            block_ms = max(1, int(block * 1000))
        reply = self.r.xread({self.key(job_id): after}, count=count, block=block_ms)
        out: list[tuple[str, LogEntry]] = []
        for raw_id, fields in read_rows(reply):
            raw = fields.get(FIELD)
            entry_id = _s(raw_id)
            if raw is None:
                continue
            try:
                entry = LogEntry.from_json(raw)
            except ValidationError:
                log.warning("unreadable entry %s in the log of %s", entry_id, job_id)
                entry = LogEntry(kind=LogKind.status, body=f"(unreadable log entry {entry_id})")
            out.append((entry_id, entry))
        return out

    def _newest(self, job_id: str) -> StreamRow | None:
        try:
            rows = range_rows(self.r.xrevrange(self.key(job_id), count=1))
        except _BLIPS as e:
            raise _unavailable(e) from e
        return rows[0] if rows else None

    def last_id(self, job_id: str) -> str:
        """The id of the newest entry, "0-0" when there is none."""
        row = self._newest(job_id)
        return _s(row[0]) if row else "0-0"

    def last_entry(self, job_id: str) -> LogEntry | None:
        """The newest entry, None when the stream is empty or gone."""
        row = self._newest(job_id)
        return LogEntry.from_json(row[1][FIELD]) if row else None

    def follow(self, job_id: str, after: str = "0", idle: float | None = None,
               on_quiet: Callable[[], None] | None = None) -> Iterator[LogEntry]:
        """Every entry after `after` ("$": only new ones), live; returns after the end entry, or
        silently after `idle` seconds without a new entry. `on_quiet()` is called after every
        QUIET_EVERY seconds without a new entry (a waiting job's client shows its place in the queue).

        A connection blip is survived: it reads again from the last id it yielded (nothing twice,
        nothing skipped), giving up with ServiceUnavailable after `retry_for` seconds without Redis."""
        last = self.last_id(job_id) if after == "$" else after
        quiet_since = time.monotonic()

        def without_redis(state: RetryCallState) -> None:
            nonlocal quiet_since
            quiet_since += state.upcoming_sleep  # time without Redis is not idle time of the job

        while True:
            wait = QUIET_EVERY if on_quiet is not None else 5.0
            if idle is not None:
                wait = min(wait, idle - (time.monotonic() - quiet_since))
                if wait <= 0:
                    return
            retrying = backoff(self.retry_for, BLIP_FIRST_WAIT, BLIP_MAX_WAIT, retry_on=_BLIPS,
                               before_sleep=without_redis)
            try:
                batch = retrying(self._read, job_id, last, block=max(wait, 0.001))
            except _BLIPS as e:
                raise _unavailable(e, f"lost the connection to Redis following job {job_id}") from e
            if batch:
                quiet_since = time.monotonic()
            elif on_quiet is not None:
                on_quiet()
            for entry_id, entry in batch:
                last = entry_id
                yield entry
                if entry.kind == LogKind.end:
                    return
