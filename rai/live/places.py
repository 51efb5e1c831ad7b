"""Where a waiting job stands and when it may start: its place under the scheduler's policy (fair share:
the order rai.domain.fairshare.order gives, which the fair queue's `fair_order` answers; fifo: submission order)
and an ETA from the queue's recent job durations and the job slots of the nodes serving it.

One rule for rai-server (`rai status`, `rai submit`) and the console's Jobs view."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rai.backends.queue import FairOrdering
from rai.domain import fairshare

if TYPE_CHECKING:
    from rai.backends import Backends


@dataclass
class QueueOrder:
    at: float  # time.monotonic() when it was read
    places: dict[str, int]  # job id -> jobs ahead
    total: int
    capacity: int  # job slots of the nodes serving the queue (not draining)
    typical: float  # seconds a job takes, lately


@dataclass(frozen=True)
class Place:
    ahead: int  # jobs that run before this one
    on_queue: int  # jobs waiting on its queue
    eta_seconds: float | None = None  # when it may start; None when no node serves the queue
    eta: str | None = None  # the same in words: "about 6 min"

    @property
    def ordinal(self) -> str:
        """Its place in line as a person says it: "1st", "2nd", "11th"."""
        return ordinal(self.ahead + 1)


def read_order(backends: Backends, queue: str) -> QueueOrder:
    """The queue's waiting order now, its capacity and typical job duration (a few Redis reads)."""
    queue_port = backends.queue
    ids = queue_port.fair_order(queue) if isinstance(queue_port, FairOrdering) else backends.live.waiting_ids(queue)
    nodes = [n for n in backends.live.serving(queue) if not n.draining]
    return QueueOrder(at=time.monotonic(), places={j: i for i, j in enumerate(ids)}, total=len(ids),
                      capacity=sum(n.heartbeat.capacity for n in nodes), typical=backends.usage.typical(queue))


def place_in(order: QueueOrder, job_id: str) -> Place | None:
    """The job's place and ETA in `order`; None when it does not wait there."""
    ahead = order.places.get(job_id)
    if ahead is None:
        return None
    if not order.capacity:
        return Place(ahead=ahead, on_queue=order.total)
    secs = fairshare.eta(ahead, order.capacity, order.typical)
    return Place(ahead=ahead, on_queue=order.total, eta_seconds=round(secs, 1), eta=fairshare.about(secs))


def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"

