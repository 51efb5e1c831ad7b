"""What a node holds for a job it works on: the queue message, kept from coming back to another worker while
the job runs, and the user's jobs_at_once slot (one Redis set shared by every node), renewed with it."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from rai.backends import Backends
from rai.backends.queue import ClaimedJob

log = logging.getLogger("raid.job")


class JobLease:
    """`with lease:` keeps the message claimed and a taken slot leased; `free_slot` gives the slot back."""

    def __init__(self, backends: Backends, claimed: ClaimedJob, consumer: str, username: str, job_id: str,
                 slot_lease: float):
        self.b = backends
        self.claimed = claimed
        self.consumer = consumer
        self.username = username
        self.job_id = job_id
        self.slot_lease = slot_lease  # how long a slot outlives its node's last keep-alive
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep_alive, daemon=True)

    def __enter__(self) -> JobLease:
        self._keeper.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()

    def take_slot(self, limit: int) -> int | None:
        """One atomic admission shared by every node (two nodes never both take the last slot): None when the
        job holds one of the user's `limit` slots, else how many of the user's jobs hold them."""
        return self.b.live.take_slot(self.username, self.job_id, limit, self.slot_lease)

    def free_slot(self) -> None:
        try:
            self.b.live.free_slot(self.username, self.job_id)
        except Exception as e:  # the lease ends it anyway
            log.warning("freeing the running slot of %s failed: %s", self.job_id, e)

    def _keep_alive(self) -> None:
        interval = max(0.2, self.b.config.broker.visibility_timeout / 3)
        while not self._stop.wait(interval):
            try:
                self.b.queue.keep_alive(self.claimed, self.consumer)
                self.b.live.renew_slot(self.username, self.job_id, self.slot_lease)
            except Exception as e:  # a blip must not kill the job; the next beat retries
                log.warning("keep-alive of %s failed: %s", self.claimed.message_id, e)
