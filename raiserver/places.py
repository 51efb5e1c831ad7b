"""Where a waiting job stands and when it may start: its place under the scheduler's policy (fair share:
the order rai.fairshare.order gives; fifo: submission order) and an ETA from the queue's recent job
durations and the job slots of the nodes serving it. Each queue's answer is kept for a second, so many
followers asking at once cost one look at Redis."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from rai import fairshare
from rai.backends import Backends
from rai.backends.queue import FairOrdering
from raiserver.wire import Waiting

FRESH = 1.0  # seconds a queue's order is reused


@dataclass
class QueueOrder:
    at: float
    places: dict[str, int]  # job id -> jobs ahead
    total: int
    capacity: int  # job slots of the nodes serving the queue (not draining)
    typical: float  # seconds a job takes, lately


class PlaceBoard:
    """Each queue's waiting order, looked up for a second at most (ServerState holds one)."""

    def __init__(self, backends: Backends):
        self.b = backends
        self._orders: dict[str, QueueOrder] = {}

    def cached(self, queue: str, job_id: str) -> Waiting | None | Literal[False]:
        """The job's place from a fresh cached order; False when the order must be looked up again."""
        order = self._orders.get(queue)
        if order is None or time.monotonic() - order.at > FRESH:
            return False
        return _waiting(order, job_id)

    def place(self, queue: str, job_id: str) -> Waiting | None:
        """The job's place and ETA on `queue`, None when it does not wait there (looks Redis up when stale)."""
        got = self.cached(queue, job_id)
        if got is not False:
            return got
        return _waiting(self.refresh(queue), job_id)

    def refresh(self, queue: str) -> QueueOrder:
        queue_port = self.b.queue
        ids = queue_port.fair_order(queue) if isinstance(queue_port, FairOrdering) else self._fifo(queue)
        nodes = [n for n in self.b.live.serving(queue) if not n.draining]
        order = QueueOrder(at=time.monotonic(), places={j: i for i, j in enumerate(ids)}, total=len(ids),
                           capacity=sum(n.heartbeat.capacity for n in nodes), typical=self.b.usage.typical(queue))
        self._orders[queue] = order
        return order

    def _fifo(self, queue: str) -> list[str]:
        return self.b.live.waiting_ids(queue)


def _waiting(order: QueueOrder, job_id: str) -> Waiting | None:
    ahead = order.places.get(job_id)
    if ahead is None:
        return None
    if not order.capacity:
        return Waiting(ahead=ahead, on_queue=order.total)
    secs = fairshare.eta(ahead, order.capacity, order.typical)
    return Waiting(ahead=ahead, on_queue=order.total, eta_seconds=round(secs, 1), eta=fairshare.about(secs))
