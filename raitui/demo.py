"""A busy evening before a deadline, written into real backends at fixed times: the data behind the
snapshot tests, the screenshots and the benchmark. Every id and time is fixed, so pictures are stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from rai.backends import Backends
from rai.backends.queue import QueueDepth
from rai.domain.models import (
    Account,
    GPUStat,
    JobEnd,
    JobRecord,
    JobState,
    LogEntry,
    LogKind,
    NodeHeartbeat,
)

NOW = datetime(2026, 3, 14, 21, 5, 12, tzinfo=timezone.utc)
QUEUE = "rai_amd64"
GPU_QUEUE = "rai_amd64_gpu"
TAIL_JOB = "20260314205731-5c2e81f04a9d"  # a running job with a log


def _at(seconds_ago: float) -> datetime:
    return NOW - timedelta(seconds=seconds_ago)


ACCOUNTS = [
    ("ada", "t01"), ("grace", "t02"), ("linus", "t03"), ("barbara", "t01"), ("alan", "t04"),
    ("margaret", "t05"), ("ken", "t02"), ("dennis", "t03"),
]

# job id, user, team, state, node, queue, submitted (s ago), started (s ago), duration, exit, message
JOBS = [
    ("20260314210458-9e1d44ab07c2", "dennis", "t03", "queued", None, QUEUE, 14, None, None, None, ""),
    ("20260314210431-27bf90e6d1a8", "ken", "t02", "queued", None, GPU_QUEUE, 41, None, None, None, ""),
    ("20260314210219-b04c6e1f9a37", "margaret", "t05", "queued", None, QUEUE, 173, None, None, None, ""),
    ("20260314205731-5c2e81f04a9d", "ada", "t01", "running", "gpu-01", GPU_QUEUE, 461, 455, None, None, ""),
    ("20260314205502-e8a39d17c640", "grace", "t02", "running", "gpu-02", QUEUE, 610, 598, None, None, ""),
    ("20260314205347-13f7a2c9be05", "linus", "t03", "succeeded", "gpu-01", QUEUE, 685, 680, 41.3, 0, ""),
    ("20260314205110-a6d0e4b83f21", "barbara", "t01", "failed", "gpu-02", QUEUE, 842, 838, 12.8, 2,
     "command 3 of 4 failed: make test"),
    ("20260314204833-7f25c1d9e0ba", "alan", "t04", "timeout", "gpu-01", GPU_QUEUE, 999, 990, 600.0, 137,
     "time limit of 10m reached"),
    ("20260314204520-c3b8f6a2d147", "margaret", "t05", "oom", "gpu-02", QUEUE, 1192, 1185, 95.1, 137,
     "out of memory (limit 4.0GiB)"),
    ("20260314204218-4d9e07b1c5f3", "ken", "t02", "cancelled", "gpu-01", QUEUE, 1374, 1370, 33.0, None,
     "cancelled by raitui-operator"),
    ("20260314203904-f1a2b3c4d5e6", "dennis", "t03", "refused", None, QUEUE, 1568, None, 0.0, None,
     "refused: the account's key was revoked"),
    ("20260314203355-0b9c8d7e6f5a", "ada", "t01", "succeeded", "gpu-02", GPU_QUEUE, 1877, 1870, 212.6, 0, ""),
    ("20260314202741-6e5d4c3b2a19", "grace", "t02", "succeeded", "gpu-01", QUEUE, 2251, 2244, 18.2, 0, ""),
    ("20260314201908-8a7b6c5d4e3f", "alan", "t04", "error", "cpu-01", QUEUE, 2764, 2760, 1.1, None,
     "internal error on node cpu-01: the container engine does not answer"),
]

GiB = 1024**3
# The evening's quotas (the config's `roles:`; students only): what the Users view's QUOTA LEFT counts down
ROLES = {"student": {"jobs_at_once": 2, "jobs_per_hour": 10, "gpu_hours_per_day": 4.0},
         "ta": {"network": True}, "admin": {"network": True}}


def _gpus(util: list[float], used: list[float]) -> list[GPUStat]:
    return [GPUStat(index=i, name="NVIDIA A100-SXM4-80GB", utilization=u, memory_used=int(m * GiB),
                    memory_total=80 * GiB) for i, (u, m) in enumerate(zip(util, used, strict=True))]


NODES = [
    NodeHeartbeat(node="gpu-01", host="gpu-01.cluster", arch="amd64", version="0.1.0", queue=GPU_QUEUE, capacity=4,
                  running=["1773521851000-0"], cpu_percent=63.0, memory_percent=41.0, memory_total=512 * GiB,
                  disk_free=812 * GiB, disk_total=1800 * GiB, gpus=_gpus([97.0, 88.0], [61.2, 58.9]),
                  started_at=_at(86400), at=_at(2)),
    NodeHeartbeat(node="gpu-02", host="gpu-02.cluster", arch="amd64", version="0.1.0", queue=QUEUE, capacity=4,
                  running=["1773521702000-0"], cpu_percent=24.0, memory_percent=93.0, memory_total=256 * GiB,
                  disk_free=int(3.2 * GiB), disk_total=900 * GiB, gpus=_gpus([12.0], [4.1]),
                  started_at=_at(7200), at=_at(4)),
    NodeHeartbeat(node="gpu-03", host="gpu-03.cluster", arch="amd64", version="0.1.0", queue=QUEUE, capacity=2,
                  running=[], cpu_percent=3.0, memory_percent=12.0, memory_total=256 * GiB,
                  disk_free=640 * GiB, disk_total=900 * GiB, gpus=_gpus([0.0, 0.0], [0.0, 0.0]),
                  draining=True, started_at=_at(3600), at=_at(1)),
]
LOST_NODE = "cpu-01"
DRAINING_NODE = "gpu-03"

TAIL_LOG = [
    (LogKind.status, "running on gpu-01 (image localhost/rai-test:latest, time limit 10m00s, memory 16.0GiB)"),
    (LogKind.stdout, "+ nvcc --version\nnvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.4\n"),
    (LogKind.stdout, "+ cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release\n"
                     "-- The CXX compiler identification is GNU 12.3.0\n"
                     "-- Found CUDAToolkit: /usr/local/cuda/include (found version \"12.4.131\")\n"
                     "-- Configuring done (1.8s)\n-- Generating done (0.1s)\n"),
    (LogKind.stdout, "+ make -C /build -j8\n[ 25%] Building CUDA object CMakeFiles/ece408.dir/src/conv.cu.o\n"
                     "[ 50%] Building CUDA object CMakeFiles/ece408.dir/src/gemm.cu.o\n"),
    (LogKind.stderr, "/src/gemm.cu(88): warning #177-D: variable \"tile\" was declared but never referenced\n"),
    (LogKind.stdout, "[ 75%] Linking CUDA executable ece408\n[100%] Built target ece408\n"),
    (LogKind.stdout, "+ ./ece408 --batch 10000\nLoading fashion-mnist model... done\n"
                     "Layer 1 op time: 1.842 ms\nLayer 2 op time: 0.913 ms\n"),
    (LogKind.stderr, "CUDA warning: launch took longer than expected (stream 0)\n"),
    (LogKind.stdout, "".join(f"batch {i:>4}/10000  loss {0.9 / (1 + i / 400):.4f}  "
                             f"accuracy {min(0.99, 0.6 + i / 2500):.4f}\n" for i in range(0, 1000, 50))),
]


@dataclass
class Demo:
    now: datetime = NOW
    queues: list[str] = field(default_factory=lambda: [QUEUE, GPU_QUEUE])
    tail_job: str = TAIL_JOB


class PinnedAgeQueue:
    """The real queue, but the oldest-waiting age measured at the demo's fixed time, not the wall
    clock's (the queue reads its ages from Redis' clock): what makes pictures of it stable."""

    def __init__(self, queue, ages: dict[str, float]):
        self._queue = queue
        self._ages = ages

    def depth(self, queue: str) -> QueueDepth:
        d = self._queue.depth(queue)
        return QueueDepth(d.queue, d.waiting, d.running, self._ages.get(queue, d.oldest_waiting_age))

    def __getattr__(self, name):
        return getattr(self._queue, name)


def seed(b: Backends, log_lines: bool = True) -> Demo:
    """Write the demo evening into `b` (accounts, jobs, queues, nodes, depth history, a job's log)."""
    for username, team in ACCOUNTS:
        if b.accounts.get(username) is None:
            b.accounts.add(Account(username=username, email=f"{username}@example.edu", team=team,
                                   access_key=f"AKDEMO{username.upper():0<14}"[:22], secret_key=f"demo-{username}"))
    for (job_id, user, team, state, node, queue, submitted, started, duration, exit_code, message) in JOBS:
        st = JobState(state)
        record = JobRecord(job_id=job_id, username=user, team=team, queue=queue, state=st, node=node,
                           image="localhost/rai-test:latest", submitted_at=_at(submitted),
                           started_at=_at(started) if started is not None else None,
                           finished_at=_at(started - (duration or 0)) if st.finished and started is not None else None,
                           exit_code=exit_code, duration=duration, message=message, attempts=1 if node else 0,
                           gpus=1 if queue == GPU_QUEUE else 0)
        b.live.put_job(record, ttl=86400)
        _count_quota(b, record)
        if st != JobState.queued:
            b.db.save_job(record)
    # Queued jobs wait in the real queues; running ones are claimed by their node.
    waiting = [j for j in JOBS if j[3] == "queued"]
    running = [j for j in JOBS if j[3] == "running"]
    for job in running + waiting:  # what rai-server enqueues, as far as the queue's fair share reads it
        b.queue.enqueue(job[5], json.dumps({"job_id": job[0], "username": job[1], "team": job[2],
                                            "submitted_at": _at(job[6]).isoformat()}))
    for job in running:
        b.queue.claim(job[5], f"{job[4]}-0", block=0.01)
    for hb in NODES:
        b.live.beat(hb, ttl=86400)
    b.live.r.sadd(b.live.keys.nodes(), LOST_NODE)  # a node that stopped beating: listed, no heartbeat
    b.live.set_draining(DRAINING_NODE, True)
    for queue, scale in ((QUEUE, 1.0), (GPU_QUEUE, 0.4)):
        b.live.r.delete(b.live.keys.depth(queue))
        for i in range(720):
            t = NOW.timestamp() - 3600 + i * 5
            wave = 6 + 5 * ((i % 240) / 240) + (12 if 420 < i < 560 else 0) + (i % 17) / 4
            b.live.record_depth(queue, int(wave * scale), at=datetime.fromtimestamp(t, timezone.utc))
    if log_lines:
        entries = [LogEntry(kind=k, body=body, at=_at(450)) for k, body in TAIL_LOG]
        b.logs.append(TAIL_JOB, entries)
    return Demo()


def _count_quota(b: Backends, record: JobRecord) -> None:
    """What rai-server and raid count against the quotas, at the wall clock (the quotas' own)."""
    from rai.live.quotas import QuotaBook

    book = QuotaBook(b.redis)
    book.count_submission(record.username, record.job_id)
    if record.state.finished and record.duration:
        book.count_gpu_time(record.username, record.job_id, record.gpus * record.duration)


RAID_LOG = """\
--- raitui started raid at 2026-03-14 20:12:03 UTC: python -m raid --config /etc/rai/config.yml
2026-03-14 20:12:04,112 INFO raid: raid 0.1.0 on node workstation: 2 workers on queue rai_amd64
2026-03-14 20:31:40,087 INFO raid.job: job 20260314203128-2b7c1e9f04d6 succeeded exit=0 2.41s
2026-03-14 20:44:02,530 WARNING raid.job: keep-alive of 1773520998000-0 failed: Timeout reading from socket
2026-03-14 20:44:05,918 INFO raid.job: job 20260314204351-8d0f3a6e2c17 failed exit=1 9.02s
2026-03-14 20:58:11,301 INFO raid: signal 15: no new jobs; finishing running ones (signal again to hand them back)
2026-03-14 20:58:11,402 INFO raid: raid stopped
--- raitui: raid stopped (exit 0) at 2026-03-14 20:58:11 UTC
"""


def write_raid_log(path) -> None:
    """A past run of the local raid, for the Daemon view's picture."""
    from pathlib import Path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(RAID_LOG)


def end_entry(state: str = "succeeded", exit_code: int = 0, duration: float = 41.3) -> LogEntry:
    return LogEntry(kind=LogKind.end, end=JobEnd(state=JobState(state), exit_code=exit_code, duration=duration))
