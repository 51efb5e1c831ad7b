"""A job's record as a node keeps it: made when the job is taken, changed only by `change` (the runner saves it)."""

from __future__ import annotations

from dataclasses import dataclass

from rai.backends.queue import ClaimedJob
from rai.domain.models import JobRecord, JobRequest, JobState, utcnow
from rai.domain.projects import RankedKind
from raid.outcome import Ended, HandedBack, Outcome, Waits


@dataclass(frozen=True)
class Started:
    """Admitted and marked running on this node; `team` is the account's as verified."""

    team: str | None


RecordChange = RankedKind | Started | Outcome


def new_record(req: JobRequest, claimed: ClaimedJob, node: str) -> JobRecord:
    """The record of a job this node just took, from its request as signed."""
    return JobRecord(
        job_id=req.job_id, username=req.username, team=req.team, access_key=req.access_key, queue=req.queue,
        submission=req.submission, submitted_at=req.submitted_at, upload_key=req.upload_key,
        image=str(req.spec.get("rai", {}).get("image", "")), attempts=claimed.attempts, node=node,
        gpus=asked_gpus(req.spec),
    )


def change(record: JobRecord, what: RecordChange) -> None:
    """The one place a node changes a job's record: a ranked kind, its start, or its outcome."""
    match what:
        case RankedKind():  # the project's spec replaces the submitter's
            record.project, record.submission, record.image = what.project, what.kind, what.spec.rai.image
        case Started(team=team):
            record.state, record.started_at, record.team = JobState.running, utcnow(), team
        case Waits(reason=reason):
            record.state, record.message = JobState.queued, reason
        case HandedBack():
            record.state = JobState.queued
        case Ended(end=end):
            record.state, record.exit_code, record.duration = end.state, end.exit_code, end.duration
            record.output_key, record.message, record.finished_at = end.output_key, end.message, utcnow()


def asked_gpus(spec: dict) -> int:
    """resources.gpu.count of a job's spec as sent, 0 when absent or unreadable (the spec is checked later)."""
    try:
        return max(0, int(((spec.get("resources") or {}).get("gpu") or {}).get("count") or 0))
    except (TypeError, ValueError, AttributeError):
        return 0
