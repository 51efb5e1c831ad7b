"""rai.redis_server.connect: an answering client, a local redis-server started when none answers, clear errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rai import redis_server
from rai.errors import ServiceUnavailable
from rai.redis_server import connect
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


def test_two_processes_racing_to_start_it_share_one_server(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "RAI_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    code = (
        "import json, sys\n"
        "from rai.redis_server import connect\n"
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
