"""The raid daemon: worker slots taking jobs from the queue, a heartbeat, clean shutdown.

SIGTERM (or SIGINT): stop taking jobs, let running ones finish for `grace` seconds, then hand the
rest back to the queue. A second signal hands them back at once.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time

from rai import __version__
from rai.backends import Backends
from rai.domain.models import utcnow
from rai.live.published_projects import publish_projects
from rai.units import format_size
from raid.executor import Executor
from raid.gpus import gpu_stats
from raid.heartbeat import Heartbeat, NodeIdentity
from raid.image_prune import prune
from raid.job_runner import JobRunner
from raid.ranking import RankedSubmissions
from raid.workspace import remove_left_work

log = logging.getLogger("raid")


class Daemon:
    def __init__(self, backends: Backends, workers: int | None = None, grace: float = 30.0,
                 executor: Executor | None = None):
        """`backends` carries the config too: the node's settings are its `raid:` and `docker:` sections."""
        config = backends.config
        self.config = config
        self.b = backends
        self.node = config.raid.node_name()
        self.queue_name = config.broker.queue_name()
        self.capacity = workers or config.raid.workers
        self.grace = grace
        self.stop_claiming = threading.Event()
        self.hand_back = threading.Event()
        self.running: dict[int, str] = {}
        self._lock = threading.Lock()
        self.executor = executor or Executor.from_config(config.docker)
        # ranked submissions: enforced spec, result, ranking
        self.submissions = RankedSubmissions(config.projects, self.b.db)
        self.gpus = config.raid.gpus if config.raid.gpus is not None else len(gpu_stats())
        self.runner = JobRunner(self.b, self.executor, self.node, self.hand_back, submissions=self.submissions,
                                gpus=self.gpus)
        self.started_at = utcnow()
        identity = NodeIdentity(self.node, self.queue_name, self.capacity, self.gpus, self.started_at)
        self.heartbeat = Heartbeat(identity, self, self.b.live, self.b.queue, config.raid.work_path(),
                                   config.raid.heartbeat_interval)
        self._threads: list[threading.Thread] = []

    def running_jobs(self) -> list[str]:
        with self._lock:
            return sorted(self.running.values())

    def draining(self) -> bool:
        return self.b.live.is_draining(self.node)

    def refusing(self, free: int | None = None) -> str | None:
        """Why the node takes no jobs now (its work folder's disk below raid.min_free_disk), or None."""
        floor = self.config.raid.min_free_disk
        if floor is None:
            return None
        if free is None:
            work = self.config.raid.work_path()
            work.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(work).free
        if free >= floor:
            return None
        return f"taking no jobs: {format_size(free)} free on disk, below raid.min_free_disk ({format_size(floor)})"

    def needed_images(self) -> set[str]:
        """The images of the jobs this node runs and of those waiting on its queue: never pruned."""
        needed = set(self.runner.images_in_use.values())
        for job_id in self.b.live.waiting_ids(self.queue_name, limit=1000):
            record = self.b.live.get_job(job_id)
            if record is not None and record.image:
                needed.add(record.image)
        return needed

    def prune_images(self) -> list[str]:
        docker = self.config.docker
        return prune(self.executor.client, self.runner.image_uses, docker.image_keep, docker.build_budget,
                     self.needed_images())

    def _prune_loop(self) -> None:
        while not self.stop_claiming.is_set():
            try:
                removed = self.prune_images()
                if removed:
                    log.info("pruned %d unused images: %s", len(removed), ", ".join(removed))
            except Exception as e:  # a failed prune must not stop the node; the next one retries
                log.warning("pruning images failed: %s", e)
            self.stop_claiming.wait(self.config.docker.prune_interval)

    def start(self) -> None:
        # Make sure the backends answer before claiming anything: a clear error now beats a crash later.
        self.b.redis.ping()
        _ = self.b.db  # opens (and creates) the database now
        removed = self.executor.remove_leftovers({"rai.node": self.node})
        if removed:
            log.warning("removed %d containers left by a previous run of this node", removed)
        left = remove_left_work(self.config, self.node)
        if left:
            log.warning("removed %d work folders left by a previous run of this node", left)
        self.heartbeat.start()
        publish_projects(self.b.redis, self.config.projects)  # what clients check a submission against
        threading.Thread(target=self._prune_loop, name="image-prune", daemon=True).start()
        for slot in range(self.capacity):
            t = threading.Thread(target=self._slot, args=(slot,), name=f"slot-{slot}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("raid %s on node %s: %d workers on queue %s", __version__, self.node, self.capacity, self.queue_name)

    def _slot(self, slot: int) -> None:
        consumer = f"{self.node}-{slot}"
        backoff = 1.0
        said = None
        while not self.stop_claiming.is_set():
            try:
                refusing = self.refusing()
                if refusing != said and slot == 0:
                    log.warning("%s", refusing or "disk space is back: taking jobs again")
                said = refusing
                if refusing or self.draining():
                    self.stop_claiming.wait(1.0)
                    continue
                claimed = self.b.queue.claim(self.queue_name, consumer, block=1.0)
                backoff = 1.0
            except Exception as e:
                log.warning("cannot claim from %s: %s (retrying in %.0fs)", self.queue_name, e, backoff)
                self.stop_claiming.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if claimed is None:
                continue
            if self.stop_claiming.is_set():
                self.b.queue.release(claimed)
                break
            with self._lock:
                self.running[slot] = claimed.message_id
            try:
                self.runner.run(claimed, consumer)
            except Exception:
                # The runner ends jobs itself; this is a last resort so the slot is never lost.
                log.exception("slot %d: unexpected error around job %s", slot, claimed.message_id)
            finally:
                with self._lock:
                    self.running.pop(slot, None)

    def stop(self, hand_back_now: bool = False) -> None:
        """Stop taking jobs; wait for running ones up to the grace period, then hand them back."""
        self.stop_claiming.set()
        deadline = time.monotonic() + (0 if hand_back_now else self.grace)
        while self.running_jobs() and time.monotonic() < deadline and not self.hand_back.is_set():
            time.sleep(0.1)
        if self.running_jobs():
            log.warning("handing %d running jobs back to the queue", len(self.running_jobs()))
            self.hand_back.set()
        for t in self._threads:
            t.join(timeout=30)
        if not self.executor.wait_removals(30):
            log.warning("some containers of ended jobs are not removed yet; the next start removes them")
        self.heartbeat.stop()

    def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        signals = {"count": 0}

        def on_signal(signum, _frame):
            signals["count"] += 1
            if signals["count"] == 1:
                log.info("signal %d: no new jobs; finishing running ones (signal again to hand them back)", signum)
                self.stop_claiming.set()
            else:
                self.hand_back.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not self.stop_claiming.is_set():
            self.stop_claiming.wait(0.5)
        self.stop()
        log.info("raid stopped")
        return 0
