"""The console's local services: the raid and rai-server it may start, the profile it writes on a first run,
and quitting, which stops what it started (and the Redis its connect started) and says what is left running.

A mixin of `RaiConsole` (raitui/app.py): these run on its workers and speak through its notifications.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from textual import work
from textual.app import App

from raitui.daemon_control import DaemonState, LocalDaemon, LocalServer
from raitui.data import ConsoleData, describe_error
from raitui.local_redis import RedisAtStart, stop_if_ours


class LocalServices(App):
    """What `RaiConsole` sets up in its `__init__` for the methods below."""

    data: ConsoleData
    daemon: LocalDaemon
    server: LocalServer
    redis_at_start: RedisAtStart | None
    server_ready_timeout: float
    first_run: Callable[[], str | None] | None
    _closing: bool
    _quitting: bool
    _wake: threading.Event
    _poll_idle: threading.Event
    _stop_lock: threading.Lock
    _finished: list[str] | None

    # the local raid
    def _start_raid(self) -> None:
        self.start_local_raid()

    @work(thread=True, exclusive=True, group="daemon-control")
    def start_local_raid(self) -> None:
        """Start the local raid unless one runs; never a second raid under the same node name (a
        raid starting removes the containers its node name left behind: the other one's jobs)."""
        node = self.daemon.config.raid.node_name()
        if self.daemon.running:
            self.call_from_thread(self.notify, "the local raid already runs", severity="warning")
            return
        # A fresh heartbeat under our name from a raid this console started and lost is its own: fine.
        if self.daemon.status().pid is None and self.data.node_alive(node):
            self.call_from_thread(self.notify, f"a raid already runs as node {node} (its heartbeat is fresh): "
                                  "stop it first, or give this one another raid.node", severity="error", timeout=10)
            return
        try:
            status = self.daemon.start()
        except Exception as e:
            self.call_from_thread(self.notify, f"cannot start raid: {describe_error(e)}", severity="error")
            return
        self.call_from_thread(self.notify, f"local raid started (pid {status.pid}); the Daemon view shows its log")

    # the local rai-server
    @work(thread=True, exclusive=True, group="server-control")
    def start_local_server(self) -> None:
        """Start the local rai-server unless one answers at server.url already (another console's), then
        wait, bounded, for its /healthz; says how that went."""
        server = self.server
        if server.running:
            self.call_from_thread(self.notify, "the local rai-server already runs", severity="warning")
            return
        if server.health() is not None:
            server.note_elsewhere()
            self.call_from_thread(self.notify, f"a rai-server already answers at {server.url}: "
                                  "this console uses it and starts none")
            return
        try:
            server.start()
        except Exception as e:
            self.call_from_thread(self.notify, f"cannot start rai-server: {describe_error(e)}", severity="error")
            return
        problem = server.wait_ready(self.server_ready_timeout)
        if self._closing or self._quitting:  # stopped on purpose meanwhile: nothing to say
            return
        if problem is None:
            self.call_from_thread(self.notify, f"rai-server answers at {server.url} (pid {server.status().pid})")
        else:
            self.call_from_thread(self.notify, f"rai-server is not ready: {problem}; its log: {server.log_path}",
                                  severity="error", timeout=15)

    @work(thread=True, group="first-run")
    def _first_run(self) -> None:
        try:
            message = self.first_run() if self.first_run else None
        except Exception as e:
            message = f"could not write a profile for this machine: {describe_error(e)}"
        if message:
            self.call_from_thread(self.notify, message, timeout=20)

    async def action_quit(self) -> None:
        if self._quitting or not (self.daemon.running or self.server.running):
            self.exit()
            return
        self._quitting = True
        what = " and ".join(name for name, child in (("the local raid", self.daemon), ("rai-server", self.server))
                            if child.running)
        why = " (jobs still running go back to the queue)" if self.daemon.running else ""
        self.notify(f"stopping {what}{why}… q again quits now")
        self._stop_children_then_exit()

    @work(thread=True, group="quit")
    def _stop_children_then_exit(self) -> None:
        try:
            self.stop_children()
        finally:
            self.call_from_thread(self.exit)

    def stop_children(self) -> None:
        """Stop the raid and the rai-server this console started (bounded; both at most once at a time)."""
        with self._stop_lock:
            self.daemon.stop(grace=2.0, hand_back_after=5.0)
            self.server.stop(grace=5.0)

    def finish(self, poll_wait: float = 5.0) -> list[str]:
        """After the console exited: stop what it started (raid, rai-server, then the Redis it started),
        and return one line per thing left running, or the one line of what it stopped."""
        if self._finished is not None:
            return self._finished
        self._closing = True
        self._wake.set()
        self.stop_children()
        self._poll_idle.wait(poll_wait)  # its Redis connection must not come back once the pool is closed
        stopped: list[str] = []
        left: list[str] = []
        for name, child in (("raid", self.daemon), ("rai-server", self.server)):
            status = child.status()
            if child.running:
                left.append(f"left running: {name} (pid {status.pid}; it did not stop)")
            elif child.started_here and status.state == DaemonState.stopped:
                stopped.append(name)
        if self.server.status().elsewhere:
            left.append(f"left running: rai-server at {self.server.url} (it was answering before the console "
                        "started, so the console started none)")
        outcome = stop_if_ours(self.redis_at_start, self.data.connected_redis())
        if outcome.stopped:
            stopped.append("redis-server")
        if outcome.line:
            left.append(outcome.line)
        self._finished = left + ([f"stopped: {', '.join(stopped)}"] if stopped else [])
        return self._finished
