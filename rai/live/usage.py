"""Recent usage per user or team, and recent job durations per queue, kept in Redis for fair share and ETAs.

Keys (prefix `rai:`): `rai:usage:<by>` a hash group -> JSON [usage, at] (weighted job-seconds as of `at`,
decayed on read with rai.domain.fairshare); `rai:durations:<queue>` a list of the last `KEEP` job durations.
"""

from __future__ import annotations

import json
import statistics
import time

import redis

from rai.domain import fairshare
from rai.live.redis_keys import PREFIX, RedisKeys

KEEP = 50  # durations kept per queue for the typical duration
TTL = 14 * 86400  # an idle class's usage is long decayed to nothing: let Redis drop it


def group_of(body: str, by: str = "user") -> tuple[str, float]:
    """(whose usage a queued JobRequest JSON counts to, its weight): its team when `by` is team and it has
    one, else its user; the weight from its GPUs (rai.domain.fairshare.job_weight)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "-", 1.0
    if not isinstance(data, dict):
        return "-", 1.0
    who = (data.get("team") if by == "team" else None) or data.get("username") or "-"
    try:
        gpus = int(((data.get("spec") or {}).get("resources") or {}).get("gpu", {}).get("count") or 0)
    except (AttributeError, TypeError, ValueError):
        gpus = 0
    return str(who), fairshare.job_weight(gpus)


class UsageLedger:
    """Decayed usage per group and recent durations per queue; safe across processes (WATCH/MULTI)."""

    def __init__(self, redis_client: redis.Redis, half_life: float = fairshare.DEFAULT_HALF_LIFE,
                 by: str = "user", prefix: str = PREFIX):
        self.r = redis_client
        self.half_life = half_life
        self.by = by
        self.keys = RedisKeys(prefix)
        self.key = self.keys.usage(by)
        self.prefix = prefix

    def charge(self, group: str, amount: float, now: float | None = None) -> float:
        """Add `amount` weighted job-seconds (negative: a refund) to `group`; returns its usage now."""
        now = time.time() if now is None else now
        out = 0.0

        def update(pipe: redis.client.Pipeline) -> None:
            nonlocal out
            old = _parse(pipe.hget(self.key, group))
            out = max(0.0, fairshare.charged(old[0], old[1], now, amount, self.half_life))
            pipe.multi()
            pipe.hset(self.key, group, json.dumps([out, now]))
            pipe.expire(self.key, TTL)

        self.r.transaction(update, self.key)
        return out

    def usage(self, groups: list[str] | None = None, now: float | None = None) -> dict[str, float]:
        """Each group's decayed usage now (all groups when `groups` is None)."""
        now = time.time() if now is None else now
        items: list[tuple[str, bytes | str | None]]
        if groups is None:
            raw = self.r.hgetall(self.key)
            items = [(k.decode() if isinstance(k, bytes) else k, v) for k, v in raw.items()]
        else:
            items = list(zip(groups, self.r.hmget(self.key, groups), strict=True)) if groups else []
        return {g: fairshare.decayed_usage(*_parse(v), now, self.half_life) for g, v in items}

    def record_duration(self, queue: str, seconds: float) -> None:
        key = self.keys.durations(queue)
        pipe = self.r.pipeline()
        pipe.lpush(key, round(seconds, 3))
        pipe.ltrim(key, 0, KEEP - 1)
        pipe.expire(key, TTL)
        pipe.execute()

    def typical(self, queue: str) -> float:
        """The median of the queue's recent job durations, never under rai.domain.fairshare.MIN_TYPICAL;
        DEFAULT_TYPICAL when none ran."""
        values = [float(v) for v in self.r.lrange(self.keys.durations(queue), 0, -1)]
        return max(statistics.median(values), fairshare.MIN_TYPICAL) if values else fairshare.DEFAULT_TYPICAL


def _parse(raw) -> tuple[float, float]:
    if not raw:
        return 0.0, 0.0
    try:
        usage, at = json.loads(raw)
        return float(usage), float(at)
    except (ValueError, TypeError):
        return 0.0, 0.0
