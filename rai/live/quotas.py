"""Quotas: jobs a user may submit an hour, GPU-hours they may use a day (per role, a user's override first).

Keys (prefix `rai:`): `rai:quota:jobs:<user>` the user's submissions of the last hour (job id, scored by
time); `rai:quota:gpu:<user>` their ended GPU jobs of the last day (`<job id>:<GPU-seconds>`, scored by
their end). rai-server checks at submit (`over_quota`); raid records GPU time at a job's end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from rai.live.redis_keys import PREFIX, RedisKeys

HOUR, DAY = 3600.0, 86400.0


@dataclass
class Refused:
    message: str
    retry_after: float  # seconds until the quota frees up enough


class QuotaBook:
    def __init__(self, redis_client: redis.Redis, prefix: str = PREFIX):
        self.r = redis_client
        self.keys = RedisKeys(prefix)

    def over_quota(self, user: str, jobs_per_hour: int | None, gpu_hours_per_day: float | None,
                   now: float | None = None) -> Refused | None:
        """Why `user` may not submit now, with when they may again; None when within both quotas."""
        now = time.time() if now is None else now
        jobs_key, gpu_key = self.keys.quota_jobs(user), self.keys.quota_gpu(user)
        pipe = self.r.pipeline()
        pipe.zremrangebyscore(jobs_key, 0, now - HOUR)
        pipe.zrange(jobs_key, 0, -1, withscores=True)
        pipe.zremrangebyscore(gpu_key, 0, now - DAY)
        pipe.zrange(gpu_key, 0, -1, withscores=True)
        _, jobs, _, gpu = pipe.execute()
        if jobs_per_hour is not None and len(jobs) >= jobs_per_hour:
            frees = jobs[len(jobs) - jobs_per_hour][1] + HOUR  # when enough of them are an hour old
            return Refused(f"over your quota of {jobs_per_hour} jobs an hour", max(1.0, frees - now))
        if gpu_hours_per_day is not None:
            used = [(float(m.decode().rsplit(":", 1)[1]), at) for m, at in gpu]
            total, limit = sum(s for s, _ in used), gpu_hours_per_day * 3600
            if total >= limit:
                for seconds, at in used:  # oldest first: when enough of the day's GPU time has aged out
                    total -= seconds
                    if total < limit:
                        return Refused(f"over your quota of {gpu_hours_per_day:g} GPU-hours a day",
                                       max(1.0, at + DAY - now))
        return None

    def left(self, user: str, jobs_per_hour: int | None, gpu_hours_per_day: float | None,
             now: float | None = None) -> tuple[int | None, float | None]:
        """(submissions, GPU-hours) `user` has left of the two quotas now; None where there is no limit.
        Reads only (the console asks; `over_quota` trims the old entries)."""
        now = time.time() if now is None else now
        pipe = self.r.pipeline(transaction=False)
        pipe.zcount(self.keys.quota_jobs(user), now - HOUR, "+inf")
        pipe.zrangebyscore(self.keys.quota_gpu(user), now - DAY, "+inf")
        jobs, gpu = pipe.execute()
        used_gpu = sum(float((m.decode() if isinstance(m, bytes) else m).rsplit(":", 1)[1]) for m in gpu) / 3600
        return (None if jobs_per_hour is None else max(0, jobs_per_hour - int(jobs)),
                None if gpu_hours_per_day is None else max(0.0, gpu_hours_per_day - used_gpu))

    def count_submission(self, user: str, job_id: str, now: float | None = None) -> None:
        key = self.keys.quota_jobs(user)
        pipe = self.r.pipeline()
        pipe.zadd(key, {job_id: time.time() if now is None else now})
        pipe.expire(key, int(HOUR) + 60)
        pipe.execute()

    def count_gpu_time(self, user: str, job_id: str, gpu_seconds: float, now: float | None = None) -> None:
        if gpu_seconds <= 0:
            return
        key = self.keys.quota_gpu(user)
        pipe = self.r.pipeline()
        pipe.zadd(key, {f"{job_id}:{gpu_seconds:.1f}": time.time() if now is None else now})
        pipe.expire(key, int(DAY) + 60)
        pipe.execute()
