"""Accounting over job records, as `sacct`/`sreport` give it: per user, team or node, the jobs, job-hours,
GPU-hours, failures and the median wait of a period. Pure functions: `rai-admin usage` feeds them the
database's records."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from rai.domain.models import JobRecord, JobState

GROUPS = {"user": "username", "team": "team", "node": "node"}
# ends that count as failures: the job's own fault or the system's; succeeded, cancelled and refused do not
FAILURES = frozenset({JobState.failed, JobState.timeout, JobState.oom, JobState.error})
CSV_COLUMNS = ("key", "jobs", "ended", "job_hours", "gpu_hours", "failures", "median_wait_s")


@dataclass
class UsageRow:
    key: str
    jobs: int = 0
    ended: int = 0
    job_hours: float = 0.0
    gpu_hours: float = 0.0
    failures: int = 0
    waits: list[float] = field(default_factory=list)

    @property
    def median_wait(self) -> float | None:
        return statistics.median(self.waits) if self.waits else None


def run_seconds(r: JobRecord) -> float:
    """How long the job ran: its recorded duration, else finished - started; 0 for a job that never ran."""
    if r.duration is not None:
        return max(0.0, r.duration)
    if r.started_at is not None and r.finished_at is not None:
        return max(0.0, (r.finished_at - r.started_at).total_seconds())
    return 0.0


def usage(records: Iterable[JobRecord], by: str = "user") -> list[UsageRow]:
    """One row per user (team, node), most job-hours first. A record without a team or node counts under "-"."""
    attr = GROUPS[by]
    rows: dict[str, UsageRow] = {}
    for r in records:
        key = getattr(r, attr) or "-"
        row = rows.setdefault(key, UsageRow(key))
        row.jobs += 1
        if r.state.finished:
            row.ended += 1
            hours = run_seconds(r) / 3600
            row.job_hours += hours
            row.gpu_hours += hours * r.gpus
            row.failures += r.state in FAILURES
        if r.started_at is not None and r.submitted_at is not None:
            row.waits.append(max(0.0, (r.started_at - r.submitted_at).total_seconds()))
    return sorted(rows.values(), key=lambda u: (-u.job_hours, -u.jobs, u.key))


def total(rows: list[UsageRow]) -> UsageRow:
    out = UsageRow("total")
    for u in rows:
        out.jobs += u.jobs
        out.ended += u.ended
        out.job_hours += u.job_hours
        out.gpu_hours += u.gpu_hours
        out.failures += u.failures
        out.waits.extend(u.waits)
    return out


def write_csv(f: TextIO, rows: list[UsageRow]) -> None:
    w = csv.writer(f)
    w.writerow(CSV_COLUMNS)
    for u in rows:
        wait = "" if u.median_wait is None else f"{u.median_wait:.1f}"
        w.writerow([u.key, u.jobs, u.ended, f"{u.job_hours:.4f}", f"{u.gpu_hours:.4f}", u.failures, wait])
