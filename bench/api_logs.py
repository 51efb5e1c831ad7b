"""A job's log through rai-server, in one run: (a) lines/s delivered as Server-Sent Events against a direct
XREAD of the same Redis Stream, and their ratio; (b) 300 followers connected at once, each on a job that
waits, while a job's status is asked 500 times: its p50/p99 latency, and the server's peak memory.

    python bench/api_logs.py [--lines 2000000] [--runs 15] [--followers 300] [--requests 500] [--pause 0.01]

(a) writes the lines as raid does (LogWriter: entries of up to 64 KiB, then an end entry) into a job's
stream, with a job record so its owner may read it. The SSE side is `rai.client.core.Client.follow` (signed
requests over httpx, each event parsed as a LogEntry); the direct side XREADs the same entries in replies
of the size the server asks for (about a MiB) and parses each the same way. The two alternate, run by
run; the ratio is the median of each pair's (a pair sees the same load on the machine).

(b) opens the followers with asyncio and one httpx.AsyncClient, each request signed, each job queued
(so its follower also gets `waiting` events), and waits until every follower has received an event and
the server holds that many connections; then times `GET /v1/jobs/{id}` one after another, `--pause`
apart, so the requests span several of the followers' rounds of queue checks (every ~2 s). The server's
RSS is sampled every 50 ms throughout.

Starts its own redis-server and `python -m raiserver` (a subprocess, so its RSS can be read) on free
ports, and stops both at the end. Prints the ratio line last.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import threading
import time

import httpx
import psutil
from harness import Installation

from rai.backends.log_writer import LogWriter
from rai.client.profile import load_profile
from rai.domain.job_ids import new_job_id
from rai.domain.models import JobEnd, JobRecord, JobState, LogEntry, LogKind, utcnow
from rai.domain.signing import EMPTY_SHA256, authorization_headers
from raiserver.logs import FIRST_COUNT, READ_BYTES, next_count

CHUNK_LINES = 50_000  # lines handed to the LogWriter at once (a container's output arrives in such reads)


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by rai-server and redis-server


class PeakRSS:
    """Samples a process's resident memory every `every` seconds in a thread; `peak` is the largest seen."""

    def __init__(self, pid: int, every: float = 0.05):
        self.proc = psutil.Process(pid)
        self.every = every
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def job_record(inst: Installation, job_id: str, state: JobState) -> JobRecord:
    profile = load_profile(inst.profile)
    return JobRecord(job_id=job_id, username=profile.username, team=profile.team, access_key=profile.access_key,
                     queue="rai_bench", state=state, submitted_at=utcnow())


def write_log(inst: Installation, lines: int) -> str:
    """A finished job whose log holds `lines` lines of stdout (as raid writes them) and its end entry."""
    job_id = new_job_id()
    writer = LogWriter(inst.backends.logs, job_id)
    t0 = time.perf_counter()
    for start in range(1, lines + 1, CHUNK_LINES):
        stop = min(start + CHUNK_LINES, lines + 1)
        writer.output("stdout", "".join(f"{i}\n" for i in range(start, stop)).encode())
    writer.end(JobEnd(state=JobState.succeeded, exit_code=0, duration=time.perf_counter() - t0))
    writer.close()
    inst.backends.live.put_job(job_record(inst, job_id, JobState.succeeded), ttl=3600)
    return job_id


def direct(inst: Installation, job_id: str, lines: int) -> float:
    """Seconds to XREAD the whole stream (in replies of the server's size) and parse every entry as a LogEntry."""
    r = inst.backends.redis
    key = inst.backends.logs.key(job_id)
    t0 = time.perf_counter()
    last, newlines, end, count = "0", 0, None, FIRST_COUNT
    while end is None:
        rows = r.xread({key: last}, count=count)[0][1]
        count = next_count(len(rows), sum(len(fields[b"e"]) for _, fields in rows))  # as the server does
        for entry_id, fields in rows:
            last = entry_id
            entry = LogEntry.model_validate_json(fields[b"e"])
            if entry.kind == LogKind.stdout:
                newlines += entry.body.count("\n")
            elif entry.kind == LogKind.end:
                end = entry.end
    elapsed = time.perf_counter() - t0
    assert newlines == lines, f"XREAD gave {newlines} lines of {lines}"
    return elapsed


def through_server(inst: Installation, job_id: str, lines: int) -> float:
    """Seconds to receive the whole log as Server-Sent Events with the rai client, each event parsed."""
    client = inst.client()  # outside the timing: loading the CA certificates takes ~20 ms
    t0 = time.perf_counter()
    newlines, end = 0, None
    for entry in client.follow(job_id):
        if entry.kind == LogKind.stdout:
            newlines += entry.body.count("\n")
        elif entry.kind == LogKind.end:
            end = entry.end
    elapsed = time.perf_counter() - t0
    client.api.close()
    assert end is not None and end.state == JobState.succeeded, end
    assert newlines == lines, f"the SSE client got {newlines} lines of {lines}"
    return elapsed


def waiting_jobs(inst: Installation, n: int) -> list[str]:
    """`n` jobs waiting in their queue, each log holding one status entry and no end."""
    ids = []
    for _ in range(n):
        job_id = new_job_id()
        inst.backends.live.put_job(job_record(inst, job_id, JobState.queued), ttl=3600)
        inst.backends.logs.append(job_id, [LogEntry(kind=LogKind.status, body="waiting for a node")])
        ids.append(job_id)
    return ids


def server_connections(inst: Installation) -> int:
    """Established TCP connections the rai-server process holds on its listening port."""
    conns = psutil.Process(inst.server.pid).net_connections(kind="tcp")
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == inst.server_port)


async def crowd(inst: Installation, followers: int, requests: int, pause: float
                ) -> tuple[list[float], int, int, int]:
    """Latencies (s) of `requests` status requests made while `followers` SSE followers are connected; the
    followers' events received, the connections the server held (the fewer of before and after the
    requests), the followers that were connected."""
    from httpx_sse import aconnect_sse

    profile = load_profile(inst.profile)
    jobs = waiting_jobs(inst, followers)
    connected = 0
    events = 0
    all_in = asyncio.Event()

    def signed(path: str) -> dict[str, str]:
        return authorization_headers(profile.access_key, profile.secret_key, "GET", path, [], EMPTY_SHA256)

    async def follow(http: httpx.AsyncClient, job_id: str) -> None:
        nonlocal connected, events
        path = f"/v1/jobs/{job_id}/log"
        first = True
        async with aconnect_sse(http, "GET", path, headers={**signed(path), "Accept": "text/event-stream"}) as es:
            es.response.raise_for_status()
            async for _sse in es.aiter_sse():
                events += 1
                if first:
                    first = False
                    connected += 1
                    if connected == followers:
                        all_in.set()

    limits = httpx.Limits(max_connections=followers + 10, max_keepalive_connections=followers + 10)
    timeout = httpx.Timeout(30, read=120)
    async with httpx.AsyncClient(base_url=inst.server_url, limits=limits, timeout=timeout) as http, \
            httpx.AsyncClient(base_url=inst.server_url, timeout=timeout) as asker:
        tasks = [asyncio.create_task(follow(http, j)) for j in jobs]
        try:
            await asyncio.wait_for(all_in.wait(), 120)
        except asyncio.TimeoutError:
            failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
            raise SystemExit(f"only {connected} of {followers} followers got an event; {failed[:3]}") from None
        held = server_connections(inst)
        path = f"/v1/jobs/{jobs[0]}"
        for _ in range(10):  # warm up the asker's connection
            (await asker.get(path, headers=signed(path))).raise_for_status()
        latencies = []
        for _ in range(requests):
            t0 = time.perf_counter()
            response = await asker.get(path, headers=signed(path))
            latencies.append(time.perf_counter() - t0)
            response.raise_for_status()
            assert response.json()["waiting"] is not None
            await asyncio.sleep(pause)  # spread over several of the followers' 2 s rounds of queue checks
        held = min(held, server_connections(inst) - 1)  # (less the asker's own)
        still = sum(1 for t in tasks if not t.done())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert still == followers, f"{followers - still} followers dropped during the requests"
    return latencies, events, held, connected


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--followers", type=int, default=300)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--pause", type=float, default=0.01, help="seconds between two status requests")
    args = ap.parse_args()
    raise_fd_limit(4 * args.followers + 1024)
    inst = Installation(raid=False, role="student")
    try:
        start_rss = psutil.Process(inst.server.pid).memory_info().rss
        rss = PeakRSS(inst.server.pid)
        job_id = write_log(inst, args.lines)
        entries = inst.backends.logs.length(job_id)
        direct(inst, job_id, args.lines)
        through_server(inst, job_id, args.lines)  # warm up both paths
        d, s = [], []
        for _ in range(args.runs):
            d.append(direct(inst, job_id, args.lines))
            s.append(through_server(inst, job_id, args.lines))
        peak_a = rss.stop()
        rss = PeakRSS(inst.server.pid)
        latencies, events, held, connected = asyncio.run(crowd(inst, args.followers, args.requests,
                                                                   args.pause))
        peak_b = rss.stop()
    finally:
        inst.close()
    d_rate = args.lines / statistics.median(d)
    s_rate = args.lines / statistics.median(s)
    ratio = statistics.median(a / b for a, b in zip(d, s, strict=True))  # each pair ran under the same load
    mib = 1024 * 1024
    print(f"(a) lines: {args.lines:,} in {entries:,} log entries  runs: {args.runs} (median)")
    print(f"direct XREAD (~{READ_BYTES >> 20} MiB a reply) + LogEntry parse: "
          f"{d_rate:12,.0f} lines/s  ({statistics.median(d):.2f}s)")
    print(f"rai-server SSE → rai client (Client.follow):     {s_rate:12,.0f} lines/s  ({statistics.median(s):.2f}s)")
    print(f"rai-server peak RSS while streaming:             {peak_a / mib:12.0f} MiB (at start {start_rss / mib:.0f})")
    print(f"(b) followers connected: {connected} (each got an event; {events} events in all), "
          f"server held {held} connections")
    print(f"GET /v1/jobs/{{id}} x{args.requests} meanwhile: p50 {pct(latencies, 50) * 1000:.1f} ms  "
          f"p99 {pct(latencies, 99) * 1000:.1f} ms  max {max(latencies) * 1000:.1f} ms  (target p99 < 50 ms)")
    print(f"rai-server peak RSS with {args.followers} followers:          {peak_b / mib:12.0f} MiB")
    print(f"ratio SSE / direct XREAD (median of the runs'):  {ratio:12.2f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
