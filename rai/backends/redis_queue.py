"""The embedded job queue: a Redis Stream per queue with one consumer group.

Keys (prefix `rai:`):

- `rai:queue:<name>`: the queue's stream; each entry has one field `body` (the JobRequest JSON).
  Entries stay until acked (XACK + XDEL), so the stream holds only waiting and running jobs.
- consumer group `raid` on it, created on demand from id 0 (so jobs enqueued before any worker
  ever claimed are delivered too); every raid worker slot is one consumer.
- `rai:queues`: a set of the queue names ever used, so `queues()` needs no SCAN.

Delivery is at least once. A worker keeps a claimed job alive (XCLAIM JUSTID resets its idle time);
a job idle longer than `visibility_timeout` belongs to a dead worker and the next `claim` anywhere
takes it (XAUTOCLAIM), counting one more attempt (the stream's delivery count).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import redis

from rai.backends.queue import ClaimedJob, QueueDepth
from rai.errors import ServiceUnavailable
from rai.live.redis_keys import PREFIX, RedisKeys

log = logging.getLogger("rai.queue")

GROUP = "raid"
FIELD = b"body"
RELEASED_IDLE_MS = 10**12  # the idle time a released job gets: older than any visibility timeout

# Reset the idle time of a job only while `consumer` still holds it: a worker that was too slow and
# lost its job to another must not take it back. Returns 1 when kept, 0 when not held (any more).
_KEEP_ALIVE = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
"""

# Make a held job claimable at once: same owner, idle "forever", delivery count unchanged.
_RELEASE = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], p[1][2], 0, ARGV[2], 'IDLE', ARGV[3], 'JUSTID')
return 1
"""


_P = ParamSpec("_P")
_R = TypeVar("_R")
_Q = TypeVar("_Q")


def _service(method: Callable[Concatenate[_Q, _P], _R]) -> Callable[Concatenate[_Q, _P], _R]:
    """Redis not answering (after the client's own retries) is a ServiceUnavailable, not a traceback."""

    @functools.wraps(method)
    def call(self: _Q, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise ServiceUnavailable(f"the job queue (Redis) does not answer: {e}",
                                     hint="check that Redis (pubsub.url) runs and is reachable") from e

    return call


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_ms(entry_id) -> int:
    return int(_s(entry_id).split("-", 1)[0])


class RedisJobQueue:
    """JobQueue on Redis Streams; see the module docstring for the keys."""

    def __init__(self, redis_client: redis.Redis, visibility_timeout: float = 60.0, prefix: str = PREFIX):
        self.r = redis_client
        self.visibility_timeout = visibility_timeout
        self.prefix = prefix
        self.keys = RedisKeys(prefix)
        self._groups: set[str] = set()  # queues whose group this instance knows exists
        self._keep_alive = self.r.register_script(_KEEP_ALIVE)
        self._release = self.r.register_script(_RELEASE)

    # keys
    def key(self, queue: str) -> str:
        return self.keys.queue(queue)

    @property
    def names_key(self) -> str:
        return self.keys.queues()

    @property
    def _visibility_ms(self) -> int:
        return max(1, int(self.visibility_timeout * 1000))

    def _ensure_group(self, queue: str, force: bool = False) -> None:
        if queue in self._groups and not force:
            return
        try:
            self.r.xgroup_create(self.key(queue), GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self.r.sadd(self.names_key, queue)
        self._groups.add(queue)

    def _with_group(self, queue: str, fn):
        """Run `fn`; when the group is gone (stream deleted, Redis wiped), create it and run again."""
        self._ensure_group(queue)
        try:
            return fn()
        except redis.exceptions.ResponseError as e:
            if "NOGROUP" not in str(e) and "UNBLOCKED" not in str(e):
                raise
        self._ensure_group(queue, force=True)
        return fn()

    # the port
    @_service
    def enqueue(self, queue: str, body: str) -> str:
        pipe = self.r.pipeline(transaction=False)
        pipe.xadd(self.key(queue), {FIELD: body.encode()})
        pipe.sadd(self.names_key, queue)
        message_id, _ = pipe.execute()
        return _s(message_id)

    @_service
    def claim(self, queue: str, consumer: str, block: float = 5.0) -> ClaimedJob | None:
        key = self.key(queue)
        job = self._with_group(queue, lambda: self._reclaim(queue, consumer))
        if job is not None:
            return job
        block_ms = int(block * 1000) if block and block > 0 else None
        if block_ms == 0:
            block_ms = 1
        reply = self._with_group(
            queue, lambda: self.r.xreadgroup(GROUP, consumer, {key: ">"}, count=1, block=block_ms)
        )
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                return self._job(queue, entry_id, fields, attempts=1)
        return None

    def _reclaim(self, queue: str, consumer: str) -> ClaimedJob | None:
        """The first job whose worker stopped keeping it alive, now held by `consumer`."""
        key = self.key(queue)
        start = "0-0"
        while True:
            reply = self.r.xautoclaim(key, GROUP, consumer, self._visibility_ms, start_id=start, count=1)
            start, claimed = _s(reply[0]), reply[1]
            for entry_id, fields in claimed:
                if fields is None:  # deleted meanwhile (Redis < 7 reports these)
                    continue
                return self._job(queue, entry_id, fields, attempts=self._deliveries(key, entry_id))
            if start == "0-0":
                return None

    def _deliveries(self, key: str, entry_id) -> int:
        rows = self.r.xpending_range(key, GROUP, min=entry_id, max=entry_id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1

    @staticmethod
    def _job(queue: str, entry_id, fields: dict, attempts: int) -> ClaimedJob:
        body = fields.get(FIELD, fields.get(FIELD.decode(), b""))
        return ClaimedJob(queue=queue, message_id=_s(entry_id), body=_s(body), attempts=attempts)

    @_service
    def keep_alive(self, job: ClaimedJob, consumer: str) -> bool:
        """Reset the job's idle time; False when `consumer` no longer holds it (acked, or taken by
        another worker after the visibility timeout): the caller should stop working on it."""
        kept = self._keep_alive(keys=[self.key(job.queue)], args=[GROUP, job.message_id, consumer])
        if not kept:
            log.warning("job message %s on %s is no longer held by %s", job.message_id, job.queue, consumer)
        return bool(kept)

    @_service
    def ack(self, job: ClaimedJob) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.xack(self.key(job.queue), GROUP, job.message_id)
        pipe.xdel(self.key(job.queue), job.message_id)
        pipe.execute()

    @_service
    def release(self, job: ClaimedJob) -> None:
        self._release(keys=[self.key(job.queue)], args=[GROUP, job.message_id, RELEASED_IDLE_MS])

    @_service
    def depth(self, queue: str) -> QueueDepth:
        key = self.key(queue)
        pipe = self.r.pipeline(transaction=False)
        pipe.exists(key)
        pipe.xlen(key)
        pipe.time()
        exists, length, (secs, usecs) = pipe.execute()
        now_ms = secs * 1000 + usecs // 1000
        if not exists:
            return QueueDepth(queue, waiting=0, running=0, oldest_waiting_age=None)
        group = next((g for g in self.r.xinfo_groups(key) if _s(g["name"]) == GROUP), None)
        if group is None:  # no worker ever claimed: every entry waits
            first = self.r.xrange(key, count=1)
            oldest = _id_ms(first[0][0]) if first else None
            return QueueDepth(queue, waiting=length, running=0, oldest_waiting_age=self._age(now_ms, oldest))
        pending = int(group["pending"])
        lag = group.get("lag")
        new = int(lag) if lag is not None else max(0, length - pending)
        # Jobs whose worker stopped keeping them alive wait too: the next claim takes them.
        stale = self.r.xpending_range(key, GROUP, min="-", max="+", count=max(pending, 1),
                                      idle=self._visibility_ms) if pending else []
        oldest = min((_id_ms(row["message_id"]) for row in stale), default=None)
        if new:
            nxt = self.r.xrange(key, min="(" + _s(group["last-delivered-id"]), count=1)
            if nxt:
                oldest = _id_ms(nxt[0][0]) if oldest is None else min(oldest, _id_ms(nxt[0][0]))
        return QueueDepth(queue, waiting=new + len(stale), running=pending - len(stale),
                          oldest_waiting_age=self._age(now_ms, oldest))

    @staticmethod
    def _age(now_ms: int, oldest_ms: int | None) -> float | None:
        return None if oldest_ms is None else max(0.0, (now_ms - oldest_ms) / 1000)

    @_service
    def queues(self) -> list[str]:
        names = sorted(_s(n) for n in self.r.smembers(self.names_key))
        if not names:  # a Redis filled by something that kept no set: look once, remember
            pattern = self.key("*")
            names = sorted(_s(k)[len(self.key("")):] for k in self.r.scan_iter(match=pattern, _type="STREAM"))
            if names:
                self.r.sadd(self.names_key, *names)
            return names
        pipe = self.r.pipeline(transaction=False)
        for n in names:
            pipe.exists(self.key(n))
        return [n for n, alive in zip(names, pipe.execute(), strict=True) if alive]
