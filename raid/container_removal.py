"""Removing finished jobs' containers in a thread of their own, so that a job's end does not wait for it:
removing one takes Podman 0.1-0.8 s (more after a big output).

A removal waits a moment after its job's end (REMOVE_AFTER) and never starts while another job's container is
being set up (created, given its project, attached, started: `setup_begins`): the engine does much of its work
one call at a time, and a removal beside a setup put ~20 ms before that job's first line (bench/log_pipeline.py,
jobs back to back). Whoever waits for the removals (raid's stop, the tests) has them done at once."""

from __future__ import annotations

import logging
import queue
import threading
import time

import docker.errors

log = logging.getLogger("raid.executor")

REMOVE_ATTEMPTS = 6  # tries to remove a job's container (about 30 s in all)
REMOVE_AFTER = 0.2  # seconds after its job's end before a container is removed (a next job's setup goes first)
SETUP_WAIT = 2.0  # the longest a removal waits for setups to finish


class ContainerRemover:
    def __init__(self) -> None:
        self._removals: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._quiet = threading.Condition()  # notified when a setup ends or someone waits for the removals
        self._setups = 0
        self._hurry = 0  # callers in wait(): remove at once

    def remove_later(self, container, job_id: str) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._remove_queued, name="container-remover", daemon=True)
                self._thread.start()
        self._removals.put((container, job_id, time.monotonic() + REMOVE_AFTER))

    def setup_begins(self) -> None:
        """A job's container is being set up: no removal starts until `setup_ends()`."""
        with self._quiet:
            self._setups += 1

    def setup_ends(self) -> None:
        with self._quiet:
            self._setups -= 1
            self._quiet.notify_all()

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait until every container handed over is removed (at once: no waiting for setups); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._quiet:
            self._hurry += 1
            self._quiet.notify_all()
        try:
            while self._removals.unfinished_tasks:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
            return True
        finally:
            with self._quiet:
                self._hurry -= 1

    def _remove_queued(self) -> None:
        while True:
            container, job_id, not_before = self._removals.get()
            try:
                self._wait_for_quiet(not_before)
                remove(container, job_id)
            finally:
                self._removals.task_done()

    def _wait_for_quiet(self, not_before: float) -> None:
        give_up = not_before + SETUP_WAIT
        with self._quiet:
            while not self._hurry:
                now = time.monotonic()
                if now >= give_up or (now >= not_before and not self._setups):
                    return
                self._quiet.wait(max(0.0, (not_before if now < not_before else give_up) - now))


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
