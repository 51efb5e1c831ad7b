"""`GET /metrics`: what rai-server can see, in Prometheus' text format (prometheus-client).

Gauges are read from Redis at scrape time (queue depth, nodes, Redis memory); histograms and the
ends counter are fed from the live job records: each scrape observes, once, every job that ended
since the last one. Only aggregates carry labels (queue, state): no user name, job id or path.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from rai.backends import Backends
from rai.domain.models import JobRecord, JobState

log = logging.getLogger("raiserver.metrics")

SCAN = 5000  # newest live records looked at per scrape: the ends a scrape can see between two scrapes
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
WAIT_BUCKETS = (0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


class LiveCollector:
    """Gauges read at scrape time from what rai-server may read (its Redis ACL keeps the queue write-only to
    it): waiting from the records' waiting sets, running from the live records, nodes from heartbeats.
    A part that does not answer is left out, never the scrape."""

    def __init__(self, backends: Backends, metrics: Metrics):
        self.b = backends
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        yield from self._queues()
        yield from self._memory()

    def _queues(self):
        waiting = GaugeMetricFamily("rai_jobs_waiting", "Jobs waiting in the queue", labels=["queue"])
        running = GaugeMetricFamily("rai_jobs_running", "Jobs running (started, not yet ended)", labels=["queue"])
        oldest = GaugeMetricFamily("rai_oldest_waiting_seconds", "Age of the oldest waiting job", labels=["queue"])
        nodes = GaugeMetricFamily("rai_nodes", "Nodes by state (active, draining, lost)", labels=["state"])
        try:
            views = self.b.live.nodes()
            records = self.m.records
            names = {n.heartbeat.queue for n in views if n.heartbeat} | {r.queue for r in records if r.queue}
            names.add(self.b.config.broker.queue_name())
            now = time.time()
            for name in sorted(names):
                count, first = self.b.live.waiting(name)
                waiting.add_metric([name], count)
                oldest.add_metric([name], max(0.0, now - first) if first is not None else 0.0)
                running.add_metric([name], sum(1 for r in records if r.queue == name and r.state == JobState.running))
            for state in ("active", "draining", "lost"):
                nodes.add_metric([state], sum(1 for n in views if n.state == state))
            yield from (waiting, running, oldest, nodes)
            yield GaugeMetricFamily("rai_nodes_up", "Nodes whose heartbeat is current",
                                    value=sum(1 for n in views if n.heartbeat is not None))
        except Exception as e:  # noqa: BLE001 - a scrape says what it can
            log.warning("metrics: queues or nodes unreadable: %s", e)

    def _memory(self):
        try:
            info = self.b.redis.info("memory")
            yield GaugeMetricFamily("rai_redis_memory_used_bytes", "Redis used_memory",
                                    value=info.get("used_memory", 0))
            yield GaugeMetricFamily("rai_redis_memory_max_bytes", "Redis maxmemory (0: no limit)",
                                    value=info.get("maxmemory", 0))
        except Exception as e:  # noqa: BLE001
            log.warning("metrics: Redis INFO unreadable: %s", e)


class JobEnds:
    """Observes each ended job once: its run time, its wait, its end state."""

    def __init__(self, registry: CollectorRegistry):
        self.duration = Histogram("rai_job_duration_seconds", "Run time of ended jobs", ["queue"],
                                  buckets=DURATION_BUCKETS, registry=registry)
        self.wait = Histogram("rai_job_wait_seconds", "Time from submission to start of ended jobs", ["queue"],
                              buckets=WAIT_BUCKETS, registry=registry)
        self.ends = Counter("rai_job_ends", "Jobs ended, by end state (succeeded, failed, timeout, oom, ...)",
                            ["queue", "state"], registry=registry)
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def observe(self, records: list[JobRecord]) -> int:
        """Count the ended jobs among `records` not counted before; returns how many were new."""
        with self._lock:
            ended = {r.job_id: r for r in records if r.state.finished}
            new = [r for i, r in ended.items() if i not in self._seen]
            for r in new:
                self.ends.labels(r.queue, r.state.value).inc()
                if r.started_at is not None:
                    if r.submitted_at is not None:
                        self.wait.labels(r.queue).observe(max(0.0, (r.started_at - r.submitted_at).total_seconds()))
                    run = r.duration
                    if run is None and r.finished_at is not None:
                        run = (r.finished_at - r.started_at).total_seconds()
                    if run is not None:
                        self.duration.labels(r.queue).observe(max(0.0, run))
            # remember only what can come back: records that left Redis never will
            self._seen = set(ended)
            return len(new)


class Metrics:
    def __init__(self, backends: Backends, token: str | None = None):
        self.b = backends
        self.token = token
        self.registry = CollectorRegistry()
        self.records: list[JobRecord] = []  # the live records of the scrape in progress
        self.registry.register(LiveCollector(backends, self))
        self.ends = JobEnds(self.registry)
        self._scraping = threading.Lock()

    def allowed(self, authorization: str | None) -> bool:
        if not self.token:
            return True
        given = (authorization or "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    def scrape(self) -> bytes:
        """The text exposition; blocking (Redis), so call it from a thread."""
        with self._scraping:
            try:
                self.records = self.b.live.recent_jobs(SCAN)
                self.ends.observe(self.records)
            except Exception as e:  # noqa: BLE001
                log.warning("metrics: live job records unreadable: %s", e)
                self.records = []
            return generate_latest(self.registry)


CONTENT_TYPE = CONTENT_TYPE_LATEST
