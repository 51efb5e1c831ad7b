"""The Daemon view drives a real `raid` subprocess: start, its log, its heartbeat, stop, a crash, and a
job it runs (submitted through the console's own rai-server) cancelled from the console's tail."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
import yaml

from rai.domain.models import JobState
from raitui.daemon_control import DaemonState, LocalDaemon, config_file_for
from tests.fixtures.tui import TuiEnv, wait_for

pytestmark = pytest.mark.anyio
SIZE = (130, 30)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def daemon_log(app) -> str:
    return "\n".join(app.views["daemon"].query_one("#daemon-log").lines)


def node_up(env: TuiEnv) -> bool:
    return any(n.name == env.node and n.heartbeat for n in env.backends.live.nodes())


async def test_start_and_stop_a_real_raid(tui_env, test_image):
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        assert "stopped" in str(app.views["daemon"].query_one("#daemon-status").render())
        await pilot.press("s")
        daemon = app.daemon
        assert daemon.status().state == DaemonState.running
        await wait_for(pilot, lambda: node_up(tui_env), timeout=30, what="raid's heartbeat")
        await wait_for(pilot, lambda: f"on node {tui_env.node}" in daemon_log(app), what="raid's log in the view")
        await wait_for(pilot, lambda: "running" in str(app.views["daemon"].query_one("#daemon-status").render()),
                       what="the state shown")
        await pilot.press("3")  # the node shows up in the Nodes view too
        table = app.views["nodes"].query_one("LiveTable")
        await wait_for(pilot, lambda: tui_env.node in [r.key.value for r in table.ordered_rows], what="the node")
        await pilot.press("4", "x")
        await wait_for(pilot, lambda: daemon.status().state == DaemonState.stopped, timeout=30, what="raid stopped")
        assert daemon.status().exit_code == 0
        await wait_for(pilot, lambda: not node_up(tui_env), what="the heartbeat gone")
        await wait_for(pilot, lambda: "raid stopped" in daemon_log(app), what="the stop in the log")


async def test_a_crashing_raid_shows_its_exit_code_and_the_console_lives_on(tmp_path, redis_client, redis_url):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = TuiEnv(tmp_path, f"redis://127.0.0.1:{port}/0")  # raid cannot reach Redis: it exits at once
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4", "s")
        await wait_for(pilot, lambda: app.daemon.status().state == DaemonState.crashed, timeout=30,
                       what="raid to exit")
        status = app.daemon.status()
        assert status.exit_code not in (0, None)
        await wait_for(pilot, lambda: "crashed" in str(app.views["daemon"].query_one("#daemon-status").render()),
                       what="crashed shown")
        await wait_for(pilot, lambda: "Redis" in daemon_log(app), what="raid's reason in the view")
        assert "Traceback" not in daemon_log(app)
        await pilot.press("1", "2", "4")
        assert app.is_running


async def test_killed_raid_is_shown_crashed(tui_env, test_image):
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4", "s")
        await wait_for(pilot, lambda: node_up(tui_env), timeout=30, what="raid's heartbeat")
        os.kill(app.daemon.status().pid, signal.SIGKILL)
        await wait_for(pilot, lambda: app.daemon.status().state == DaemonState.crashed, what="crashed")
        assert app.daemon.status().exit_code == -signal.SIGKILL
        await wait_for(pilot, lambda: "killed by signal 9" in str(app.views["daemon"].query_one("#daemon-status")
                                                                    .render()), what="the signal shown")
        await pilot.press("s")  # and it starts again
        await wait_for(pilot, lambda: app.daemon.status().state == DaemonState.running, what="running again")


async def test_cancel_a_running_job_of_the_local_raid(tui_env, test_image, tmp_path):
    from keygen.accounts import create_account
    from rai.client.core import Client
    from rai.client.profile import Profile
    from raitui.components.job_tail import JobTailScreen

    b = tui_env.backends
    account = create_account(b.accounts, list(b.config.roles), "ada", "ada@example.edu", team="t1")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "rai_build.yml").write_text(yaml.safe_dump({
        "rai": {"version": 0.2, "image": test_image},
        "commands": {"build": ["echo started; echo to stderr >&2; sleep 60"]},
    }))
    app = tui_env.app(start_server=True)  # the job goes in through the console's own rai-server
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4", "s")
        await wait_for(pilot, lambda: node_up(tui_env), timeout=30, what="raid's heartbeat")
        await wait_for(pilot, lambda: app.server.status().ready, timeout=60, what="rai-server's /healthz")
        job_id = Client(tui_env.config, Profile.from_account(account)).submit(project, queue=tui_env.queue).job_id
        await pilot.press("1")
        await wait_for(pilot, lambda: app.views["jobs"].table.selected_key() == job_id, what="the job listed")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobTailScreen), what="the tail")
        tail = app.screen
        await wait_for(pilot, lambda: "started" in tail.log_view.text_lines(), timeout=60, what="the job's output")
        await pilot.press("ctrl+d", "y")
        await wait_for(pilot, lambda: any("cancelled by raitui-operator" in line
                                          for line in tail.log_view.text_lines()), timeout=30, what="the end")
        assert b.live.get_job(job_id).state == JobState.cancelled
        assert "to stderr" in tail.log_view.text_lines()


async def test_raid_does_not_outlive_the_console(tui_env, test_image):
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4", "s")
        await wait_for(pilot, lambda: node_up(tui_env), timeout=30, what="raid's heartbeat")
        app.exit()  # not `q`: as when the terminal closes
    deadline = time.monotonic() + 15
    while app.daemon.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not app.daemon.running
    assert app.daemon.status().exit_code == 0


async def test_no_second_raid_under_a_living_node_name(tui_env):
    from rai.domain.models import NodeHeartbeat

    tui_env.backends.live.beat(NodeHeartbeat(node=tui_env.node, host="elsewhere", arch="amd64", version="0.1.0",
                                             queue=tui_env.queue, capacity=2), ttl=60)
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4", "s")
        await pilot.pause(0.5)
        assert app.daemon.status().state == DaemonState.stopped and app.daemon.status().pid is None
        assert any("already runs as node" in str(n.message) for n in app._notifications)


def test_config_file_for_raid(tmp_path):
    from rai.config import Config

    assert config_file_for(Config(), tmp_path) is None  # embedded defaults: raid finds the same
    named = Config()
    named.source = "/etc/rai/config.yml"
    assert config_file_for(named, tmp_path) == "/etc/rai/config.yml"
    custom = Config.model_validate({"pubsub": {"url": "redis://10.0.0.1:6379/0"}})
    path = config_file_for(custom, tmp_path)
    assert yaml.safe_load(open(path))["pubsub"]["url"] == "redis://10.0.0.1:6379/0"
    assert os.stat(path).st_mode & 0o077 == 0


def test_stop_of_a_stuck_process_is_bounded(tmp_path, monkeypatch):
    """A child that ignores SIGTERM is killed in the end: stop never hangs."""
    from rai.config import Config

    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('de' + 'af', flush=True); time.sleep(60)"]
    monkeypatch.setattr("raitui.daemon_control.raid_command", lambda _config, _extra: stubborn)
    d = LocalDaemon(Config(), log_path=tmp_path / "raid.log", run_dir=tmp_path)
    d.start()
    deadline = time.monotonic() + 10
    while "\ndeaf" not in (tmp_path / "raid.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    began = time.monotonic()
    status = d.stop(grace=0.3, hand_back_after=0.3)
    assert time.monotonic() - began < 5
    assert status.state == DaemonState.stopped and status.exit_code == -signal.SIGKILL
