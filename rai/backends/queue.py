"""Job queue port: at-least-once delivery, a dead worker's jobs come back.

Embedded backend: a Redis Stream per queue with one consumer group (`RedisJobQueue`).
Production backend: Amazon SQS (`rai.backends.sqs_queue.SQSJobQueue`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass
class ClaimedJob:
    """A message a worker holds; it must be acked, or it comes back after the visibility timeout."""

    queue: str
    message_id: str
    body: str  # the JobRequest JSON as enqueued
    attempts: int  # deliveries so far, 1 on the first
    charged: float = 0.0  # usage charged to its user at the claim (fair share), corrected at its end


@dataclass
class QueueDepth:
    queue: str
    waiting: int  # enqueued, not yet claimed
    running: int  # claimed, not yet acked
    oldest_waiting_age: float | None  # seconds the oldest waiting job has waited
    dead_lettered: int = 0  # jobs given up after too many attempts, kept for a look (SQS dead-letter queue)


class JobQueue(Protocol):
    def enqueue(self, queue: str, body: str) -> str:
        """Add a job; returns the message id."""

    def claim(self, queue: str, consumer: str, block: float = 5.0) -> ClaimedJob | None:
        """Take one job: first one whose worker stopped keeping it alive, else a new one (waits `block` s)."""

    def keep_alive(self, job: ClaimedJob, consumer: str) -> bool:
        """Tell the queue the job is still being worked on (resets its visibility timeout); False when this
        delivery is no longer the consumer's (acked, or delivered again after its timeout lapsed)."""

    def ack(self, job: ClaimedJob) -> None:
        """The job ended (whatever the outcome): remove it for good."""

    def release(self, job: ClaimedJob) -> None:
        """Hand the job back at once so another worker can take it (raid shutting down)."""

    def depth(self, queue: str) -> QueueDepth: ...

    def queues(self) -> list[str]:
        """Names of the queues that exist."""


# Optional capabilities: a backend has them or not; callers ask with isinstance, and mypy checks both sides.


@runtime_checkable
class DeadLettering(Protocol):
    """A queue that keeps a job given up after too many attempts, with its reason, for a look (SQS's
    dead-letter queue); a queue without one just acks it."""

    def dead_letter(self, job: ClaimedJob, reason: str) -> None: ...


@runtime_checkable
class FairOrdering(Protocol):
    """A queue whose waiting jobs are taken in a fair-share order, not the order they came in."""

    def fair_order(self, queue: str) -> list[str]:
        """The ids of the jobs waiting on `queue`, in the order they would be claimed now."""
