"""The SQS job queue under fair share: priority bands, one SQS queue each, picked in order.

SQS has no priorities and no way to look at a queue's waiting messages without taking them, so fair share
on SQS is decided when a job is queued, not when it is claimed (as on Redis, rai.backends.fair_queue):
- a job goes to band k of its queue: band 0 is the queue itself (`rai_amd64`), band k > 0 the queue
  `rai_amd64_p<k>`; k grows with its group's *standing*: the group's jobs already waiting on the queue plus
  its decayed usage counted in typical jobs (rai.domain.fairshare), k = min(BANDS - 1, floor(log2(1 + standing))).
  A user's first job goes to band 0, their 2nd and 3rd to band 1, 4th to 7th to band 2, the rest to band 3;
  a classmate's first job goes to band 0, ahead of all of those.
- a claim takes from the lowest band that has a job (short polls, then a long poll on band 0), so every
  band-0 job starts before any band-1 job, and so on; within a band, SQS's own rough submission order.
- nothing starves: band k is polled first once it has not been served for (2**k - 1) typical jobs' worth
  of waiting (`scheduler.age_weight`, as on Redis: a job that waits long enough beats anyone).
- delivery is SQS's, per band queue: at-least-once, visibility kept alive by raid, a dead node's job comes
  back when its visibility lapses, one dead-letter queue for all the bands of a queue.

Kept in Redis (prefix `rai:`), beside the usage ledger: `rai:fair:<queue>:sqs:waiting` a hash group -> jobs
waiting, `rai:fair:<queue>:sqs:band` a hash job id -> band (the order `rai status` shows), and
`rai:fair:<queue>:sqs:since` a hash band -> since when its jobs wait unserved (set by the first job
queued into an empty band, reset by each claim from it, dropped when a claim finds it empty).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from rai.backends.queue import ClaimedJob, QueueDepth
from rai.backends.sqs_queue import BANDS, DeadLetter, SQSClaimedJob, SQSJobQueue, band_base, band_queue
from rai.domain import fairshare
from rai.live.redis_keys import RedisKeys
from rai.live.usage import UsageLedger, group_of

WAIT_SLICE = 2  # seconds a claim long-polls band 0 before it looks at the other bands again
KEEP = 14 * 86400  # the Redis hashes expire once a queue has been idle this long


@dataclass
class FairSQSClaimedJob(SQSClaimedJob):
    band_queue: str = ""  # the SQS queue of the band the message was taken from


def band_of(standing: float) -> int:
    """The band of a job whose group stands at `standing` jobs (waiting, plus usage in typical jobs)."""
    return min(BANDS - 1, int(math.floor(math.log2(1 + max(0.0, standing)))))


def starve_after(band: int, typical: float, age_weight: float = fairshare.DEFAULT_AGE_WEIGHT) -> float:
    """Seconds band `band` may go unserved before a claim polls it first: the wait that offsets the
    (2**band - 1) typical jobs of usage separating it from band 0."""
    return (2 ** band - 1) * typical / max(age_weight, 1e-9)


class FairSQSJobQueue(SQSJobQueue):
    """The JobQueue port on SQS, fair share through priority bands (see the module's text)."""

    def __init__(self, cfg, ledger: UsageLedger, redis_client, age_weight: float = fairshare.DEFAULT_AGE_WEIGHT,
                 credentials=None, client=None):
        super().__init__(cfg, credentials=credentials, client=client)
        self.ledger = ledger
        self.r = redis_client
        self.age_weight = age_weight
        self.prefix = ledger.prefix
        self.keys = RedisKeys(self.prefix)

    # --- names
    def band_queue(self, queue: str, band: int) -> str:
        return band_queue(queue, band)

    def _is_band_queue(self, name: str) -> bool:
        return band_base(name) != name

    def _key(self, queue: str, what: str) -> str:
        return self.keys.fair_sqs(queue, what)

    def ensure_queue(self, queue: str) -> str:
        url = super().ensure_queue(queue)
        if not self._is_band_queue(queue):
            for band in range(1, BANDS):
                super().ensure_queue(self.band_queue(queue, band))
        return url

    # --- the port
    def enqueue(self, queue: str, body: str) -> str:
        group, _weight = group_of(body, self.ledger.by)
        waiting = int(self.r.hget(self._key(queue, "waiting"), group) or 0)
        usage = self.ledger.usage([group]).get(group, 0.0)
        band = band_of(waiting + usage / self.ledger.typical(queue))
        message_id = super().enqueue(self.band_queue(queue, band), body)
        job_id = _job_id(body)
        pipe = self.r.pipeline(transaction=False)
        pipe.hincrby(self._key(queue, "waiting"), group, 1)
        pipe.expire(self._key(queue, "waiting"), KEEP)
        if job_id:
            pipe.hset(self._key(queue, "band"), job_id, band)
            pipe.expire(self._key(queue, "band"), KEEP)
        pipe.hsetnx(self._key(queue, "since"), band, time.time())
        pipe.expire(self._key(queue, "since"), KEEP)
        pipe.execute()
        return message_id

    def claim(self, queue: str, consumer: str, block: float = 5.0) -> SQSClaimedJob | None:
        deadline = time.monotonic() + max(0.0, block or 0.0)
        typical = self.ledger.typical(queue)  # one read per claim: it moves only as jobs end
        while True:
            for band in self._poll_order(queue, typical):
                job = self._claim_band(queue, band, consumer, typical, wait=0)
                if job is not None:
                    return job
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            job = self._claim_band(queue, 0, consumer, typical, wait=min(left, WAIT_SLICE))
            if job is not None:
                return job
            if deadline - time.monotonic() <= 0:
                return None

    def _poll_order(self, queue: str, typical: float) -> list[int]:
        """Bands lowest first, except a band whose jobs waited unserved too long: it goes first."""
        since = {int(k): float(v) for k, v in self.r.hgetall(self._key(queue, "since")).items()}
        now = time.time()
        order = list(range(BANDS))
        for band in range(BANDS - 1, 0, -1):
            if band in since and now - since[band] > starve_after(band, typical, self.age_weight):
                return [band] + [b for b in order if b != band]
        return order

    def _claim_band(self, queue: str, band: int, consumer: str, typical: float, wait: float) -> SQSClaimedJob | None:
        name = self.band_queue(queue, band)
        got = super().claim(name, consumer, block=wait)
        if got is None:
            self.r.hdel(self._key(queue, "since"), band)
            return None
        job = FairSQSClaimedJob(queue=queue, message_id=got.message_id, body=got.body, attempts=got.attempts,
                                receipt_handle=got.receipt_handle, band_queue=name)
        who, weight = group_of(job.body, self.ledger.by)
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(self._key(queue, "since"), band, time.time())
        if job.attempts == 1:
            pipe.hincrby(self._key(queue, "waiting"), who, -1)
            job_id = _job_id(job.body)
            if job_id:
                pipe.hdel(self._key(queue, "band"), job_id)
        left = pipe.execute()[1] if job.attempts == 1 else 0
        if left < 0:
            self.r.hset(self._key(queue, "waiting"), who, 0)  # a count that drifted (a lost message) heals
        job.charged = weight * typical  # counted now, corrected at its end (raid)
        self.ledger.charge(who, job.charged)
        return job

    def keep_alive(self, job: ClaimedJob, consumer: str) -> bool:
        return super().keep_alive(_on_band(job), consumer)

    def ack(self, job: ClaimedJob) -> None:
        super().ack(_on_band(job))

    def release(self, job: ClaimedJob) -> None:
        super().release(_on_band(job))

    def dead_letter(self, job: ClaimedJob, reason: str) -> None:
        super().dead_letter(_on_band(job), reason)

    def depth(self, queue: str) -> QueueDepth:
        depth = super().depth(queue)
        for band in range(1, BANDS):
            more = super().depth(self.band_queue(queue, band))
            depth.waiting += more.waiting
            depth.running += more.running
        return depth

    def dead_letters(self, queue: str, limit: int = 10) -> list[DeadLetter]:
        out = super().dead_letters(queue, limit)
        for d in out:
            d.queue = band_base(d.queue)
        return out

    def fair_order(self, queue: str) -> list[str]:
        """The ids of the jobs waiting on `queue` (their records' `rai:waiting:<queue>`, by submission time) in
        the order claims take them: by band, then submission."""
        raw = self.r.zrange(self.keys.waiting(queue), 0, -1)
        waiting_ids = [j.decode() if isinstance(j, bytes) else j for j in raw]
        if not waiting_ids:
            return []
        bands = self.r.hmget(self._key(queue, "band"), waiting_ids)
        rank = {j: (int(b) if b is not None else 0, i) for i, (j, b) in enumerate(zip(waiting_ids, bands, strict=True))}
        return sorted(waiting_ids, key=rank.__getitem__)


def _on_band(job: ClaimedJob) -> ClaimedJob:
    """The delivery as the SQS queue it came from knows it (its band's queue)."""
    if not isinstance(job, FairSQSClaimedJob) or not job.band_queue or job.band_queue == job.queue:
        return job
    return SQSClaimedJob(queue=job.band_queue, message_id=job.message_id, body=job.body, attempts=job.attempts,
                         charged=job.charged, receipt_handle=job.receipt_handle)


def _job_id(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return str(data.get("job_id")) if isinstance(data, dict) and data.get("job_id") else None
