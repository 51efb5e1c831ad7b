"""A local `raid` the console starts, stops and restarts as a child process, with its log in a file.

Nothing here waits without a deadline: `stop` escalates SIGTERM (finish running jobs), a second
SIGTERM (hand them back to the queue) and SIGKILL, so the console never hangs on a stuck daemon.
`start` and `status` return at once; call `stop`/`restart` from a worker thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

import yaml

from rai.config import Config, data_dir
from rai.models import utcnow


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

    def start(self) -> DaemonStatus:
        """Start raid unless it runs; returns at once (raid reports its own start-up in its log)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise RuntimeError(f"raid already runs (pid {self._proc.pid})")
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            config_path = config_file_for(self.config, self.run_dir)
            cmd = raid_command(config_path, self.extra_args)
            env = dict(self.env if self.env is not None else os.environ)
            env["PYTHONUNBUFFERED"] = "1"
            if config_path is None:
                env.pop("RAI_CONFIG", None)
            with open(self.log_path, "ab") as log:
                stamp = utcnow().strftime("%Y-%m-%d %H:%M:%S UTC")
                log.write(f"--- raitui started raid at {stamp}: {' '.join(cmd)}\n".encode())
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
        if not running:
            return self.status()
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGTERM, hand_back_after), (signal.SIGKILL, 10.0)):
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
                log.write(f"--- raitui: raid {what} at {utcnow().strftime('%Y-%m-%d %H:%M:%S UTC')}\n")
        except OSError:
            pass

