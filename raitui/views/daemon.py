"""Daemon: start, stop and restart a local `raid` with the console's config; its state and its log; the
state of the local rai-server the console started with it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import Button, Log, Static
from textual.worker import get_current_worker

from rai.domain.models import utcnow
from raitui.daemon_control import DaemonState, DaemonStatus, LocalDaemon, LocalServer, ServerStatus
from raitui.data import describe_error
from raitui.format import BAD, DIM, age_text
from raitui.views.base import View

STATE_STYLE = {
    DaemonState.running: "bold #4ec97b",
    DaemonState.stopping: "bold #e6b34a",
    DaemonState.stopped: "bold #9aa5b1",
    DaemonState.exited: "bold #9aa5b1",
    DaemonState.crashed: "bold #ff6b6b",
}
LOG_LINES = 5000  # lines of raid's log kept on screen


def status_text(status: DaemonStatus, daemon: LocalDaemon) -> Text:
    text = Text.assemble(("● ", STATE_STYLE[status.state]), (status.state.value, STATE_STYLE[status.state]))
    if status.state in (DaemonState.running, DaemonState.stopping):
        text.append(f"   pid {status.pid}")
        if status.started_at:
            text.append(f"   up {age_text((utcnow() - status.started_at).total_seconds())}", DIM)
    elif status.exit_code is not None:
        code = status.exit_code
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        text.append(f"   {how}", BAD if status.state == DaemonState.crashed else DIM)
        if status.state == DaemonState.crashed:
            text.append("   (its log below says why)", DIM)
    else:
        text.append("   not running: s starts a raid on this machine with the console's config", DIM)
    text.append("\n")
    text.append("config ", DIM)
    text.append(daemon.config.source or "embedded defaults (no config file)")
    text.append("   node ", DIM)
    text.append(daemon.config.raid.node_name())
    text.append("   queue ", DIM)
    text.append(daemon.config.broker.queue_name())
    text.append("   log ", DIM)
    text.append(str(daemon.log_path))
    return text


def server_text(status: ServerStatus, server: LocalServer) -> Text:
    """One line: rai-server's state, where clients reach it, its pid."""
    text = Text("rai-server ", DIM)
    if status.elsewhere:
        text.append_text(Text.assemble(("● ", STATE_STYLE[DaemonState.running]),
                                       ("running", STATE_STYLE[DaemonState.running])))
        text.append(f"   {status.url}")
        text.append("   another one answered there, so the console started none", DIM)
        return text
    state, style = status.state.value, STATE_STYLE[status.state]
    if status.state == DaemonState.running and not status.ready:
        state, style = "starting", STATE_STYLE[DaemonState.stopping]
    text.append_text(Text.assemble(("● ", style), (state, style)))
    text.append(f"   {status.url}")
    if status.state in (DaemonState.running, DaemonState.stopping):
        text.append(f"   pid {status.pid}")
        if not status.ready:
            text.append("   waiting for /healthz", DIM)
    elif status.exit_code is not None:
        code = status.exit_code
        text.append(f"   {f'killed by signal {-code}' if code < 0 else f'exit code {code}'}",
                    BAD if status.state == DaemonState.crashed else DIM)
    else:
        text.append("   starts with the console's local raid (raitui --with-raid)", DIM)
    if status.pid is not None:
        text.append("   log ", DIM)
        text.append(str(server.log_path))
    return text


class DaemonView(View):
    view_name = "daemon"
    title = "Daemon"
    description = "a local raid: start, stop, restart, its log"

    BINDINGS = [
        Binding("s", "start", "Start raid"),
        Binding("x", "stop", "Stop raid"),
        Binding("r", "restart", "Restart raid"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._last = ""
        self._last_server = ""
        self._busy = False

    @property
    def daemon(self) -> LocalDaemon:
        return self.console.daemon

    @property
    def server(self) -> LocalServer:
        return self.console.server

    def compose(self) -> ComposeResult:
        yield Static(id="daemon-status")
        yield Static(id="server-status")
        with Horizontal(id="daemon-buttons"):
            yield Button("Start", id="daemon-start", variant="success", compact=True)
            yield Button("Stop", id="daemon-stop", variant="error", compact=True)
            yield Button("Restart", id="daemon-restart", variant="primary", compact=True)
        log = Log(id="daemon-log", max_lines=LOG_LINES, auto_scroll=True)
        log.border_title = "raid log"
        yield log

    def on_mount(self) -> None:
        self._show_status()
        self.set_interval(0.5, self._show_status)
        self._tail_log()

    def on_shown(self) -> None:
        self.query_one(Log).focus()

    def _show_status(self) -> None:
        try:
            self._update_status()
        except NoMatches:  # a stop that ended as the console closed: its widgets are gone already
            pass

    def _update_status(self) -> None:
        status = self.daemon.status()
        text = status_text(status, self.daemon)
        if text.plain != self._last:
            self._last = text.plain
            self.query_one("#daemon-status", Static).update(text)
        line = server_text(self.server.status(), self.server)
        if line.plain != self._last_server:
            self._last_server = line.plain
            self.query_one("#server-status", Static).update(line)
        running = status.state in (DaemonState.running, DaemonState.stopping)
        self.query_one("#daemon-start", Button).disabled = running or self._busy
        self.query_one("#daemon-stop", Button).disabled = not running or self._busy
        self.query_one("#daemon-restart", Button).disabled = self._busy

    # raid's log file, followed in a thread
    @work(thread=True, exclusive=True, group="daemon-log")
    def _tail_log(self) -> None:
        worker = get_current_worker()
        path: Path = self.daemon.log_path
        offset = 0
        inode = None
        first = True
        while not worker.is_cancelled:
            try:
                st = os.stat(path)
            except OSError:
                time.sleep(0.3)
                continue
            if st.st_ino != inode or st.st_size < offset:  # a new or truncated file: from its start
                inode, offset = st.st_ino, 0
                if first and st.st_size > 256 * 1024:
                    offset = st.st_size - 256 * 1024  # an old, long log: its end is what matters
            first = False
            if st.st_size > offset:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(st.st_size - offset)
                cut = data.rfind(b"\n") + 1
                if cut:
                    offset += cut
                    lines = data[:cut].decode("utf-8", "replace").splitlines()
                    try:
                        self.app.call_from_thread(self._write_log, lines)
                    except RuntimeError:  # the app is closing
                        return
                    continue
            time.sleep(0.3)

    def _write_log(self, lines: list[str]) -> None:
        self.query_one(Log).write_lines(lines)

    # keys and buttons
    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"daemon-start": self.action_start, "daemon-stop": self.action_stop,
                   "daemon-restart": self.action_restart}
        action = actions.get(event.button.id or "")
        if action:
            action()

    def action_start(self) -> None:
        self.console.start_local_raid()

    def action_stop(self) -> None:
        if not self.daemon.running:
            self.app.notify("raid is not running", severity="warning")
            return
        self._control("stop")

    def action_restart(self) -> None:
        self._control("restart")

    @work(thread=True, exclusive=True, group="daemon-control")
    def _control(self, what: str) -> None:
        self._busy = True
        self.app.call_from_thread(self._show_status)
        try:
            status = self.daemon.restart() if what == "restart" else self.daemon.stop()
            message, severity = f"raid {what}ed" if what == "restart" else "raid stopped", "information"
            if status.state == DaemonState.crashed:
                message, severity = f"raid {status.state.value} (exit {status.exit_code})", "error"
        except Exception as e:
            message, severity = f"raid {what} failed: {describe_error(e)}", "error"
        finally:
            self._busy = False
        self.app.call_from_thread(self.app.notify, message, severity=severity)
        self.app.call_from_thread(self._show_status)
