"""Deadline night: N students each submit M jobs at once, at random moments over T seconds, onto K nodes
of W worker slots; run once with scheduler.policy fifo and once with fair, in the same run, each on its own
redis-server.

The nodes are processes that claim, keep and ack through the real queue backend (RedisJobQueue or
FairRedisJobQueue) and charge usage as raid does (rai.live.usage); a job "runs" by sleeping --duration seconds,
so what is measured is the scheduling, not Podman. Prints per policy the p50/p95/max wait of each
student's first job, its ratio to the fair share (ceil(N / (K*W)) job durations: the time to run one job
of every student), Redis's peak memory and the jobs lost (must be 0); the ratio line last.

    python bench/deadline_surge.py [--students 60 --jobs 3 --over 60 --nodes 4 --workers 1 --duration 1.5]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from rai.backends.fair_queue import FairRedisJobQueue  # noqa: E402
from rai.backends.redis_queue import RedisJobQueue  # noqa: E402
from rai.live.usage import UsageLedger, group_of  # noqa: E402

QUEUE = "rai_bench"


def make_queue(url: str, policy: str):
    r = redis.Redis.from_url(url)
    if policy == "fair":
        return FairRedisJobQueue(r, UsageLedger(r), visibility_timeout=30)
    return RedisJobQueue(r, visibility_timeout=30)


def node(url: str, policy: str, name: str, workers: int, duration: float, stop, results) -> None:
    import threading

    q = make_queue(url, policy)
    ledger = UsageLedger(redis.Redis.from_url(url))

    def slot(i: int) -> None:
        consumer = f"{name}-{i}"
        while not stop.is_set():
            job = q.claim(QUEUE, consumer, block=0.5)
            if job is None:
                continue
            started = time.time()
            time.sleep(duration)
            who, weight = group_of(job.body, "user")
            ledger.charge(who, weight * duration - job.charged)
            ledger.record_duration(QUEUE, duration)
            q.ack(job)
            body = json.loads(job.body)
            results.put((body["job_id"], body["username"], body["n"], body["at"], started))

    threads = [threading.Thread(target=slot, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    results.put(("ready", name))
    for t in threads:
        t.join()


def run(policy: str, a, seed: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="rai-surge-")
    port = _free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    ctx = mp.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    nodes = [ctx.Process(target=node, args=(url, policy, f"node{k}", a.workers, a.duration, stop, results))
             for k in range(a.nodes)]
    for p in nodes:
        p.start()
    for _ in nodes:  # arrivals start once every node claims: the processes' start is not a wait
        assert results.get(timeout=120)[0] == "ready"
    rng = random.Random(seed)
    arrivals = sorted((rng.uniform(0, a.over), s) for s in range(a.students))
    q = make_queue(url, policy)
    t0 = time.time()
    total = a.students * a.jobs
    for at, s in arrivals:
        time.sleep(max(0.0, t0 + at - time.time()))
        for n in range(a.jobs):
            body = {"job_id": f"s{s}-{n}", "username": f"student{s}", "n": n, "at": time.time(),
                    "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
            q.enqueue(QUEUE, json.dumps(body))
    done: dict[str, tuple] = {}
    deadline = time.time() + a.over + total * a.duration / max(1, a.nodes * a.workers) * 3 + 60
    while len(done) < total and time.time() < deadline:
        try:
            row = results.get(timeout=1)
        except Exception:  # noqa: BLE001 - queue.Empty: look at the deadline again
            continue
        done[row[0]] = row
    peak = int(r.info("memory")["used_memory_peak"])
    stop.set()
    for p in nodes:
        p.join(10)
    server.terminate()
    server.wait(10)
    firsts = [started - at for _job, _user, n, at, started in done.values() if n == 0]
    return {"firsts": firsts, "lost": total - len(done), "peak": peak}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(p / 100 * len(v)) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=3, help="submissions per student, sent at once")
    ap.add_argument("--over", type=float, default=60.0, help="seconds over which the students arrive")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="worker slots per node")
    ap.add_argument("--duration", type=float, default=1.5, help="seconds a job runs")
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    fair_share = math.ceil(a.students / (a.nodes * a.workers)) * a.duration
    print(f"{a.students} students x {a.jobs} jobs over {a.over:.0f}s onto {a.nodes} nodes x {a.workers} "
          f"workers, {a.duration}s jobs; fair share of a first job: {fair_share:.1f}s")
    out = {}
    for policy in ("fifo", "fair"):
        res = out[policy] = run(policy, a, a.seed)
        f = res["firsts"]
        print(f"{policy:>5}: first-job wait p50 {statistics.median(f) if f else float('nan'):.1f}s "
              f"p95 {pct(f, 95):.1f}s max {max(f, default=float('nan')):.1f}s; "
              f"worst/fair share {max(f, default=0) / fair_share:.2f}; "
              f"peak Redis memory {res['peak'] / 1024**2:.1f} MiB; jobs lost {res['lost']}")
    worst_fifo = max(out["fifo"]["firsts"], default=0) / fair_share
    worst_fair = max(out["fair"]["firsts"], default=0) / fair_share
    print(f"ratio worst first-job wait / fair share: fair {worst_fair:.2f} (target <= 2), fifo {worst_fifo:.2f}")


if __name__ == "__main__":
    main()
