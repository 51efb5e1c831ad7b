"""What the console starts besides raid, and what it leaves running when it quits: a real `rai-server`
child (its /healthz, its line on the Daemon view, none when another answers, its crash), and a real
`redis-server` on a free port that the console's own connect started (SHUTDOWN on quit) or found
running (left alone, and said so)."""

from __future__ import annotations

import http.server
import socket
import threading

import httpx
import pytest
import redis

from raitui.daemon_control import DaemonState
from raitui.local_redis import RedisAtStart, answers
from tests.fixtures.redis import free_port, shutdown, start_redis, wait_until
from tests.fixtures.tui import TuiEnv, wait_for

pytestmark = pytest.mark.anyio
SIZE = (160, 30)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def server_line(app) -> str:
    return str(app.views["daemon"].query_one("#server-status").render())


def notes(app) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


async def test_the_console_starts_a_rai_server_and_stops_it_on_quit(tui_env):
    app = tui_env.app(start_server=True)
    url = tui_env.config.server.url
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.server.status().ready, timeout=60, what="rai-server's /healthz")
        assert httpx.get(f"{url}/healthz", trust_env=False).status_code == 200
        status = app.server.status()
        assert status.state == DaemonState.running and status.pid
        assert "--listen" in status.command and tui_env.config.server.listen in status.command
        await pilot.press("4")
        await wait_for(pilot, lambda: "running" in server_line(app) and url in server_line(app)
                       and f"pid {status.pid}" in server_line(app), what="its line on the Daemon view")
        assert f"rai-server answers at {url}" in notes(app)
        assert tui_env.server_log.exists()
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, timeout=30, what="the console to quit")
    assert not app.server.running
    assert app.server.status().state == DaemonState.stopped
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", trust_env=False, timeout=1)
    assert app.finish() == ["stopped: rai-server"]


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


async def test_no_second_rai_server_where_one_answers(tui_env):
    host, port = tui_env.config.server.listen_address()
    other = http.server.ThreadingHTTPServer((host, port), _Health)  # another console's server
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        app = tui_env.app(start_server=True)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.server.status().elsewhere, what="the other server noticed")
            assert app.server.status().pid is None and not app.server.running
            await wait_for(pilot, lambda: "already answers" in notes(app), what="the notice")
            await pilot.press("4")
            await wait_for(pilot, lambda: "started none" in server_line(app), what="said on the Daemon view")
            await pilot.press("q")
        lines = app.finish()
        assert lines == [f"left running: rai-server at {tui_env.config.server.url} (it was answering before the "
                         "console started, so the console started none)"]
    finally:
        other.shutdown()
        other.server_close()


async def test_a_rai_server_that_cannot_start_says_why(tui_env):
    host, port = tui_env.config.server.listen_address()
    with socket.socket() as taken:  # the port is held by something that is no HTTP server
        taken.bind((host, port))
        taken.listen()
        app = tui_env.app(start_server=True, server_ready_timeout=20)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.server.status().state == DaemonState.crashed, timeout=30,
                           what="rai-server to fail")
            await wait_for(pilot, lambda: "rai-server is not ready: it ended" in notes(app), timeout=30,
                           what="the reason")
            await pilot.press("4")
            await wait_for(pilot, lambda: "crashed" in server_line(app) and "exit code" in server_line(app),
                           what="crashed on the Daemon view")
            assert app.is_running
            await pilot.press("q")
        assert app.finish() == []  # it ended by itself: nothing was stopped, nothing is left


async def test_quitting_stops_the_redis_the_console_started(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))  # where connect() keeps its server's files
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = TuiEnv(tmp_path, url, start_local=True)
    at_start = RedisAtStart.probe(env.config)
    assert at_start.local and not at_start.answered
    try:
        app = env.app(redis_at_start=at_start)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.snapshot is not None and not app.snapshot.redis_error, timeout=30,
                           what="the console's connect to start Redis")
            assert answers(url, port)
            await pilot.press("q")
        assert app.finish() == ["stopped: redis-server"]
        assert not answers(url, port)
        assert (tmp_path / "data" / "redis" / f"redis-{port}.log").exists()  # it was connect()'s server
    finally:
        shutdown(url)


async def test_quitting_leaves_a_redis_others_still_use(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = TuiEnv(tmp_path, url, start_local=True)
    at_start = RedisAtStart.probe(env.config)
    try:
        app = env.app(redis_at_start=at_start)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.snapshot is not None and not app.snapshot.redis_error, timeout=30,
                           what="Redis started")
            other = redis.Redis(connection_pool=redis.ConnectionPool(**env.backends.redis.connection_pool
                                                                     .connection_kwargs))
            other.ping()  # someone else (a second console, a raid) uses it too
            await pilot.press("q")
        [line] = app.finish()
        assert line == (f"left running: redis-server on 127.0.0.1:{port} "
                        "(the console started it, but 1 other client still uses it)")
        assert other.ping()
        other.close()
        # a console started now finds it running (with the password connect() keeps for the port)
        assert RedisAtStart.probe(env.config).answered
    finally:
        shutdown(url)


async def test_quitting_leaves_a_redis_that_ran_before(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    server = start_redis(tmp_path / "before")
    try:
        env = TuiEnv(tmp_path, server.url, start_local=True)
        at_start = RedisAtStart.probe(env.config)
        assert at_start.answered
        app = env.app(redis_at_start=at_start)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.snapshot is not None and not app.snapshot.redis_error, what="Redis")
            await pilot.press("q")
        assert app.finish() == [f"left running: redis-server on 127.0.0.1:{server.port} "
                                "(it was running before the console started)"]
        assert wait_until(lambda: answers(server.url, server.port), what="Redis still up")
    finally:
        server.stop()


def test_probe_of_nothing_and_of_a_remote_url(tmp_path):
    from rai.config import Config

    port = free_port()
    local = RedisAtStart.probe(Config.model_validate({"pubsub": {"url": f"redis://localhost:{port}/0"}}))
    assert local.local and not local.answered and local.where == f"localhost:{port}"
    remote = RedisAtStart.probe(Config.model_validate({"pubsub": {"url": "redis://:pw@10.255.255.1:6379/0"}}),
                                timeout=0.2)
    assert not remote.local and remote.where == "10.255.255.1:6379"  # no password in what it names
