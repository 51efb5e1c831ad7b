"""What a job costs its user once it ends here: fair-share usage (less what its claim charged ahead), its
queue's typical duration for ETAs, and GPU time for quotas."""

from __future__ import annotations

import logging

from rai.backends import Backends
from rai.backends.queue import ClaimedJob
from rai.domain.models import JobRequest
from rai.live.quotas import QuotaBook
from rai.live.usage import group_of

log = logging.getLogger("raid.job")


def charge_usage(backends: Backends, claimed: ClaimedJob, duration: float | None) -> None:
    """Charge the job's user (or team) what it ran; None: it did not run here after all (waits its turn,
    handed back), so the claim's charge is refunded. Never raises: usage only orders the queue."""
    try:
        who, weight = group_of(claimed.body, backends.usage.by)
        backends.usage.charge(who, (weight * duration if duration is not None else 0.0) - claimed.charged)
        if duration is not None:
            backends.usage.record_duration(claimed.queue, duration)
            req = JobRequest.from_json(claimed.body)
            gpus = int(req.spec.get("resources", {}).get("gpu", {}).get("count") or 0)
            QuotaBook(backends.redis).count_gpu_time(req.username, req.job_id, gpus * duration)
    except Exception as e:  # the job's end matters more
        log.warning("charging the usage of job message %s failed: %s", claimed.message_id, e)
