"""The node's heartbeat: host, capacity, running jobs, CPU/memory/disk (psutil), GPUs (raid.gpus); it
expires when raid dies."""

from __future__ import annotations

import logging
import platform
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import psutil

from rai import __version__
from rai.backends.queue import JobQueue
from rai.config import machine_arch
from rai.domain.models import NodeHeartbeat
from rai.live.board import LiveBoard
from raid.gpus import gpu_stats

log = logging.getLogger("raid.heartbeat")


@dataclass(frozen=True)
class NodeIdentity:
    """What a node is for the whole of its run."""

    node: str
    queue: str  # the queue it serves
    capacity: int  # job slots
    gpus: int  # GPUs it offers
    started_at: datetime


class NodeState(Protocol):
    """What changes while the node runs, read at every beat (the Daemon)."""

    def running_jobs(self) -> list[str]: ...

    def draining(self) -> bool: ...

    def refusing(self, free: int | None = None) -> str | None: ...


class Heartbeat:
    def __init__(self, identity: NodeIdentity, state: NodeState, live: LiveBoard, queue: JobQueue, work: Path,
                 interval: float):
        self.node = identity
        self.state = state
        self.live = live
        self.queue = queue
        self.work = work  # the node's work folder: its disk is the one reported
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        psutil.cpu_percent(None)  # prime: the first reading is meaningless

    def snapshot(self) -> NodeHeartbeat:
        self.work.mkdir(parents=True, exist_ok=True)
        disk = psutil.disk_usage(str(self.work))
        mem = psutil.virtual_memory()
        n = self.node
        return NodeHeartbeat(
            node=n.node, host=socket.gethostname(), arch=machine_arch() or platform.machine(),
            version=__version__, queue=n.queue, capacity=n.capacity,
            running=self.state.running_jobs(), cpu_percent=psutil.cpu_percent(None), memory_percent=mem.percent,
            memory_total=mem.total, disk_free=disk.free, disk_total=disk.total, gpus=gpu_stats(),
            gpu_count=n.gpus, draining=self.state.draining(), refusing=self.state.refusing(disk.free),
            started_at=n.started_at,
        )

    def beat(self) -> None:
        self.live.beat(self.snapshot(), ttl=self.interval * 3)
        self._record_depth()

    def _record_depth(self) -> None:
        # One depth sample per queue per interval across all nodes, for the console's sparkline.
        bucket = int(time.time() // max(self.interval, 1))
        queue = self.node.queue
        if self.live.take_depth_turn(queue, bucket, ttl=int(self.interval * 4) + 1):
            self.live.record_depth(queue, self.queue.depth(queue).waiting)

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
            self.live.node_gone(self.node.node)
        except Exception as e:
            log.warning("could not remove the heartbeat: %s", e)
