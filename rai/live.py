"""Live state in Redis that clients, daemons and the console share.

- `rai:job:<id>`: the job's current record (what `rai status` reads; the database keeps the history)
- `rai:cancel:<id>`: a signed cancel request, honoured whether the job waits or runs
- `rai:node:<name>`: a node's heartbeat, expiring; `rai:nodes` remembers every node ever seen, so a
  node whose heartbeat expired shows as lost
- `rai:drain:<name>`: set while an operator drains the node
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import redis

from rai.errors import ServiceUnavailable
from rai.models import CancelRequest, JobRecord, NodeHeartbeat, utcnow

PREFIX = "rai:"


@dataclass
class NodeView:
    name: str
    heartbeat: NodeHeartbeat | None  # None: seen before, heartbeat expired
    draining: bool

    @property
    def state(self) -> str:
        if self.heartbeat is None:
            return "lost"
        return "draining" if self.draining else "active"


class LiveBoard:
    def __init__(self, client: redis.Redis, prefix: str = PREFIX):
        self.r = client
        self.p = prefix

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except redis.exceptions.ConnectionError as e:
            raise ServiceUnavailable(f"Redis does not answer: {e}", hint="check pubsub.url in the config") from None

    # jobs
    def put_job(self, record: JobRecord, ttl: float | None = None) -> None:
        key = f"{self.p}job:{record.job_id}"
        pipe = self.r.pipeline()
        pipe.set(key, record.to_json())
        if ttl:
            pipe.expire(key, int(ttl))
        self._call(pipe.execute)

    def get_job(self, job_id: str) -> JobRecord | None:
        raw = self._call(self.r.get, f"{self.p}job:{job_id}")
        return JobRecord.from_json(raw) if raw else None

    # cancel
    def request_cancel(self, req: CancelRequest, ttl: float = 7 * 86400) -> None:
        self._call(self.r.set, f"{self.p}cancel:{req.job_id}", req.to_json(), ex=int(ttl))

    def cancel_request(self, job_id: str) -> CancelRequest | None:
        raw = self._call(self.r.get, f"{self.p}cancel:{job_id}")
        return CancelRequest.from_json(raw) if raw else None

    # nodes
    def beat(self, hb: NodeHeartbeat, ttl: float) -> None:
        pipe = self.r.pipeline()
        pipe.set(f"{self.p}node:{hb.node}", hb.to_json(), px=int(ttl * 1000))
        pipe.sadd(f"{self.p}nodes", hb.node)
        self._call(pipe.execute)

    def node_gone(self, node: str) -> None:
        """A node that stopped cleanly: forget it rather than show it lost."""
        pipe = self.r.pipeline()
        pipe.delete(f"{self.p}node:{node}")
        pipe.srem(f"{self.p}nodes", node)
        self._call(pipe.execute)

    def forget_node(self, node: str) -> None:
        self.node_gone(node)
        self._call(self.r.delete, f"{self.p}drain:{node}")

    def set_draining(self, node: str, draining: bool) -> None:
        if draining:
            self._call(self.r.set, f"{self.p}drain:{node}", utcnow().isoformat())
        else:
            self._call(self.r.delete, f"{self.p}drain:{node}")

    def is_draining(self, node: str) -> bool:
        return bool(self._call(self.r.exists, f"{self.p}drain:{node}"))

    def nodes(self) -> list[NodeView]:
        names = sorted(n.decode() for n in self._call(self.r.smembers, f"{self.p}nodes"))
        if not names:
            return []
        pipe = self.r.pipeline()
        for n in names:
            pipe.get(f"{self.p}node:{n}")
            pipe.exists(f"{self.p}drain:{n}")
        raw = self._call(pipe.execute)
        views = []
        for i, n in enumerate(names):
            hb = NodeHeartbeat.from_json(raw[2 * i]) if raw[2 * i] else None
            views.append(NodeView(n, hb, bool(raw[2 * i + 1])))
        return views

    # queue-depth history for the console's sparkline
    def record_depth(self, queue: str, waiting: int, at: datetime | None = None, keep: int = 720) -> None:
        at = at or utcnow()
        key = f"{self.p}depth:{queue}"
        pipe = self.r.pipeline()
        pipe.rpush(key, json.dumps([at.timestamp(), waiting]))
        pipe.ltrim(key, -keep, -1)
        self._call(pipe.execute)

    def depth_history(self, queue: str) -> list[tuple[float, int]]:
        raw = self._call(self.r.lrange, f"{self.p}depth:{queue}", 0, -1)
        return [tuple(json.loads(x)) for x in raw]
