"""What a waiting job's place and ETA in the Jobs view cost the console's once-a-second snapshot, on a
deadline evening's queue.

Seeds a private Redis with `--waiting` jobs from `--users` users waiting on one fair-share queue (plus
their live records) and a node serving it, then times `ConsoleData.snapshot()` with the places (what
the console does) and without them, and prints both and their ratio.

    python bench/console_places.py [--waiting 2000] [--users 300] [--rounds 20]

Needs `redis-server` (started on a free port, in a temp folder, and stopped at the end).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta

from harness import Installation

QUEUE = "rai_bench"


def seed(b, waiting: int, users: int) -> None:
    from rai.domain.models import JobRecord, JobState, NodeHeartbeat, utcnow

    now = utcnow()
    b.live.beat(NodeHeartbeat(node="gpu-01", host="gpu-01", arch="amd64", version="bench", queue=QUEUE, capacity=8),
                ttl=3600)
    for i in range(waiting):
        user = f"u{i % users:03d}"
        record = JobRecord(job_id=f"20260314{i:06d}-{i:012x}", username=user, queue=QUEUE, state=JobState.queued,
                           submitted_at=now - timedelta(seconds=waiting - i))
        b.live.put_job(record, ttl=3600)
        b.queue.enqueue(QUEUE, json.dumps({"job_id": record.job_id, "username": user,
                                           "submitted_at": record.submitted_at.isoformat()}))
    for u in range(users):  # some ran a lot, some not at all
        b.usage.charge(f"u{u:03d}", float(u * 37 % 900))


def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=2000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    inst = Installation(raid=False)
    try:
        from raitui.data import ConsoleData

        b = inst.backends
        seed(b, args.waiting, args.users)
        data = ConsoleData(b, job_limit=500)
        snap = data.snapshot()
        assert len(snap.places) == args.waiting, f"{len(snap.places)} places for {args.waiting} waiting jobs"
        with_places = timed(data.snapshot, args.rounds)
        data.places = lambda queues: {}  # type: ignore[method-assign]
        without = timed(data.snapshot, args.rounds)
        print(f"{args.waiting} jobs waiting from {args.users} users, snapshot median of {args.rounds}:")
        print(f"  with places and ETAs   {with_places * 1000:8.1f} ms")
        print(f"  without                {without * 1000:8.1f} ms")
        print(f"  ratio                  {with_places / without:8.2f}x  (the console polls once a second)")
    finally:
        inst.close()


if __name__ == "__main__":
    sys.exit(main())
