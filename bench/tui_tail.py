"""How the console's job tail keeps up with a flood, in one run.

Drives raitui headless (Textual's headless driver, the real app and screens) on a job's log in a real
Redis, and prints:

- key-press-to-screen latency, p50/p99: from a key event handed to the driver until the frame that
  shows its effect has been rendered to terminal bytes; once on a quiet log, once while a writer
  process floods the job's log at >= 50 000 lines/s;
- lines shown per second: lines the tail took into its view during the flood (against the rate the
  writer achieved), and whether every line arrived;
- peak memory of the console's process (the writer runs in its own process).

    python bench/tui_tail.py [--rate 60000] [--seconds 8] [--presses 120]

Needs `redis-server` (started on a free port, in a temp folder, and stopped at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import free_port  # noqa: E402

JOB = "20260314210000-f100dbe4c4a1"
LINE = "flood {n:09d} {kind} the quick brown fox jumps over the lazy dog 0123456789"


def flood(connection: dict, job_id: str, rate: int, seconds: float, first: int, report) -> None:
    """The writer process: entries of ~20 ms of lines each, paced to `rate` lines/s, every 10th on stderr.
    `connection`: the console's Redis connection settings (the local Redis wants the password it was given)."""
    import redis

    from rai.backends.redis_logs import RedisLogStream
    from rai.domain.models import LogEntry, LogKind

    logs = RedisLogStream(redis.Redis(**connection), max_entries=1_000_000)
    per_entry = max(1, rate // 50)
    n = first
    start = time.perf_counter()
    entries = 0
    while time.perf_counter() - start < seconds:
        due = start + entries * per_entry / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        kind = LogKind.stderr if entries % 10 == 9 else LogKind.stdout
        body = "".join(LINE.format(n=i, kind=kind.value) + "\n" for i in range(n, n + per_entry))
        logs.append(job_id, [LogEntry(kind=kind, body=body)])
        n += per_entry
        entries += 1
    report.put((n - first, time.perf_counter() - start))


class Probe:
    """Times key presses to the frame that shows them (installed on the app's `_display`)."""

    def __init__(self, app) -> None:
        self.app = app
        self.armed_at: float | None = None
        self.handled = False
        self.latencies: list[float] = []
        self.frames = 0
        self.done = asyncio.Event()
        original = app._display

        def display(screen, renderable):
            original(screen, renderable)
            if renderable is None:
                return
            # Headless Textual skips writing to a terminal: do that work too, so the cost is counted.
            render = getattr(renderable, "render_segments", None)
            if render is not None:
                render(app.console)
            self.frames += 1
            if self.armed_at is not None and self.handled:
                self.latencies.append(time.perf_counter() - self.armed_at)
                self.armed_at = None
                self.done.set()

        app._display = display

    async def press(self, key: str, timeout: float = 5.0) -> None:
        from textual import events

        self.handled = False
        self.done.clear()
        self.armed_at = time.perf_counter()
        event = events.Key(key, key)
        event.set_sender(self.app)
        self.app._driver.send_message(event)
        await asyncio.wait_for(self.done.wait(), timeout)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


async def drive(app, backends, args, connection: dict) -> dict:
    from raitui.components.job_tail import JobTailScreen

    result: dict = {}
    async with app.run_test(size=(160, 48)) as pilot:
        probe = Probe(app)
        app.open_tail(JOB)
        while not (isinstance(app.screen, JobTailScreen) and app.screen.log_view.line_count >= args.preload):
            await pilot.pause(0.05)
        tail: JobTailScreen = app.screen
        original_toggle = tail.action_toggle_follow

        def toggle() -> None:
            original_toggle()
            probe.handled = True

        tail.action_toggle_follow = toggle  # the `s` key: its effect (FOLLOW/PAUSED) is on screen next frame

        async def presses(n: int) -> list[float]:
            probe.latencies = []
            for _ in range(n):
                await probe.press("s")
                await asyncio.sleep(args.spacing)
            if not tail.log_view.follow:
                await probe.press("s")
            return list(probe.latencies)

        result["quiet"] = await presses(args.presses)

        view = tail.log_view
        taken_before = view.lines_written + view.pending
        report = multiprocessing.Queue()
        writer = multiprocessing.Process(target=flood,
                                         args=(connection, JOB, args.rate, args.seconds, args.preload, report))
        frames_before = probe.frames
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        writer.start()
        result["flood"] = await presses(args.presses)
        while writer.is_alive():
            await asyncio.sleep(0.05)
        if writer.exitcode != 0:
            raise SystemExit(f"the writer process failed (exit {writer.exitcode})")
        written, write_seconds = report.get(timeout=10)
        flood_window = time.perf_counter() - t0
        cpu = (time.process_time() - cpu0) / flood_window
        taken_in_window = view.lines_written + view.pending - taken_before
        # Then wait for the rest to arrive (the reader may be a little behind the writer).
        deadline = time.perf_counter() + 30
        while view.lines_written + view.pending - taken_before < written and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        caught_up = time.perf_counter() - t0
        result.update(
            written=written, write_rate=written / write_seconds, window=flood_window,
            shown_rate=taken_in_window / flood_window, complete=view.lines_written + view.pending - taken_before,
            caught_up=caught_up, cpu=cpu, frames=(probe.frames - frames_before) / flood_window, ring=view.line_count,
            last=view.text_lines()[-1] if view.follow else None,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=60_000, help="lines/s the writer floods (default 60000)")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long the flood lasts (default 8)")
    parser.add_argument("--presses", type=int, default=120, help="key presses measured per phase (default 120)")
    parser.add_argument("--spacing", type=float, default=0.04, help="seconds between presses (default 0.04)")
    parser.add_argument("--preload", type=int, default=2000, help="lines in the log before the test (default 2000)")
    args = parser.parse_args()
    # Killed (timeout, ctrl+c): still stop the redis-server it started, in the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="rai-bench-tail-") as tmp:
        os.environ["RAI_DATA_DIR"] = tmp
        from rai.backends import Backends
        from rai.config import Config
        from rai.domain.models import JobRecord, JobState, LogEntry, LogKind, utcnow
        from raitui.app import RaiConsole
        from raitui.daemon_control import LocalDaemon
        from raitui.data import ConsoleData

        url = f"redis://127.0.0.1:{free_port()}/0"
        config = Config.model_validate({
            "pubsub": {"url": url, "start_local": True, "max_entries": 1_000_000},
            "database": {"path": f"{tmp}/rai.db"}, "store": {"path": f"{tmp}/store"},
        })
        b = Backends(config)
        b.redis.ping()  # starts the local redis-server
        try:
            b.live.put_job(JobRecord(job_id=JOB, username="bench", state=JobState.running, node="bench",
                                     submitted_at=utcnow(), started_at=utcnow()))
            body = "".join(LINE.format(n=i, kind="stdout") + "\n" for i in range(args.preload))
            b.logs.append(JOB, [LogEntry(kind=LogKind.stdout, body=body)])
            app = RaiConsole(ConsoleData(b), LocalDaemon(config, run_dir=Path(tmp)), poll_interval=1.0)
            connection = {k: v for k, v in b.redis.connection_pool.connection_kwargs.items()
                          if k in ("host", "port", "db", "username", "password")}
            result = asyncio.run(drive(app, b, args, connection))
        finally:
            try:
                b.redis.shutdown(nosave=True)
            except Exception:
                pass

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    quiet, busy = result["quiet"], result["flood"]
    print(f"raitui job tail, headless, {args.presses} presses of `s` per phase, terminal 160x48")
    print(f"  key press -> screen, quiet log:         p50 {pct(quiet, 50):6.1f} ms   p99 {pct(quiet, 99):6.1f} ms")
    print(f"  key press -> screen, during the flood:  p50 {pct(busy, 50):6.1f} ms   p99 {pct(busy, 99):6.1f} ms"
          f"   (mean {statistics.mean(busy) * 1000:.1f} ms)")
    print(f"  flood written: {result['written']:,} lines at {result['write_rate']:,.0f} lines/s "
          f"(one process, entries of {max(1, args.rate // 50):,} lines)")
    print(f"  lines shown:   {result['shown_rate']:,.0f} lines/s during the flood; "
          f"{result['complete']:,} of {result['written']:,} arrived "
          f"({'complete' if result['complete'] >= result['written'] else 'INCOMPLETE'}) "
          f"{result['caught_up']:.1f}s after the flood began")
    print(f"  frames:        {result['frames']:.0f}/s during the flood; ring holds {result['ring']:,} lines; "
          f"the console used {result['cpu'] * 100:.0f}% of a CPU")
    print(f"  peak memory:   {peak / 2**20:,.0f} MiB (max RSS of the console's process)")


if __name__ == "__main__":
    main()
