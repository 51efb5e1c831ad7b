"""A local `raid` and a local `rai-server` the console starts, stops and restarts as child processes,
each with its log in a file.

Nothing here waits without a deadline: raid's `stop` escalates SIGTERM (finish running jobs), a second
SIGTERM (hand them back to the queue) and SIGKILL; rai-server's SIGTERM (finish the requests it serves)
and SIGKILL; so the console never hangs on a stuck child. `start` and `status` return at once; call
`stop`/`restart` and `LocalServer.wait_ready`/`health` from a worker thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

import httpx
import yaml

from rai.config import Config, data_dir
from rai.domain.models import utcnow


class DaemonState(str, Enum):
    stopped = "stopped"  # never started, or stopped by the console
    running = "running"
    stopping = "stopping"
    exited = "exited"  # ended by itself with exit code 0
    crashed = "crashed"  # ended by itself with another exit code or a signal


@dataclass
class DaemonStatus:
    state: DaemonState
    pid: int | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    command: list[str] | None = None


def raid_command(config_path: str | None, extra: list[str] | None = None) -> list[str]:
    """`raid` from the same installation as the console (the same interpreter, so the same code)."""
    cmd = [sys.executable, "-m", "raid"]
    if config_path:
        cmd += ["--config", config_path]
    return cmd + list(extra or [])


def server_command(config_path: str | None, listen: str) -> list[str]:
    """`rai-server` from the same installation as the console, serving on `listen` (HOST:PORT)."""
    cmd = [sys.executable, "-m", "raiserver"]
    if config_path:
        cmd += ["--config", config_path]
    return cmd + ["--listen", listen]


def config_file_for(config: Config, run_dir: Path) -> str | None:
    """The file raid should read: the console's own, else (embedded defaults) none, else a written copy."""
    if config.source:
        return config.source
    if config == Config():
        return None  # raid falls back to the same embedded defaults
    path = run_dir / "raid-config.yml"
    run_dir.mkdir(parents=True, exist_ok=True)
    data = config.model_dump(mode="json", exclude={"source"})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # may hold decrypted secrets
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return str(path)


class LocalDaemon:
    """One `raid` child process; see the module docstring."""

    name = "raid"

    def __init__(self, config: Config, log_path: Path | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, run_dir: Path | None = None):
        self.config = config
        self.run_dir = run_dir or data_dir() / "raitui"
        self.log_path = Path(log_path) if log_path else self.run_dir / "raid.log"
        self.extra_args = list(extra_args or [])
        self.env = env
        self._proc: subprocess.Popen | None = None
        self._stopping = False
        self._stopped_by_us = False
        self._started_at: datetime | None = None
        self._ended_at: datetime | None = None
        self._command: list[str] | None = None
        self._lock = threading.Lock()

    def status(self) -> DaemonStatus:
        with self._lock:
            proc = self._proc
            if proc is None:
                return DaemonStatus(DaemonState.stopped, command=self._command)
            code = proc.poll()
            if code is None:
                state = DaemonState.stopping if self._stopping else DaemonState.running
                return DaemonStatus(state, proc.pid, None, self._started_at, command=self._command)
            if self._ended_at is None:
                self._ended_at = utcnow()
            if self._stopped_by_us:
                state = DaemonState.stopped
            else:
                state = DaemonState.exited if code == 0 else DaemonState.crashed
            return DaemonStatus(state, proc.pid, code, self._started_at, self._ended_at, self._command)

    @property
    def running(self) -> bool:
        return self.status().state in (DaemonState.running, DaemonState.stopping)

    @property
    def started_here(self) -> bool:
        """Whether this console started it (at any time)."""
        return self._command is not None

    def command(self, config_path: str | None) -> list[str]:
        return raid_command(config_path, self.extra_args)

    def start(self) -> DaemonStatus:
        """Start raid unless it runs; returns at once (raid reports its own start-up in its log)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise RuntimeError(f"{self.name} already runs (pid {self._proc.pid})")
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            config_path = config_file_for(self.config, self.run_dir)
            cmd = self.command(config_path)
            env = dict(self.env if self.env is not None else os.environ)
            env["PYTHONUNBUFFERED"] = "1"
            if config_path is None:
                env.pop("RAI_CONFIG", None)
            with open(self.log_path, "ab") as log:
                stamp = utcnow().strftime("%Y-%m-%d %H:%M:%S UTC")
                log.write(f"--- raitui started {self.name} at {stamp}: {' '.join(cmd)}\n".encode())
                log.flush()
                # Its own session: the console's terminal signals never reach it, only ours do.
                self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                              env=env, start_new_session=True, close_fds=True)
            self._stopping = False
            self._stopped_by_us = False
            self._started_at = utcnow()
            self._ended_at = None
            self._command = cmd
        return self.status()

    def stop(self, grace: float = 10.0, hand_back_after: float = 5.0) -> DaemonStatus:
        """Stop raid: SIGTERM lets running jobs finish for `grace` s; then a second SIGTERM hands them
        back to the queue; `hand_back_after` s later SIGKILL. Blocks until it exited (bounded)."""
        with self._lock:
            proc = self._proc
            running = proc is not None and proc.poll() is None
            if running:
                self._stopping = True
                self._stopped_by_us = True
        if proc is None or not running:
            return self.status()
        return self._signal_until_exit(proc, ((signal.SIGTERM, grace), (signal.SIGTERM, hand_back_after),
                                              (signal.SIGKILL, 10.0)))

    def _signal_until_exit(self, proc: subprocess.Popen, steps) -> DaemonStatus:
        for sig, wait in steps:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with self._lock:
            self._stopping = False
            self._ended_at = utcnow()
        self._note(f"stopped (exit {proc.poll()})")
        return self.status()

    def ask_to_stop(self) -> None:
        """SIGTERM without waiting: raid finishes what it runs and exits (the console is going away)."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return
            self._stopping = True
            self._stopped_by_us = True
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    def restart(self, grace: float = 10.0) -> DaemonStatus:
        self.stop(grace=grace)
        return self.start()

    def _note(self, what: str) -> None:
        try:
            with open(self.log_path, "a") as log:
                log.write(f"--- raitui: {self.name} {what} at {utcnow().strftime('%Y-%m-%d %H:%M:%S UTC')}\n")
        except OSError:
            pass



@dataclass
class ServerStatus(DaemonStatus):
    url: str = ""
    ready: bool = False  # it answered GET /healthz with 200 since it started
    elsewhere: bool = False  # another rai-server answered at `url`, so the console started none


class LocalServer(LocalDaemon):
    """One `rai-server` child process serving `server.listen`, found by clients at `server.url`.

    `health()` asks `GET {url}/healthz` (short timeout); `wait_ready()` waits, bounded, until it answers
    200 or the process ends. When something already answers there (another console's server),
    `note_elsewhere()` records that and none is started here."""

    name = "rai-server"
    HEALTH_TIMEOUT = 1.0  # seconds one /healthz may take

    def __init__(self, config: Config, log_path: Path | None = None, env: dict[str, str] | None = None,
                 run_dir: Path | None = None):
        run_dir = run_dir or data_dir() / "raitui"
        super().__init__(config, log_path=log_path or run_dir / "rai-server.log", env=env, run_dir=run_dir)
        self.url = config.server.url.rstrip("/")
        self.listen = config.server.listen
        self._ready = False
        self._elsewhere = False

    def command(self, config_path: str | None) -> list[str]:
        return server_command(config_path, self.listen)

    def status(self) -> ServerStatus:
        base = super().status()
        ready = self._ready and base.state in (DaemonState.running, DaemonState.stopping)
        return ServerStatus(**vars(base), url=self.url, ready=ready, elsewhere=self._elsewhere and base.pid is None)

    def start(self) -> ServerStatus:
        self._ready = False
        self._elsewhere = False
        super().start()
        return self.status()

    def note_elsewhere(self) -> None:
        self._elsewhere = True

    def health(self, timeout: float | None = None) -> int | None:
        """The HTTP status `GET {url}/healthz` answers with; None when nothing answers there."""
        verify: str | bool = self.config.server.ca_bundle or True
        try:
            r = httpx.get(f"{self.url}/healthz", timeout=timeout or self.HEALTH_TIMEOUT, verify=verify,
                          trust_env=False, follow_redirects=False)
        except (httpx.HTTPError, OSError, ValueError):
            return None
        return r.status_code

    def wait_ready(self, timeout: float = 30.0, interval: float = 0.2) -> str | None:
        """Wait until the server started here answers /healthz with 200: None then, else why not
        (it ended, or `timeout` s passed). Blocks: call it from a worker thread."""
        deadline = time.monotonic() + timeout
        last: int | None = None
        while True:
            with self._lock:
                proc = self._proc
            if proc is None:
                return "it was not started"
            code = proc.poll()
            if code is not None:
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                return f"it ended ({how}): {log_tail(self.log_path) or 'its log is empty'}"
            last = self.health()
            if last == 200:
                self._ready = True
                return None
            if time.monotonic() >= deadline:
                said = "nothing answers there" if last is None else f"/healthz answers {last}"
                if last == 503:
                    said += " (its Redis does not answer)"
                return f"it did not answer {self.url}/healthz within {timeout:.0f}s ({said})"
            time.sleep(interval)

    def stop(self, grace: float = 5.0, hand_back_after: float = 0.0) -> ServerStatus:
        """SIGTERM (rai-server finishes the requests it serves), SIGKILL after `grace` s. Bounded."""
        with self._lock:
            proc = self._proc
            running = proc is not None and proc.poll() is None
            if running:
                self._stopping = True
                self._stopped_by_us = True
        if proc is not None and running:
            self._signal_until_exit(proc, ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)))
        self._ready = False
        return self.status()

    def restart(self, grace: float = 5.0) -> ServerStatus:
        self.stop(grace=grace)
        return self.start()


def log_tail(path: Path, lines: int = 2, limit: int = 300) -> str:
    """The last `lines` non-empty lines of a log, on one line (what went wrong, usually)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("--- raitui")]
    return " | ".join(kept[-lines:])[-limit:]
