"""The node's heartbeat: host, capacity, running jobs, CPU/memory/disk (psutil), GPUs (raid.gpus); it
expires when raid dies."""

from __future__ import annotations

import logging
import platform
import socket
import threading
import time
from typing import TYPE_CHECKING

import psutil

from rai import __version__
from rai.config import machine_arch
from rai.models import NodeHeartbeat
from rai.redis_keys import KEYS
from raid.gpus import gpu_stats

if TYPE_CHECKING:
    from raid.daemon import Daemon

log = logging.getLogger("raid.heartbeat")


class Heartbeat:
    def __init__(self, daemon: Daemon):
        self.d = daemon
        self.interval = daemon.config.raid.heartbeat_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        psutil.cpu_percent(None)  # prime: the first reading is meaningless

    def snapshot(self) -> NodeHeartbeat:
        work = self.d.config.raid.work_path()
        work.mkdir(parents=True, exist_ok=True)
        disk = psutil.disk_usage(str(work))
        mem = psutil.virtual_memory()
        return NodeHeartbeat(
            node=self.d.node, host=socket.gethostname(), arch=machine_arch() or platform.machine(),
            version=__version__, queue=self.d.queue_name, capacity=self.d.capacity,
            running=self.d.running_jobs(), cpu_percent=psutil.cpu_percent(None), memory_percent=mem.percent,
            memory_total=mem.total, disk_free=disk.free, disk_total=disk.total, gpus=gpu_stats(),
            gpu_count=self.d.gpus, draining=self.d.draining(), refusing=self.d.refusing(disk.free),
            started_at=self.d.started_at,
        )

    def beat(self) -> None:
        self.d.b.live.beat(self.snapshot(), ttl=self.interval * 3)
        self._record_depth()

    def _record_depth(self) -> None:
        # One depth sample per queue per interval across all nodes, for the console's sparkline.
        bucket = int(time.time() // max(self.interval, 1))
        r = self.d.b.redis
        if r.set(KEYS.depth_lock(self.d.queue_name, bucket), 1, nx=True, ex=int(self.interval * 4) + 1):
            depth = self.d.b.queue.depth(self.d.queue_name)
            self.d.b.live.record_depth(self.d.queue_name, depth.waiting)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception as e:
                log.warning("heartbeat failed: %s", e)
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        try:
            self.d.b.live.node_gone(self.d.node)
        except Exception as e:
            log.warning("could not remove the heartbeat: %s", e)
