"""Live state in Redis that clients, daemons and the console share.

- `rai:job:<id>`: the job's current record (what `rai status` reads; the database keeps the history)
- `rai:jobs`: every live record's id, scored by submission time, so the console reads the newest
  records without scanning the keyspace; ids whose record expired are pruned as they are met and,
  oldest first, on every write, so the index never outgrows the records
- `rai:waiting:<queue>`: the ids of the queue's jobs that wait (record state queued), scored by
  submission time, kept by `put_job`: how many wait ahead of a job (`rai status`, `rai submit`)
- `rai:cancel:<id>`: a signed cancel request, honoured whether the job waits or runs
- `rai:node:<name>`: a node's heartbeat, expiring; `rai:nodes` remembers every node ever seen, so a
  node whose heartbeat expired shows as lost
- `rai:drain:<name>`: set while an operator drains the node
- `rai:slots:<user>`: the user's jobs running now, each scored by when its lease ends; every node
  admits a job against it atomically, so a role's `jobs_at_once` holds across all the nodes at once
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import redis

from rai.domain.models import CancelRequest, JobRecord, JobState, NodeHeartbeat, utcnow
from rai.errors import ServiceUnavailable
from rai.live.redis_keys import PREFIX, RedisKeys

log = logging.getLogger(__name__)
PRUNE_BATCH = 20  # oldest index entries checked for an expired record on every write

# KEYS[1] the user's slots; ARGV: job id, limit, now, lease end, key TTL. Returns -1 when the job holds
# a slot (already did, or took a free one), else how many of the user's jobs hold one.
_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return -1
end
return redis.call('ZCARD', KEYS[1])
"""


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class NodeView:
    name: str
    heartbeat: NodeHeartbeat | None  # None: seen before, heartbeat expired
    draining: bool

    @property
    def state(self) -> str:
        if self.heartbeat is None:
            return "lost"
        if self.draining:
            return "draining"
        return "low disk" if self.heartbeat.refusing else "active"


@dataclass
class LiveNode:
    """A node whose heartbeat is current."""

    name: str
    heartbeat: NodeHeartbeat
    draining: bool


class LiveBoard:
    def __init__(self, client: redis.Redis, prefix: str = PREFIX):
        self.r = client
        self.p = prefix
        self.keys = RedisKeys(prefix)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except redis.exceptions.ConnectionError as e:
            raise ServiceUnavailable(f"Redis does not answer: {e}", hint="check pubsub.url in the config") from None

    # jobs
    def put_job(self, record: JobRecord, ttl: float | None = None) -> None:
        key = self.keys.job(record.job_id)
        at = (record.submitted_at or utcnow()).timestamp()
        pipe = self.r.pipeline()
        pipe.set(key, record.to_json())
        pipe.zadd(self.keys.jobs(), {record.job_id: at})
        if record.queue:
            if record.state == JobState.queued:
                pipe.zadd(self.keys.waiting(record.queue), {record.job_id: at})
            else:
                pipe.zrem(self.keys.waiting(record.queue), record.job_id)
        if ttl:
            pipe.expire(key, int(ttl))
        pipe.zrange(self.keys.jobs(), 0, PRUNE_BATCH - 1)
        oldest = self._call(pipe.execute)[-1]
        self._prune([i.decode() for i in oldest])

    def create_job(self, record: JobRecord, ttl: float) -> bool:
        """Put a new job's record; False (and nothing written) when a job with its id exists already."""
        created = self._call(self.r.set, self.keys.job(record.job_id), record.to_json(), nx=True, ex=int(ttl))
        if created:
            self.put_job(record, ttl=ttl)
        return bool(created)

    def _prune(self, ids: list[str]) -> None:
        """Drop from the index those of `ids` whose record has expired."""
        if not ids:
            return
        pipe = self.r.pipeline()
        for i in ids:
            pipe.exists(self.keys.job(i))
        gone = [i for i, there in zip(ids, self._call(pipe.execute), strict=True) if not there]
        if gone:
            self._call(self.r.zrem, self.keys.jobs(), *gone)

    def recent_jobs(self, limit: int) -> list[JobRecord]:
        """The newest `limit` live records, newest first; ids whose record has expired are dropped."""
        index = self.keys.jobs()
        ids = [i.decode() for i in self._call(self.r.zrevrange, index, 0, limit - 1)] if limit > 0 else []
        if not ids:
            return []
        raw = self._call(self.r.mget, [self.keys.job(i) for i in ids])
        out, gone = [], []
        for job_id, data in zip(ids, raw, strict=True):
            if not data:
                gone.append(job_id)
                continue
            try:
                out.append(JobRecord.from_json(data))
            except ValueError:
                log.warning("skipping an unreadable live job record %s", job_id)
        if gone:
            self._call(self.r.zrem, index, *gone)
        return out

    def waiting_position(self, queue: str, job_id: str) -> tuple[int, int] | None:
        """(jobs waiting ahead of `job_id` by submission time, jobs waiting on `queue`), or None when the job
        does not wait there."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zrank(self.keys.waiting(queue), job_id)
        pipe.zcard(self.keys.waiting(queue))
        rank, total = self._call(pipe.execute)
        return None if rank is None else (int(rank), int(total))

    def waiting_ids(self, queue: str, limit: int | None = None) -> list[str]:
        """The ids of the jobs waiting on `queue` by their records, oldest submission first (the first `limit`)."""
        raw = self._call(self.r.zrange, self.keys.waiting(queue), 0, -1 if limit is None else limit - 1)
        return [_s(job_id) for job_id in raw]

    def waiting(self, queue: str) -> tuple[int, float | None]:
        """(jobs waiting on `queue` by their records, unix time the oldest of them was submitted or None)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zcard(self.keys.waiting(queue))
        pipe.zrange(self.keys.waiting(queue), 0, 0, withscores=True)
        total, first = self._call(pipe.execute)
        return int(total), (float(first[0][1]) if first else None)

    def get_job(self, job_id: str) -> JobRecord | None:
        raw = self._call(self.r.get, self.keys.job(job_id))
        return JobRecord.from_json(raw) if raw else None

    # a user's running jobs, across every node (a role's jobs_at_once)
    def take_slot(self, username: str, job_id: str, limit: int, lease: float) -> int | None:
        """Admit `job_id` as one of at most `limit` jobs of `username` running at once, for `lease` seconds
        (renew it while the job runs). None when admitted, else how many of the user's jobs hold slots.
        A node that dies holding a slot loses it when the lease ends."""
        now = time.time()
        held = self._call(self.r.eval, _TAKE_SLOT, 1, self.keys.slots(username), job_id, limit, now,
                          now + lease, int(lease) + 60)
        return None if int(held) < 0 else int(held)

    def renew_slot(self, username: str, job_id: str, lease: float) -> None:
        key = self.keys.slots(username)
        pipe = self.r.pipeline()
        pipe.zadd(key, {job_id: time.time() + lease}, xx=True)
        pipe.expire(key, int(lease) + 60)
        self._call(pipe.execute)

    def free_slot(self, username: str, job_id: str) -> None:
        self._call(self.r.zrem, self.keys.slots(username), job_id)

    # cancel
    def request_cancel(self, req: CancelRequest, ttl: float = 7 * 86400) -> None:
        self._call(self.r.set, self.keys.cancel(req.job_id), req.to_json(), ex=int(ttl))

    def cancel_request(self, job_id: str) -> CancelRequest | None:
        raw = self._call(self.r.get, self.keys.cancel(job_id))
        return CancelRequest.from_json(raw) if raw else None

    # nodes
    def beat(self, hb: NodeHeartbeat, ttl: float) -> None:
        pipe = self.r.pipeline()
        pipe.set(self.keys.node(hb.node), hb.to_json(), px=int(ttl * 1000))
        pipe.sadd(self.keys.nodes(), hb.node)
        self._call(pipe.execute)

    def node_gone(self, node: str) -> None:
        """A node that stopped cleanly: forget it rather than show it lost."""
        pipe = self.r.pipeline()
        pipe.delete(self.keys.node(node))
        pipe.srem(self.keys.nodes(), node)
        self._call(pipe.execute)

    def forget_node(self, node: str) -> None:
        self.node_gone(node)
        self._call(self.r.delete, self.keys.drain(node))

    def set_draining(self, node: str, draining: bool) -> None:
        if draining:
            self._call(self.r.set, self.keys.drain(node), utcnow().isoformat())
        else:
            self._call(self.r.delete, self.keys.drain(node))

    def is_draining(self, node: str) -> bool:
        return bool(self._call(self.r.exists, self.keys.drain(node)))

    def nodes(self) -> list[NodeView]:
        names = sorted(n.decode() for n in self._call(self.r.smembers, self.keys.nodes()))
        if not names:
            return []
        pipe = self.r.pipeline()
        for n in names:
            pipe.get(self.keys.node(n))
            pipe.exists(self.keys.drain(n))
        raw = self._call(pipe.execute)
        views = []
        for i, n in enumerate(names):
            hb = NodeHeartbeat.from_json(raw[2 * i]) if raw[2 * i] else None
            views.append(NodeView(n, hb, bool(raw[2 * i + 1])))
        return views

    def serving(self, queue: str) -> list[LiveNode]:
        """The nodes alive on `queue` now (draining ones included)."""
        return [LiveNode(n.name, n.heartbeat, n.draining) for n in self.nodes()
                if n.heartbeat is not None and n.heartbeat.queue == queue]

    # queue-depth history for the console's sparkline
    def take_depth_turn(self, queue: str, bucket: int, ttl: float) -> bool:
        """True for the one caller (of all nodes) that records `queue`'s depth for time bucket `bucket`."""
        return bool(self._call(self.r.set, self.keys.depth_lock(queue, bucket), 1, nx=True, ex=max(1, int(ttl))))

    def record_depth(self, queue: str, waiting: int, at: datetime | None = None, keep: int = 720) -> None:
        at = at or utcnow()
        key = self.keys.depth(queue)
        pipe = self.r.pipeline()
        pipe.rpush(key, json.dumps([at.timestamp(), waiting]))
        pipe.ltrim(key, -keep, -1)
        self._call(pipe.execute)

    def depth_history(self, queue: str) -> list[tuple[float, int]]:
        raw = self._call(self.r.lrange, self.keys.depth(queue), 0, -1)
        return [tuple(json.loads(x)) for x in raw]
