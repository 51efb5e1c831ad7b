"""Write an SVG of each console view from the demo evening (raitui/demo.py), for the README.

    python screenshots/make_screenshots.py            # writes screenshots/{jobs,queue,nodes,daemon,job-log,users}.svg

It starts a private redis-server on a free port (files in a temp folder, stopped at the end), seeds
it and a temp SQLite database with the same fixed data the snapshot tests use, and drives the real
app headless at a fixed clock, so the pictures only change when the console does. Another view's
picture is one more entry in SHOTS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZE = (130, 34)
RAID_LOG = Path("/tmp/rai-demo/raid.log")


@dataclass
class Shot:
    name: str  # screenshots/<name>.svg
    keys: tuple[str, ...]  # pressed after the first snapshot is shown
    ready: Callable[[object], bool] = lambda app: True  # what must be on screen before the picture


def _tail_ready(app) -> bool:
    from raitui.components.job_tail import JobTailScreen

    return isinstance(app.screen, JobTailScreen) and app.screen.log_view.line_count >= 40


SHOTS = [
    Shot("jobs", ()),
    Shot("job-log", ("down", "down", "down", "enter"), _tail_ready),
    Shot("queue", ("2",)),
    Shot("nodes", ("3",)),
    Shot("daemon", ("4",), lambda app: len(app.views["daemon"].query_one("#daemon-log").lines) >= 8),
    Shot("users", ("7",), lambda app: app.views["users"].table.row_count > 0),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def take(app, shot: Shot, out: Path) -> Path:
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 20
        while app.snapshot is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        if shot.keys:
            await pilot.press(*shot.keys)
        while not shot.ready(app) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(0.4)
        return Path(app.save_screenshot(f"{shot.name}.svg", path=str(out)))


def main() -> None:
    parser = argparse.ArgumentParser(description="Write an SVG of each console view from the demo data.")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent), help="folder for the SVGs")
    parser.add_argument("--only", nargs="*", help="just these pictures (names as in SHOTS)")
    args = parser.parse_args()
    # Killed (timeout, ctrl+c): still stop the redis-server it started, in the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ["TZ"] = "UTC"  # the demo's times, as the snapshot tests show them
    time.tzset()
    with tempfile.TemporaryDirectory(prefix="rai-screenshots-") as tmp:
        os.environ["RAI_DATA_DIR"] = tmp
        from rai.backends import Backends
        from rai.config import Config
        from raitui.app import RaiConsole
        from raitui.daemon_control import LocalDaemon
        from raitui.data import ConsoleData, RedisMemory
        from raitui.demo import GPU_QUEUE, NOW, QUEUE, ROLES, PinnedAgeQueue, seed, write_raid_log

        config = Config.model_validate({
            "pubsub": {"url": f"redis://127.0.0.1:{free_port()}/0", "start_local": True},
            "broker": {"queue": QUEUE, "visibility_timeout": "1h"},
            "database": {"path": f"{tmp}/rai.db"},
            "store": {"path": f"{tmp}/store"},
            "raid": {"node": "workstation"},
            "roles": ROLES,
        })
        config.source = "/etc/rai/config.yml"  # what the pictures say the console was opened with
        backends = Backends(config)
        backends.redis.ping()  # starts the private redis-server
        try:
            seed(backends)
            backends.__dict__["queue"] = PinnedAgeQueue(backends.queue, {QUEUE: 173.0, GPU_QUEUE: 41.0})
            write_raid_log(RAID_LOG)
            for shot in SHOTS:
                if args.only and shot.name not in args.only:
                    continue
                data = ConsoleData(backends, clock=lambda: NOW)
                # Redis' own memory moves from run to run: the pictures show a fixed reading (as the snapshots do)
                data.redis_memory = lambda: RedisMemory(used=212 * 1024**2, limit=1024**3, has_maxmemory=True)
                app = RaiConsole(data,
                                 LocalDaemon(config, log_path=RAID_LOG, run_dir=Path(tmp)), poll_interval=0.5)
                path = asyncio.run(take(app, shot, Path(args.out)))
                print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        finally:
            try:
                backends.redis.shutdown(nosave=True)
            except Exception:
                pass


if __name__ == "__main__":
    main()
