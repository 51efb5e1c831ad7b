"""`rai submit`'s own connection to rai-server (rai/client/channel.py, the standard library's http.client):
HTTPS checked against the course's CA, a campus proxy passed through with CONNECT, and the student's config
read without the config's models exactly as load_config reads it (rai/client/settings.py)."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from rai.client.profile import load_profile
from rai.client.settings import ServerSettings, server_settings
from rai.config import load_config
from rai.errors import ServiceUnavailable, UserError
from tests.fixtures.server import client_of, self_signed


class ConnectProxy:
    """An HTTP proxy that takes CONNECT only (as a campus proxy does for HTTPS) and relays the tunnel."""

    def __init__(self):
        self.tunnels: list[str] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = b""
                while b"\r\n\r\n" not in head:
                    more = self.request.recv(4096)
                    if not more:
                        return
                    head += more
                method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                if method != "CONNECT":
                    self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                    return
                proxy.tunnels.append(target)
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pump = threading.Thread(target=relay, args=(upstream, self.request), daemon=True)
                pump.start()
                relay(self.request, upstream)
                pump.join(10)

        def relay(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(1 << 16):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_submit_over_https_with_the_courses_ca_and_through_a_proxy(rai_env, serve, tmp_path, no_proxy_env):
    env = rai_env
    cert, key = self_signed(tmp_path)
    https = serve(load_config(env.config_path), tls=(cert, key))
    ada = load_profile(env.account("ada"))
    proj = env.project(["true"], name="tls")
    (proj / "data.txt").write_text("rai over TLS\n" * 50_000)
    # without the course's CA: refused before anything is sent, saying what to set
    with pytest.raises(ServiceUnavailable, match="certificate") as refused:
        client_of(https, ada).submit(proj)
    assert "server.ca_bundle" in refused.value.hint
    sub = client_of(https, ada, ca_bundle=cert).submit(proj)
    assert env.backends.live.get_job(sub.job_id).state.value == "queued" and sub.files == 3
    proxy = ConnectProxy()
    try:
        no_proxy_env.setenv("https_proxy", proxy.url)
        through = client_of(https, ada, ca_bundle=cert).submit(proj)
        assert env.backends.live.get_job(through.job_id).state.value == "queued"
        assert proxy.tunnels == [f"127.0.0.1:{https.port}"]  # whoami, upload and job request: one tunnel
        no_proxy_env.setenv("no_proxy", "127.0.0.1")  # named in NO_PROXY: straight to the server
        client_of(https, ada, ca_bundle=cert).submit(proj)
        assert len(proxy.tunnels) == 1
    finally:
        proxy.stop()


def test_a_proxy_that_does_not_answer_is_said_in_words(rai_env, no_proxy_env):
    env = rai_env
    env.start_server()
    ada = load_profile(env.account("ada"))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    no_proxy_env.setenv("http_proxy", f"http://127.0.0.1:{port}")
    with pytest.raises(ServiceUnavailable, match="cannot reach the rai server") as refused:
        client_of(type("S", (), {"url": env.server_url})(), ada).submit(env.project(["true"]))
    assert "network connection" in refused.value.hint


CONFIGS = {
    "empty": "",
    "url only": "server:\n  url: https://rai.example.edu/\n",
    "all three": "server:\n  url: http://h:1\n  timeout: 5\n  ca_bundle: ~/course-ca.pem\n",
    "no server": "server:\n",
    "empty server": "server: {}\n",
    "a duration in words": "server:\n  url: http://h:1\n  timeout: 90s\n",
    "an operator's config": "pubsub:\n  url: redis://x:6379/0\nserver:\n  url: http://h:2\n  listen: 0.0.0.0:1\n",
    "not a URL": "server:\n  url: ftp://h\n",
    "a typo": "server:\n  urll: http://h\n",
    "a URL that is a list": "server:\n  url: [1]\n",
    "a negative timeout": "server:\n  timeout: -1\n",
    "a timeout that is yes": "server:\n  timeout: true\n",
    "a list": "- a\n- b\n",
    "not YAML": "server: [unclosed\n",
    "an unknown section": "sever:\n  url: http://h\n",
}


@pytest.mark.parametrize("text", CONFIGS.values(), ids=CONFIGS.keys())
def test_the_students_config_reads_as_load_config_reads_it(text, tmp_path):
    p = tmp_path / "rai.yml"
    p.write_text(text)
    try:
        expected = ServerSettings.of(load_config(p).server)
    except UserError as e:
        with pytest.raises(UserError) as got:
            server_settings(p)
        assert str(got.value) == str(e)
    else:
        assert server_settings(p) == expected


def test_a_missing_config_is_the_defaults_unless_it_was_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAI_CONFIG", raising=False)
    assert server_settings() == ServerSettings.of(load_config().server) == ServerSettings()
    with pytest.raises(UserError, match="does not exist") as named:
        server_settings(tmp_path / "nope.yml")
    with pytest.raises(UserError) as model:
        load_config(tmp_path / "nope.yml")
    assert str(named.value) == str(model.value)


def test_an_encrypted_ca_bundle_goes_to_load_config(tmp_path):
    """The lean reader knows an encrypted value by rai.crypto's own marker, and leaves it to load_config."""
    from rai import crypto
    from rai.client import settings

    assert settings.ENCRYPTED == crypto.PREFIX
    p = tmp_path / "rai.yml"
    p.write_text(f"server:\n  url: http://h:1\n  ca_bundle: '{crypto.PREFIX}AAAA'\n")
    assert settings._plain(p.read_bytes()) is None
