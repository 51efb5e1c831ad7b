"""`raitui`: the operator console. Views by number keys and `:name`, `?` help, ctrl+p every action.

One worker thread reads a snapshot of the cluster every second (`ConsoleData.snapshot`) and posts
it to the app; the visible view shows what changed. Nothing on the UI thread waits for a backend.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from functools import partial

import click
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher
from textual.worker import get_current_worker

from rai import __version__
from rai.cli_support import run_cli
from rai.config import load_config
from rai.domain.models import JobRecord
from raitui.commands import ConsoleCommands
from raitui.components.confirm import ConfirmScreen
from raitui.components.goto import GotoScreen
from raitui.components.header import ClusterHeader, ServiceBanner, ViewTabs
from raitui.components.help import HelpScreen
from raitui.components.job_tail import JobTailScreen
from raitui.components.keys_bar import KeysBar
from raitui.components.log_view import LogView
from raitui.daemon_control import LocalDaemon, LocalServer
from raitui.data import ClusterSnapshot, ConsoleData, JobFilter, describe_error
from raitui.local_redis import RedisAtStart
from raitui.local_services import LocalServices
from raitui.views import load_views
from raitui.views.base import View


class SnapshotReady(Message):
    def __init__(self, snapshot: ClusterSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class RaiConsole(LocalServices):
    """The console; `data` reads the backends, `daemon` is the local raid it may start, `server` the local
    rai-server (started with the raid unless `start_server` says otherwise). `redis_at_start`: whether
    Redis answered before the console connected (`RedisAtStart.probe`); with it, `finish()` after the
    console exits shuts down a Redis the console started and says what is left running."""

    CSS_PATH = "app.tcss"
    TITLE = "rai console"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("colon", "goto", "View", key_display=":"),
    ]

    def __init__(self, data: ConsoleData, daemon: LocalDaemon | None = None, *, poll_interval: float = 1.0,
                 retry_interval: float = 2.0, start_raid: bool = False, tail_capacity: int = 100_000,
                 first_run: Callable[[], str | None] | None = None,
                 views: list[type[View]] | None = None, server: LocalServer | None = None,
                 start_server: bool | None = None, redis_at_start: RedisAtStart | None = None,
                 server_ready_timeout: float = 30.0) -> None:
        super().__init__()
        self.data = data
        self.daemon = daemon or LocalDaemon(data.config)
        # rai-server's log next to raid's, with raid's environment and run folder
        self.server = server or LocalServer(data.config, log_path=self.daemon.log_path.with_name("rai-server.log"),
                                            env=self.daemon.env, run_dir=self.daemon.run_dir)
        self.start_server = start_raid if start_server is None else start_server
        self.server_ready_timeout = server_ready_timeout
        self.redis_at_start = redis_at_start
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.start_raid = start_raid
        self.tail_capacity = tail_capacity
        self.first_run = first_run
        self.view_classes = views or load_views()
        self.job_filter = JobFilter()
        self.snapshot: ClusterSnapshot | None = None
        self.current_view = self.view_classes[0].view_name
        self._wake = threading.Event()
        self._last_snapshot_at = time.monotonic()
        self._quitting = False
        self._closing = False
        self._poll_idle = threading.Event()  # set while no poll thread runs: finish() waits for it
        self._poll_idle.set()
        self._stop_lock = threading.Lock()
        self._finished: list[str] | None = None
        for i, cls in enumerate(self.view_classes, start=1):
            if i <= 9:
                self.bind(str(i), f"show_view('{cls.view_name}')", description=cls.title, show=False)

    # layout
    def compose(self) -> ComposeResult:
        # Kept by reference: other screens (a job's log, a modal) may be on top when they update.
        self.header = ClusterHeader(id="header")
        self.tabs = ViewTabs(id="tabs")
        self.banner = ServiceBanner(id="banner")
        self.views = {cls.view_name: cls(id=f"view-{cls.view_name}") for cls in self.view_classes}
        yield self.header
        yield self.tabs
        yield self.banner
        with ContentSwitcher(initial=f"view-{self.current_view}", id="views") as self.switcher:
            yield from self.views.values()
        yield KeysBar(id="keys")

    def on_mount(self) -> None:
        # A flooding log makes many short-lived objects; full collections over everything the UI holds
        # stalled keys for 100+ ms. Startup objects go to the permanent generation, collections come later.
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        self.banner.display = False
        self._show_header()
        self._show_tabs()
        self.view(self.current_view).on_shown()
        self._poll()
        self.set_interval(1.0, self._show_header)
        if self.start_raid:
            self.call_after_refresh(self._start_raid)
        if self.start_server:
            self.call_after_refresh(self.start_local_server)
        if self.first_run is not None:
            self._first_run()

    def on_unmount(self) -> None:
        self._closing = True
        self._wake.set()  # the poll thread leaves its wait at once: exit never waits on it
        # Leaving some other way than `q` (ctrl+q, a closed terminal): the raid started here must not
        # outlive the console unnoticed; it finishes its running jobs and exits. rai-server too.
        self.daemon.ask_to_stop()
        self.server.ask_to_stop()

    def view(self, name: str) -> View:
        return self.views[name]

    @property
    def where(self) -> str:
        return self.data.config.source or "embedded defaults"

    # the cluster snapshot, read in a thread
    @work(thread=True, exclusive=True, group="poll")
    def _poll(self) -> None:
        worker = get_current_worker()
        self._poll_idle.clear()
        try:
            while not worker.is_cancelled and not self._closing:
                self._wake.clear()
                try:
                    snapshot = self.data.snapshot(self.job_filter)
                except Exception as e:  # a bug in reading must not end the console: show it as an error
                    snapshot = ClusterSnapshot(taken_at=self.data.clock(), redis_error=describe_error(e))
                self.post_message(SnapshotReady(snapshot))
                failing = snapshot.redis_error or snapshot.db_error
                self._wake.wait(self.retry_interval if failing else self.poll_interval)
        finally:
            self._poll_idle.set()

    def poll_now(self) -> None:
        """Read a fresh snapshot now (after an action, or when the filter changed)."""
        self._wake.set()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.snapshot = message.snapshot
        self._last_snapshot_at = time.monotonic()
        if self.views_visible and self.is_running:  # not while shutting down: the views' widgets are going
            self.show_views()

    @property
    def views_visible(self) -> bool:
        """Whether the views are on screen (a modal leaves them visible; a job's log covers them)."""
        return all(s.is_modal for s in self.screen_stack[1:])

    def show_views(self) -> None:
        """Show the latest snapshot in the header, the banner and the current view."""
        if self.snapshot is None:
            return
        self._show_header()
        self.banner.show(self.snapshot, self.data.config.pubsub.url, self.data.config.database.where(),
                         self.retry_interval)
        self.view(self.current_view).show_snapshot(self.snapshot)

    def _show_header(self) -> None:
        if not self.views_visible:
            return
        stale = time.monotonic() - self._last_snapshot_at
        limit = 3 * max(self.poll_interval, self.retry_interval) + 2
        self.header.show(self.snapshot, self.where, stale if stale > limit else 0.0)

    def _show_tabs(self) -> None:
        self.tabs.show([(c.view_name, c.title) for c in self.view_classes], self.current_view)

    # views
    def action_show_view(self, name: str) -> None:
        name = name.lower()
        if name not in {c.view_name for c in self.view_classes}:
            self.notify(f"no view named {name!r}: {', '.join(c.view_name for c in self.view_classes)}",
                        severity="warning")
            return
        while len(self.screen_stack) > 1 and not self.screen.is_modal:
            self.pop_screen()  # from a job's tail back to the views
        self.current_view = name
        self.switcher.current = f"view-{name}"
        self._show_tabs()
        view = self.view(name)
        if self.snapshot is not None:
            view.show_snapshot(self.snapshot)
        view.on_shown()

    def action_goto(self) -> None:
        names = [c.view_name for c in self.view_classes]

        def go(name: str | None) -> None:
            if name:
                self.action_show_view(name)

        self.push_screen(GotoScreen(names), go)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_sections()))

    def help_sections(self) -> list[tuple[str, list[Binding], str]]:
        sections: list[tuple[str, list[Binding], str]] = []
        everywhere = [Binding(str(i), "", f"{c.title} view") for i, c in enumerate(self.view_classes, 1)]
        everywhere += [b for b in self.BINDINGS if isinstance(b, Binding)]
        everywhere += [Binding("ctrl+p", "", "Command palette: every action by name")]
        sections.append(("Everywhere", everywhere, ""))
        for cls in self.view_classes:
            own = [b for b in cls.BINDINGS if isinstance(b, Binding)]
            if cls.view_name == "jobs":
                own = [*own, Binding("↑ ↓ pgup pgdn", "", "Move")]
            if own:
                sections.append((f"{cls.title} view", own, cls.description))
        tail = [b for b in JobTailScreen.BINDINGS if isinstance(b, Binding)]
        tail += [Binding("end", "", "Resume following: the waiting lines come in"),
                 Binding("home", "", "Top of the log (stops following)"),
                 Binding("↑ ↓ pgup", "", "Scroll (scrolling up stops following)")]
        sections.append(("Job log", _unique(tail), "enter on a job"))
        return sections

    def palette_commands(self, screen: Screen) -> list[tuple[str, str, Callable[[], object]]]:
        cmds: list[tuple[str, str, Callable[[], object]]] = []
        for i, cls in enumerate(self.view_classes, start=1):
            cmds.append((f"Go to {cls.title}", f"key {i}: {cls.description}", partial(self.action_show_view,
                                                                                      cls.view_name)))
        for cls in self.view_classes:
            for b in cls.BINDINGS:
                if isinstance(b, Binding) and b.description and b.show:
                    cmds.append((f"{cls.title}: {b.description}", f"key {b.key_display or b.key} in {cls.title}",
                                 partial(self._run_view_action, cls.view_name, b.action)))
        if isinstance(screen, JobTailScreen):
            for target, bindings in ((screen, screen.BINDINGS), (screen.log_view, LogView.BINDINGS)):
                for b in bindings:
                    if isinstance(b, Binding) and b.description:
                        cmds.append((f"Job log: {b.description}", f"key {b.key_display or b.key}",
                                     partial(self.call_later, target.run_action, b.action)))
        cmds.append(("Help: all keys", "key ?", self.action_help))
        cmds.append(("Go to view by name", "key :", self.action_goto))
        cmds.append(("Quit", "key q (stops the local raid and rai-server it started)", self.action_quit))
        return cmds

    def _run_view_action(self, name: str, action: str) -> None:
        self.action_show_view(name)
        self.call_later(self.run_action, action, self.view(name))

    # jobs
    def set_job_filter(self, text: str) -> None:
        new = JobFilter(text.strip())
        if new != self.job_filter:
            self.job_filter = new
            self.poll_now()

    def open_tail(self, job_id: str) -> None:
        self.push_screen(JobTailScreen(self.data, job_id, capacity=self.tail_capacity))

    def confirm_cancel(self, job_id: str, record: JobRecord | None) -> None:
        if record is not None and record.state.finished:
            self.notify(f"job {job_id} already ended ({record.state.value})", severity="warning")
            return
        who = f" of {record.username}" if record is not None else ""
        state = f" ({record.state.value}{' on ' + record.node if record.node else ''})" if record else ""
        detail = ("raid stops its container and ends it as cancelled; the request is signed by the "
                  "admin account raitui-operator.")

        def answer(yes: bool | None) -> None:
            if yes:
                self._cancel(job_id)

        self.push_screen(ConfirmScreen(f"Cancel job {job_id}{who}{state}?", detail, yes="Cancel job",
                                       no="Keep it"), answer)

    @work(thread=True, group="cancel")
    def _cancel(self, job_id: str) -> None:
        try:
            message = self.data.cancel(job_id)
            severity = "information"
        except Exception as e:
            message, severity = f"cannot cancel {job_id}: {describe_error(e)}", "error"
        self.call_from_thread(self.notify, message, severity=severity)
        self.poll_now()


def _unique(bindings: list[Binding]) -> list[Binding]:
    seen, out = set(), []
    for b in bindings:
        if b.key not in seen:
            seen.add(b.key)
            out.append(b)
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RAI_CONFIG", help="config file (default ~/.rai_config.yml)")
@click.option("--with-raid/--no-raid", default=None,
              help="start a local raid and rai-server with the console [default: only when there is no config file]")
@click.version_option(__version__, "--version", prog_name="raitui")
def cli(config_path: str | None, with_raid: bool | None) -> int:
    """The operator console: jobs, live logs, queues, nodes, and a local raid and rai-server.

    On quit it stops what it started (raid, rai-server, and a redis-server its connect started) and
    prints what it leaves running."""
    from rai.backends import Backends

    config = load_config(config_path)
    if with_raid is None:
        with_raid = config.source is None
    backends = Backends(config)
    first_run = None
    if with_raid and config.source is None:
        first_run = partial(_newcomer_profile, backends)
    at_start = RedisAtStart.probe(config)  # before anything of the console connects (and may start one)
    app = RaiConsole(ConsoleData(backends), LocalDaemon(config), start_raid=with_raid, first_run=first_run,
                     redis_at_start=at_start)
    try:
        app.run()
    finally:
        for line in app.finish():
            try:
                click.echo(line)
            except OSError:  # the terminal is gone
                break
    return 0


def _newcomer_profile(backends) -> str | None:
    from raitui.first_run import ensure_profile

    made = ensure_profile(backends)
    if made is None:
        return None
    path, username = made
    return (f"wrote a profile for {username} to {path}; from a second terminal: "
            "rai submit -p examples/hello")


def main() -> None:
    run_cli(cli)
