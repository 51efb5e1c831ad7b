"""The Redis job queue under fair share: waiting jobs wait per user (or team); a claim takes the head of the
group with the lowest priority (rai.domain.fairshare), then delivers it through the Redis Stream of
rai.backends.redis_queue, so claim/keep-alive/ack/release/reclaim and at-least-once are unchanged.

Keys (prefix `rai:`), beside the stream's:
- `rai:fair:<queue>:groups`: a set of the groups with waiting jobs;
- `rai:fair:<queue>:g:<group>`: the group's waiting jobs, oldest first, JSON {job_id, at, body};
- `rai:fair:<queue>:wake`: a short list a claim blocks on (BLPOP), pushed by each enqueue.

The pick reads the heads and the usage, then one Lua script moves the picked head into the stream and
reads it for the claiming worker, atomically: two nodes never take the same job, and a job is in a list
or in the stream, never neither. Two nodes picking at the same instant may both take from the same group
(each its own job); the next claims see the charges and even it out.
"""

from __future__ import annotations

import json
import time
import uuid

from rai.backends.queue import ClaimedJob, QueueDepth
from rai.backends.redis_queue import FIELD, GROUP, RedisJobQueue, _s, _service
from rai.domain import fairshare
from rai.live.redis_keys import PREFIX
from rai.live.usage import UsageLedger, group_of

WAKE_KEEP = 64

# Undelivered stream entries first (enqueued FIFO before fair share was on), else the picked group's head.
_TAKE = """
local function deliver()
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
  if not r then return false end
  local e = r[1][2][1]
  return {e[1], e[2][2]}
end
local got = deliver()
if got then return got end
if ARGV[3] == '' then return false end
local item = redis.call('LPOP', KEYS[2])
if redis.call('LLEN', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
if not item then return false end
redis.call('XADD', KEYS[1], '*', 'body', cjson.decode(item)['body'])
return deliver()
"""


class FairRedisJobQueue(RedisJobQueue):
    """JobQueue on Redis whose claim takes the waiting job of the group with the least recent usage."""

    def __init__(self, redis_client, ledger: UsageLedger, visibility_timeout: float = 60.0, prefix: str = PREFIX,
                 age_weight: float = fairshare.DEFAULT_AGE_WEIGHT):
        super().__init__(redis_client, visibility_timeout=visibility_timeout, prefix=prefix)
        self.ledger = ledger
        self.age_weight = age_weight
        self._take = self.r.register_script(_TAKE)

    def _groups_key(self, queue: str) -> str:
        return self.keys.fair_groups(queue)

    def _group_key(self, queue: str, group: str) -> str:
        return self.keys.fair_group(queue, group)

    def _wake_key(self, queue: str) -> str:
        return self.keys.fair_wake(queue)

    @_service
    def enqueue(self, queue: str, body: str) -> str:
        # no consumer group needed here: a claim makes it (rai-server, which enqueues, may not: its Redis ACL)
        group, _weight = group_of(body, self.ledger.by)
        job_id, at = _job_id_and_time(body)
        message_id = uuid.uuid4().hex
        item = json.dumps({"job_id": job_id or message_id, "at": at, "body": body})
        pipe = self.r.pipeline(transaction=True)
        pipe.rpush(self._group_key(queue, group), item)
        pipe.sadd(self._groups_key(queue), group)
        pipe.sadd(self.names_key, queue)
        pipe.lpush(self._wake_key(queue), 1)
        pipe.ltrim(self._wake_key(queue), 0, WAKE_KEEP - 1)
        pipe.execute()
        return message_id

    @_service
    def claim(self, queue: str, consumer: str, block: float = 5.0) -> ClaimedJob | None:
        deadline = time.monotonic() + max(0.0, block or 0.0)
        while True:
            job = self._with_group(queue, lambda: self._reclaim(queue, consumer))
            if job is None:
                job = self._with_group(queue, lambda: self._pick(queue, consumer))
            if job is not None:
                return job
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.r.blpop([self._wake_key(queue)], timeout=min(left, 1.0))

    def heads(self, queue: str, now: float | None = None) -> list[fairshare.Head]:
        """The oldest waiting job of each group on `queue`, with the group's usage now."""
        now = time.time() if now is None else now
        groups = sorted(_s(g) for g in self.r.smembers(self._groups_key(queue)))
        if not groups:
            return []
        pipe = self.r.pipeline(transaction=False)
        for g in groups:
            pipe.lindex(self._group_key(queue, g), 0)
        firsts = pipe.execute()
        usage = self.ledger.usage(groups, now)
        return [fairshare.Head(g, usage.get(g, 0.0), max(0.0, now - json.loads(raw)["at"]))
                for g, raw in zip(groups, firsts, strict=True) if raw]

    def _pick(self, queue: str, consumer: str) -> ClaimedJob | None:
        group = fairshare.pick(self.heads(queue), self.age_weight) or ""
        reply = self._take(keys=[self.key(queue), self._group_key(queue, group or "-"), self._groups_key(queue)],
                           args=[GROUP, consumer, group])
        if not reply:
            return None
        entry_id, body = reply
        job = self._job(queue, entry_id, {FIELD: body}, attempts=1)
        who, weight = group_of(job.body, self.ledger.by)
        job.charged = weight * self.ledger.typical(queue)  # counted now, corrected at its end (raid)
        self.ledger.charge(who, job.charged)
        return job

    def waiting_jobs(self, queue: str) -> dict[str, list[tuple[str, float]]]:
        """Each group's waiting jobs on `queue`, oldest first: (job id, seconds waited)."""
        now = time.time()
        groups = sorted(_s(g) for g in self.r.smembers(self._groups_key(queue)))
        pipe = self.r.pipeline(transaction=False)
        for g in groups:
            pipe.lrange(self._group_key(queue, g), 0, -1)
        out = {}
        for g, items in zip(groups, pipe.execute(), strict=True):
            jobs = [json.loads(i) for i in items]
            if jobs:
                out[g] = [(j["job_id"], max(0.0, now - j["at"])) for j in jobs]
        return out

    def fair_order(self, queue: str) -> list[str]:
        """The ids of the jobs waiting on `queue` in the order they would run under fair share."""
        waiting = self.waiting_jobs(queue)
        usage = self.ledger.usage(list(waiting)) if waiting else {}
        waits = {g: [w for _, w in js] for g, js in waiting.items()}
        return [waiting[g][i][0] for g, i in fairshare.order(waits, usage, self.ledger.typical(queue),
                                                              self.age_weight)]

    @_service
    def depth(self, queue: str) -> QueueDepth:
        depth = super().depth(queue)
        groups = [_s(g) for g in self.r.smembers(self._groups_key(queue))]
        if not groups:
            return depth
        pipe = self.r.pipeline(transaction=False)
        for g in groups:
            pipe.llen(self._group_key(queue, g))
            pipe.lindex(self._group_key(queue, g), 0)
        replies = pipe.execute()
        staged = sum(int(n) for n in replies[0::2])
        firsts = [json.loads(raw)["at"] for raw in replies[1::2] if raw]
        oldest = max(0.0, time.time() - min(firsts)) if firsts else None
        if depth.oldest_waiting_age is not None and oldest is not None:
            oldest = max(oldest, depth.oldest_waiting_age)
        depth.waiting += staged
        depth.oldest_waiting_age = oldest if oldest is not None else depth.oldest_waiting_age
        return depth


def _job_id_and_time(body: str) -> tuple[str | None, float]:
    """The job id and submission time (epoch seconds) of a JobRequest JSON; now when it has none."""
    from datetime import datetime

    try:
        data = json.loads(body)
        at = datetime.fromisoformat(str(data["submitted_at"]).replace("Z", "+00:00")).timestamp()
        return data.get("job_id"), min(at, time.time())
    except (ValueError, KeyError, TypeError):
        return None, time.time()
