"""Removing finished jobs' containers in a thread of their own, so that a job's end does not wait for it:
removing one takes Podman 0.3-0.8 s (more after a big output)."""

from __future__ import annotations

import logging
import queue
import threading
import time

import docker.errors

log = logging.getLogger("raid.executor")

REMOVE_ATTEMPTS = 6  # tries to remove a job's container (about 30 s in all)


class ContainerRemover:
    def __init__(self) -> None:
        self._removals: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def remove_later(self, container, job_id: str) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._remove_queued, name="container-remover", daemon=True)
                self._thread.start()
        self._removals.put((container, job_id))

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait until every container handed over is removed; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._removals.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _remove_queued(self) -> None:
        while True:
            container, job_id = self._removals.get()
            try:
                remove(container, job_id)
            finally:
                self._removals.task_done()


def remove(container, job_id: str) -> None:
    """Remove the container, retrying: after an output flood Podman may answer 500 ("timed out waiting
    for file .../exits/...") for a while. What still fails is logged; raid removes it at its next start."""
    delay = 0.5
    for attempt in range(REMOVE_ATTEMPTS):
        try:
            container.remove(force=True)
            return
        except docker.errors.NotFound:
            return
        except Exception as e:  # noqa: BLE001 - never hide the job's result behind a cleanup failure
            if attempt == REMOVE_ATTEMPTS - 1:
                log.error("job %s: removing container %s failed: %s", job_id, container.id[:12], e)
                return
            log.info("job %s: removing container %s failed (attempt %d): %s", job_id, container.id[:12],
                     attempt + 1, e)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
