"""rai.live.redis_server.connect: an answering client, a local redis-server started when none answers, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rai.errors import ServiceUnavailable
from rai.live import redis_server
from rai.live.redis_server import connect, local_password
from tests.fixtures.redis import free_port, shutdown

ROOT = Path(__file__).resolve().parent.parent


def test_connect_to_a_running_server(redis_url):
    client = connect(redis_url)
    assert client.ping() is True
    client.set("rai:test", "é")
    assert client.get("rai:test") == "é".encode()  # bytes replies (decode_responses=False)
    client.delete("rai:test")


def test_connect_starts_a_local_server_when_none_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    client = connect(url)
    try:
        assert client.ping() is True
        folder = tmp_path / "data" / "redis"
        assert (folder / f"redis-{port}.log").exists()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert Path(client.config_get("dir")["dir"]) == folder
        # a second connect finds it and starts nothing more
        pid = client.info("server")["process_id"]
        assert connect(url).info("server")["process_id"] == pid
    finally:
        shutdown(url, nosave=True)


def test_localhost_and_a_data_dir_with_spaces(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "Application Support" / "rai"))
    port = free_port()
    client = connect(f"redis://localhost:{port}")
    try:
        assert client.ping() is True
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
    finally:
        shutdown(f"redis://127.0.0.1:{port}", nosave=True)


def test_two_processes_racing_to_start_it_share_one_server(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))  # for shutdown(), which reads the password file
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "RAI_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    code = (
        "import json, sys\n"
        "from rai.live.redis_server import connect\n"
        "r = connect(sys.argv[1])\n"
        "print(json.dumps(r.info('server')['process_id']))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, url], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        results = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
        pids = {json.loads(out) for out, _ in results}
        assert len(pids) == 1
    finally:
        shutdown(url, nosave=True)


def test_an_unreachable_remote_server_is_a_clear_error():
    url = "redis://rai-test.invalid:6379/0"
    with pytest.raises(ServiceUnavailable) as e:
        connect(url)
    assert url in e.value.message
    assert "pubsub.url" in e.value.hint and "6379" in e.value.hint
    assert e.value.exit_code == 3


def test_the_password_is_not_shown():
    with pytest.raises(ServiceUnavailable) as e:
        connect("redis://:s3cret@rai-test.invalid:6379/0")
    assert "s3cret" not in str(e.value) and "***" in e.value.message


def test_a_local_url_without_start_local_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path))
    with pytest.raises(ServiceUnavailable) as e:
        connect(f"redis://127.0.0.1:{free_port()}/0", start_local=False)
    assert "start_local" in e.value.hint
    assert not (tmp_path / "redis").exists()


def test_redis_server_not_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    with pytest.raises(ServiceUnavailable) as e:
        connect(f"redis://127.0.0.1:{free_port()}/0")
    assert "not installed" in e.value.message and "install redis-server" in e.value.hint


def test_a_port_held_by_something_else(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    stop = threading.Event()

    def refuse():  # accept and hang up at once: not Redis
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                conn.close()
            except OSError:
                pass

    t = threading.Thread(target=refuse, daemon=True)
    t.start()
    try:
        with pytest.raises(ServiceUnavailable) as e:
            connect(f"redis://127.0.0.1:{port}/0")
        assert f"127.0.0.1:{port}" in e.value.message
        assert "port" in e.value.hint
    finally:
        stop.set()
        t.join(5)
        listener.close()


def test_a_bad_url_is_a_clear_error():
    with pytest.raises(ServiceUnavailable) as e:
        connect("http://127.0.0.1:6379")
    assert "redis://" in e.value.hint
    with pytest.raises(ServiceUnavailable):
        connect("redis://127.0.0.1:notaport/0")


# --- the embedded server's password --------------------------------------------------------------

def _bare(port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(port=port, password=password, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)


def test_a_started_server_refuses_a_client_without_its_password(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    client = connect(url)
    try:
        password = local_password(port)
        assert password and len(password) >= 32
        assert (tmp_path / "data" / "redis" / f"redis-{port}.password").read_text().strip() == password
        assert client.config_get("requirepass") == {"requirepass": password}
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        wanted = "(?i)authentication required|noauth|already authenticated"  # RESP2 / RESP3 wording
        with pytest.raises(redis.exceptions.AuthenticationError, match=wanted):
            _bare(port).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            _bare(port, "not-the-password").ping()
        # a second connect (another process: raid, the console) reads the password file
        pid = client.info("server")["process_id"]
        again = connect(url)
        assert again.info("server")["process_id"] == pid
        assert connect(f"redis://localhost:{port}").ping() is True
    finally:
        shutdown(url, nosave=True)
    assert local_password(port) == password  # the file stays, for the next start


def test_the_password_file_is_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    old = os.umask(0o022)  # restored below
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    folder = tmp_path / "data" / "redis"
    try:
        connect(url)
        password = local_password(port)
        assert stat.S_IMODE((folder / f"redis-{port}.password").stat().st_mode) == 0o600
        assert stat.S_IMODE((folder / f"redis-{port}.conf").stat().st_mode) == 0o600
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        shutdown(url, nosave=True)
        client = connect(url)  # starts it again: same password, from the file
        assert local_password(port) == password
        assert client.config_get("requirepass") == {"requirepass": password}
    finally:
        os.umask(old)
        shutdown(url, nosave=True)


def test_the_password_never_shows_in_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    # a "redis-server" that fails, printing its config (requirepass included)
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\ncat \"$1\"\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: str(fake))
    port = free_port()
    with pytest.raises(ServiceUnavailable) as e:
        connect(f"redis://127.0.0.1:{port}/0")
    password = local_password(port)
    assert password and "would not start" in e.value.message and "requirepass" in e.value.message
    assert password not in str(e.value) and "***" in e.value.message
    # the file's password against a server that is down, and with start_local off
    with pytest.raises(ServiceUnavailable) as e:
        connect(f"redis://127.0.0.1:{port}/0", start_local=False)
    assert password not in str(e.value)
    # a URL's own password, in URLs that do not parse
    for bad in ("redis://:s3cret@127.0.0.1:notaport/0", "redis://:s3cret@[::1/0", "http://:s3cret@127.0.0.1/0"):
        with pytest.raises(ServiceUnavailable) as e:
            connect(bad)
        assert "s3cret" not in str(e.value), bad


def _redis_with_password(folder: Path, password: str) -> tuple[subprocess.Popen, int]:
    """A redis-server (not rai's) on a free port that wants `password`."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                             "--requirepass", password, "--save", "", "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            if _bare(port, password).ping():
                return proc, port
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)


def test_a_passwordless_redis_that_is_not_ours_is_used_without_the_password(redis_url, redis_server, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "data" / "redis"
    folder.mkdir(parents=True)
    (folder / f"redis-{redis_server.port}.password").write_text("left-over-password\n")
    client = connect(redis_url)
    assert client.ping() is True
    assert client.config_get("requirepass") == {"requirepass": ""}


def test_another_redis_with_its_own_password_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    proc, port = _redis_with_password(tmp_path / "theirs", "their-password")
    try:
        # no password file: it wants a password
        with pytest.raises(ServiceUnavailable) as e:
            connect(f"redis://127.0.0.1:{port}/0")
        assert "wants a password" in e.value.message and f"redis-{port}.password" in e.value.hint
        # a password file that is not its password: says which file
        folder = tmp_path / "data" / "redis"
        folder.mkdir(parents=True)
        (folder / f"redis-{port}.password").write_text("our-password\n")
        with pytest.raises(ServiceUnavailable) as e:
            connect(f"redis://127.0.0.1:{port}/0")
        assert f"redis-{port}.password" in e.value.message and "our-password" not in str(e.value)
        # a URL with its own password always wins over the file
        assert connect(f"redis://:their-password@127.0.0.1:{port}/0").ping() is True
        with pytest.raises(ServiceUnavailable) as e:
            connect(f"redis://:wrong-password@127.0.0.1:{port}/0")
        assert "wrong-password" not in str(e.value) and "***" in e.value.message
    finally:
        proc.kill()
        proc.wait(10)


def test_a_url_with_its_own_password_starts_a_server_with_that_password(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    port = free_port()
    url = f"redis://:my%40pass@127.0.0.1:{port}/0"
    client = connect(url)
    try:
        assert client.config_get("requirepass") == {"requirepass": "my@pass"}
        assert local_password(port) is None  # no file: the URL carries it
        assert _bare(port, "my@pass").ping() is True
    finally:
        shutdown(url, nosave=True)
