"""What became of a job a node took: it ended (ran, refused, cancelled, failed, dead-lettered), it waits its
turn back in the queue, or the node handed it back. The job runner's steps return these; the runner records,
publishes and tells the queue by them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rai.domain.models import JobEnd, JobState
from rai.errors import ServiceUnavailable, UserError
from raid.verify import Refused

log = logging.getLogger("raid.job")


@dataclass
class Ended:
    """The job is over; `end` is its final entry. `dead_letter`: given up after too many deliveries, kept in
    the dead-letter queue (where the queue has one) instead of acked."""

    end: JobEnd
    dead_letter: bool = False


@dataclass(frozen=True)
class Waits:
    """It may run, but not now: a fresh copy goes to the back of the queue, `reason` tells the submitter why.
    `elsewhere`: another node should take it, so this worker slot pauses before it claims again."""

    reason: str
    elsewhere: bool = False


@dataclass(frozen=True)
class HandedBack:
    """The node is shutting down: the job goes back to the queue and runs again, on this node or another."""


Outcome = Ended | Waits | HandedBack


def ended(state: JobState, message: str) -> Ended:
    return Ended(JobEnd(state=state, message=message))


def refused(message: str) -> Ended:
    return ended(JobState.refused, message)


def ending_of(error: Exception, node: str, job_id: str) -> Ended:
    """The end of a job a step stopped by raising: a check's refusal, a user's mistake, a service down, or a
    failure of raid's own. The student reads what to do; what broke (sockets, paths, an engine's words) goes
    to the node's log."""
    if isinstance(error, Refused):
        return refused(str(error))
    if isinstance(error, ServiceUnavailable):
        log.error("job %s: %s", job_id, error)
        return ended(JobState.error, f"a service on node {node} stopped answering; submit again later "
                                     f"(your course staff find the details under job {job_id})")
    if isinstance(error, UserError):
        return ended(JobState.error, error.message)
    log.error("job %s failed inside raid", job_id, exc_info=error)
    return ended(JobState.error, f"internal error on node {node} ({type(error).__name__}); your course staff "
                                 f"find the details in the node's log under job {job_id}")
