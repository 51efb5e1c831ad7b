"""Log pipeline throughput: lines/s end to end (container → raid → Redis → client) against the same
container's output read straight from the engine, in one run, and their ratio. Both containers are made
alike (network off, no log file of the engine's own, as raid makes a job's); the engine's read with its
default log file is printed too.

    python bench/log_pipeline.py [--lines 2000000] [--runs 3]

The two alternate, run by run, and each run's container is gone before the next starts (the direct read
removes its own; raid's removal, a moment after the job's end, is waited for): a pair sees the same machine,
and neither side's timing holds the other's removal. The ratio is the median of the pairs'.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

import psutil
from docker.types import LogConfig
from harness import IMAGE, Installation, docker_client, ulimits

from rai.domain.models import LogKind


def direct(lines: int, engine_log: bool = False) -> float:
    """Seconds to run `seq 1 N` and read all of it through an attach made before start, the container made as
    raid makes a job's: no log file of the engine's own (raid keeps the output in the job's log);
    `engine_log`: the engine's default, which also writes it to a file."""
    client = docker_client()
    t0 = time.perf_counter()
    c = client.containers.create(IMAGE, ["sh", "-c", f"seq 1 {lines}"], network_mode="none", ulimits=ulimits(),
                                 **({} if engine_log else {"log_config": LogConfig(type="none")}))
    sock = c.attach_socket(params={"stdout": 1, "stderr": 1, "stream": 1})._sock
    c.start()
    buf, newlines = b"", 0
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        buf += data
        pos = 0
        while len(buf) - pos >= 8:
            size = struct.unpack_from(">I", buf, pos + 4)[0]
            if len(buf) - pos < 8 + size:
                break
            newlines += buf.count(b"\n", pos + 8, pos + 8 + size)
            pos += 8 + size
        buf = buf[pos:]
    elapsed = time.perf_counter() - t0
    c.remove(force=True)
    assert newlines == lines, f"engine gave {newlines} lines of {lines}"
    return elapsed


def through_rai(inst: Installation, lines: int) -> float:
    """Seconds from submit to the last line and the end entry received by the client; then (untimed) until
    raid has removed the job's container."""
    client = inst.client()
    proj = inst.project([f"seq 1 {lines}"])
    t0 = time.perf_counter()
    sub = client.submit(proj)
    newlines = 0
    end = None
    for entry in client.follow(sub.job_id):
        if entry.kind == LogKind.stdout:
            newlines += entry.body.count("\n")
        elif entry.kind == LogKind.end:
            end = entry.end
    elapsed = time.perf_counter() - t0
    assert end is not None and end.state.value == "succeeded", end
    assert newlines == lines, f"client got {newlines} lines of {lines}"
    engine = docker_client()
    deadline = time.monotonic() + 30
    # the engine's list alone (containers.list inspects each one it lists: one removed meanwhile is an error)
    while engine.api.containers(all=True, filters={"label": f"rai.job={sub.job_id}"}):
        if time.monotonic() > deadline:
            raise SystemExit(f"raid did not remove the container of job {sub.job_id}")
        time.sleep(0.05)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    inst = Installation(workers=1)
    try:
        direct(1000)
        through_rai(inst, 1000)  # warm up both paths
        raid = psutil.Process(inst.raid.pid) if inst.raid is not None else None
        d, logged, r, raid_cpu = [], [], [], 0.0
        for _ in range(args.runs):
            d.append(direct(args.lines))
            logged.append(direct(args.lines, engine_log=True))
            before = sum(raid.cpu_times()[:2]) if raid is not None else 0.0
            r.append(through_rai(inst, args.lines))
            raid_cpu += (sum(raid.cpu_times()[:2]) - before) / args.runs if raid is not None else float("nan")
    finally:
        inst.close()
    d_rate = args.lines / statistics.median(d)
    r_rate = args.lines / statistics.median(r)
    print(f"lines per run: {args.lines:,}  runs: {args.runs} (median)")
    print(f"engine direct (attach, demux):              {d_rate:12,.0f} lines/s  ({statistics.median(d):.2f}s)")
    print(f"engine direct, with its own log file:       {args.lines / statistics.median(logged):12,.0f} lines/s  "
          f"({statistics.median(logged):.2f}s; containers made so before rai kept no engine log)")
    print(f"end to end (container→raid→Redis→client):   {r_rate:12,.0f} lines/s  ({statistics.median(r):.2f}s)")
    print(f"raid's CPU per job (its reading, batching and writing to Redis): {raid_cpu:.3f} s")
    pairs = statistics.median(a / b for a, b in zip(d, r, strict=True))
    print(f"ratio end-to-end / direct (median of the runs' pairs): {pairs:5.2f}  "
          f"(of the medians: {r_rate / d_rate:.2f})")


if __name__ == "__main__":
    main()
