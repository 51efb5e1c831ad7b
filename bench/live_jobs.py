"""The console's read of the newest live job records, in one run: the `rai:jobs` index against a keyspace scan.

Every poll of the console reads the newest 500 live job records from Redis. Records live for the log
retention plus 30 days, next to each job's log stream and a cancel key or two, so a class's term
leaves tens of thousands of keys. This fills a real Redis with that many jobs (a record and a log
stream each), then times the read both ways, in the same run:

- scan: SCAN the keyspace for `rai:job:*`, sort the ids, MGET the newest (how the console read them
  before the index);
- index: `LiveBoard.recent_jobs`, ZREVRANGE of `rai:jobs` then MGET.

    python bench/live_jobs.py [--jobs 20000 50000] [--newest 500] [--repeat 15]

Prints the median time of each and their ratio. Needs `redis-server` (started on a free port, in a
temp folder, and stopped at the end).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import free_port  # noqa: E402

from rai.domain.models import JobRecord, JobState, utcnow  # noqa: E402
from rai.live.board import LiveBoard  # noqa: E402
from rai.live.redis_server import connect  # noqa: E402


def fill(live: LiveBoard, jobs: int, start: int) -> None:
    now = utcnow()
    pipe_every = 1000
    for n in range(start, jobs):
        at = now - timedelta(seconds=(jobs - n) * 60)
        record = JobRecord(job_id=at.strftime("%Y%m%d%H%M%S") + f"-{n:012x}", username=f"user{n % 300:03d}",
                           team=f"team{n % 100:02d}", queue="rai_amd64", state=JobState.succeeded, node="gpu-01",
                           submitted_at=at, started_at=at, finished_at=at + timedelta(seconds=30),
                           exit_code=0, duration=30.0)
        live.put_job(record, ttl=37 * 86400)
        live.r.xadd(f"rai:log:{record.job_id}", {"kind": "stdout", "body": "line\n" * 20})
        if n % pipe_every == 0:
            print(f"\r  filling: {n:,}/{jobs:,}", end="", file=sys.stderr, flush=True)
    print("\r" + " " * 40 + "\r", end="", file=sys.stderr)


def by_scan(live: LiveBoard, newest: int) -> list[JobRecord]:
    prefix = f"{live.p}job:"
    ids = sorted((k.decode()[len(prefix):] for k in live.r.scan_iter(match=prefix + "*", count=1000)),
                 reverse=True)[:newest]
    return [JobRecord.from_json(d) for d in live.r.mget([prefix + i for i in ids]) if d]


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[20_000, 50_000], help="live jobs in Redis")
    parser.add_argument("--newest", type=int, default=500, help="records the console reads (default 500)")
    parser.add_argument("--repeat", type=int, default=15, help="reads timed each way (default 15)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="rai-bench-live-") as tmp:
        import os

        os.environ["RAI_DATA_DIR"] = tmp
        client = connect(f"redis://127.0.0.1:{free_port()}/0")
        try:
            live = LiveBoard(client)
            print(f"newest {args.newest} live job records, median of {args.repeat} reads")
            print(f"{'live jobs':>10} {'keys':>8} {'scan ms':>9} {'index ms':>9} {'scan/index':>11}")
            done = 0
            for jobs in sorted(args.jobs):
                fill(live, jobs, done)
                done = jobs
                a, b = by_scan(live, args.newest), live.recent_jobs(args.newest)
                assert [r.job_id for r in a] == [r.job_id for r in b], "the two reads disagree"
                scan = median_ms(lambda: by_scan(live, args.newest), args.repeat)
                index = median_ms(lambda: live.recent_jobs(args.newest), args.repeat)
                print(f"{jobs:>10,} {client.dbsize():>8,} {scan:>9.1f} {index:>9.1f} {scan / index:>10.1f}x")
        finally:
            try:
                client.shutdown(nosave=True)
            except Exception:
                pass


if __name__ == "__main__":
    main()
