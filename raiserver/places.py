"""The server's side of a waiting job's place (the rule itself is rai/live/places.py): each queue's order is
kept for a second, so many followers asking at once cost one look at Redis."""

from __future__ import annotations

import time
from typing import Literal

from rai.backends import Backends
from rai.live.places import Place, QueueOrder, place_in, read_order
from raiserver.wire import Waiting

FRESH = 1.0  # seconds a queue's order is reused


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
        return _waiting(place_in(order, job_id))

    def place(self, queue: str, job_id: str) -> Waiting | None:
        """The job's place and ETA on `queue`, None when it does not wait there (looks Redis up when stale)."""
        got = self.cached(queue, job_id)
        if got is not False:
            return got
        return _waiting(place_in(self.refresh(queue), job_id))

    def refresh(self, queue: str) -> QueueOrder:
        order = read_order(self.b, queue)
        self._orders[queue] = order
        return order


def _waiting(place: Place | None) -> Waiting | None:
    if place is None:
        return None
    return Waiting(ahead=place.ahead, on_queue=place.on_queue, eta_seconds=place.eta_seconds, eta=place.eta)
