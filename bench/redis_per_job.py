"""What a finished job costs Redis: run N jobs' Redis side as raid and rai-server write it (the live record,
the index, a 1,000-line log through LogWriter, the end entry, a queue message claimed and acked), measure
`used_memory` before and after, then let retention expire the logs and measure again.

    .venv/bin/python bench/redis_per_job.py [--jobs 300] [--lines 1000] [--line-bytes 80]

The bound this gives (README, "Redis memory"): jobs finished within `pubsub.retention` × bytes per job,
plus jobs within retention + 30 days × bytes per record. Prints the ratio of Redis bytes per job to the
log's own output bytes last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import free_port  # noqa: E402
from rai.backends.log_writer import LogWriter  # noqa: E402
from rai.backends.redis_logs import RedisLogStream  # noqa: E402
from rai.backends.redis_queue import RedisJobQueue  # noqa: E402
from rai.domain.models import JobEnd, JobRecord, JobState, utcnow  # noqa: E402
from rai.live.board import LiveBoard  # noqa: E402


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def run_job(i: int, r, live, logs, queue, lines: int, line_bytes: int) -> None:
    job_id = f"20260101000000-{i:012x}"
    record = JobRecord(job_id=job_id, username=f"student{i % 60:02d}", team=f"t{i % 20:02d}", queue="rai_amd64",
                       submitted_at=utcnow(), image="localhost/rai-test:latest",
                       upload_key=f"uploads/u/{job_id}.tar.zst")
    live.create_job(record, ttl=7 * 86400 + 30 * 86400)
    queue.enqueue("rai_amd64", json.dumps({"job_id": job_id, "spec": {"rai": {"version": 0.2}}}))
    claimed = queue.claim("rai_amd64", "bench-0", block=0.1)
    record.state, record.started_at, record.node = JobState.running, utcnow(), "bench"
    live.put_job(record, ttl=7 * 86400 + 30 * 86400)
    writer = LogWriter(logs, job_id, max_log_bytes=64 * 1024**2)
    body = "x" * (line_bytes - 12)
    for n in range(lines):
        writer.output("stdout", f"{n:>10} {body}\n".encode())
    end = JobEnd(state=JobState.succeeded, exit_code=0, duration=1.0)
    record.state, record.finished_at, record.exit_code, record.duration = JobState.succeeded, utcnow(), 0, 1.0
    live.put_job(record, ttl=7 * 86400 + 30 * 86400)
    writer.end(end)
    writer.close()
    logs.expire(job_id, 7 * 86400)
    queue.ack(claimed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--line-bytes", type=int, default=80)
    a = ap.parse_args()
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="rai-bench-mem-")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        live, logs, queue = LiveBoard(r), RedisLogStream(r), RedisJobQueue(r)
        run_job(-1, r, live, logs, queue, a.lines, a.line_bytes)  # warm up: the queue's group, scripts
        before = used(r)
        for i in range(a.jobs):
            run_job(i, r, live, logs, queue, a.lines, a.line_bytes)
        after = used(r)
        per_job = (after - before) / a.jobs
        sample = "20260101000000-000000000001"
        log_key, job_key = r.memory_usage(f"rai:log:{sample}") or 0, r.memory_usage(f"rai:job:{sample}") or 0
        # retention over: the logs expire, the records stay (retention + 30 days)
        for i in range(a.jobs):
            r.delete(f"rai:log:20260101000000-{i:012x}", f"rai:logseq:20260101000000-{i:012x}")
        r.memory_purge() if hasattr(r, "memory_purge") else None
        records_only = (used(r) - before) / a.jobs
        output = a.lines * a.line_bytes
        print(f"{a.jobs} jobs, each a {a.lines}-line log of {output} output bytes")
        print(f"Redis used_memory per finished job:        {per_job:10.0f} B  (MEMORY USAGE: log {log_key} B, "
              f"record {job_key} B)")
        print(f"per job once its log expired (record only): {records_only:10.0f} B")
        print(f"queue stream entries left after the acks: {r.xlen(queue.key('rai_amd64'))}; keys left: {r.dbsize()}")
        print(f"ratio: {per_job / output:.2f} Redis bytes per output byte")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
