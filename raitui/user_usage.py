"""What the Users view counts per user from the job records: fair-share usage (rai.domain.fairshare's decay and
job weights, the scheduler's half-life), plain job-hours, jobs, what runs and waits now, and quota left."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from rai.domain import fairshare
from rai.domain.models import JobRecord, JobState

HOUR = 3600.0
USAGE_WINDOW = 86400.0  # seconds of job records the Users view counts


@dataclass
class UserUsage:
    username: str
    team: str | None = None
    usage: float = 0.0  # weighted job-hours over the last day, decayed with the scheduler's half-life
    hours: float = 0.0  # plain job-hours over the last day
    jobs: int = 0  # jobs submitted in the last day
    running: int = 0
    waiting: int = 0
    quota_left: str | None = None  # what the quota config leaves the user, in words; None: no quota configured
    over_quota: bool = False  # nothing left of one of the quotas: their next submission is refused


def ran_hours(record: JobRecord, now: datetime, half_life: float,
              window: float = USAGE_WINDOW) -> float:
    """Hours the job ran within the last `window` seconds, decayed as the scheduler decays usage
    (rai.domain.fairshare.decayed_span); `half_life` inf: plain hours."""
    if record.started_at is None:
        return 0.0
    end = (record.finished_at or now) if record.state.finished else now
    t = now.timestamp()
    start = max(record.started_at.timestamp(), t - window)
    return fairshare.decayed_span(start, end.timestamp(), t, half_life) / HOUR


def user_usage(records: Iterable[JobRecord], now: datetime,
               half_life: float = fairshare.DEFAULT_HALF_LIFE) -> list[UserUsage]:
    """One row per user of `records`, most decayed usage first."""
    out: dict[str, UserUsage] = {}
    for r in records:
        u = out.setdefault(r.username, UserUsage(r.username, r.team))
        u.team = u.team or r.team
        u.jobs += 1
        if r.state == JobState.queued:
            u.waiting += 1
        elif r.state == JobState.running:
            u.running += 1
        u.usage += fairshare.job_weight(r.gpus) * ran_hours(r, now, half_life)
        u.hours += ran_hours(r, now, float("inf"))
    return sorted(out.values(), key=lambda u: (-u.usage, u.username))


def quota_words(jobs_left: int | None, gpu_hours_left: float | None) -> str | None:
    """"7 jobs · 1.5 GPU-h" left this hour and day; None when neither quota applies."""
    parts = []
    if jobs_left is not None:
        parts.append(f"{jobs_left} job{'' if jobs_left == 1 else 's'}")
    if gpu_hours_left is not None:
        parts.append(f"{gpu_hours_left:.1f} GPU-h")
    return " · ".join(parts) if parts else None


def half_life_words(seconds: float) -> str:
    """"1 h" or "30 min": the half-life as the view's subtitle says it."""
    if seconds >= HOUR and seconds % HOUR == 0:
        return f"{seconds / HOUR:.0f} h"
    return f"{seconds / 60:g} min"
