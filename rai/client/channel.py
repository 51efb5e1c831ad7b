"""One signed HTTP/1.1 connection to rai-server on the standard library's http.client: what `rai submit` talks
over — whoami, the upload (chunked, sent as it is packed) and the job request, one after the other on one
kept-alive connection, so one TCP and TLS handshake for the whole submit — without waiting for httpx and its
dependencies to load (about a tenth of a second of CPU that the packing would otherwise share).

Every request is signed as rai/client/api.py signs it (rai/domain/signing.py); certificates are verified
against `server.ca_bundle`, else certifi's bundle as httpx does; refusals and an unreachable server are the
same errors (rai/client/refusals.py). A proxy named in the environment (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY,
minus NO_PROXY) is passed through with CONNECT.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import threading
from collections.abc import Callable, Iterable
from urllib.parse import unquote, urlsplit

from rai import __version__
from rai.client.refusals import refusal, unreachable
from rai.client.settings import ServerSettings, ca_bundle_file
from rai.domain.signing import EMPTY_SHA256, UNSIGNED_PAYLOAD, authorization_headers
from rai.errors import UserError


def _chunked(pieces: Iterable[bytes | memoryview]) -> Iterable[bytes | memoryview]:
    """HTTP/1.1 chunked framing around each piece, the piece itself not copied (http.client's own framing
    joins them)."""
    for piece in pieces:
        if piece:
            yield b"%X\r\n" % len(piece)
            yield piece
            yield b"\r\n"
    yield b"0\r\n\r\n"


class Channel:
    """Requests to the server at `server.url`, signed with the user's keys, one at a time."""

    def __init__(self, server: ServerSettings, access_key: str, secret_key: str):
        parts = urlsplit(server.url)
        self.base = server.url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")  # a server behind a proxy at https://host/rai
        self.timeout = server.timeout
        self.ca_bundle = ca_bundle_file(server.ca_bundle) if self.https else None
        self.access_key, self.secret_key = access_key, secret_key
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None:
            return self._conn
        proxy = None
        if any(name.lower().endswith("_proxy") for name in os.environ):  # urllib.request costs 10 ms to load
            from urllib.request import getproxies, proxy_bypass

            proxy = None if proxy_bypass(self.host) else getproxies().get("https" if self.https else "http")
        target = urlsplit(proxy if "://" in (proxy or "") else f"http://{proxy}") if proxy else None
        host, port = (target.hostname or "", target.port or 3128) if target else (self.host, self.port)
        if self.https:
            import ssl

            if self.ca_bundle is not None:
                context = ssl.create_default_context(cafile=str(self.ca_bundle))
            else:
                import certifi

                context = ssl.create_default_context(cafile=certifi.where())
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, context=context,
                                                                           timeout=self.timeout)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        if target is not None:
            headers = {}
            if target.username:
                login = f"{unquote(target.username)}:{unquote(target.password or '')}".encode()
                headers["Proxy-Authorization"] = "Basic " + base64.b64encode(login).decode()
            conn.set_tunnel(self.host, self.port, headers=headers)
        self._conn = conn
        return conn

    def request(self, method: str, path: str, body: bytes | Iterable[bytes | memoryview] | None = None,
                content_type: str | None = None, timeout: float | None = None) -> dict:
        """The server's JSON answer to one request (`body` bytes, or an iterable sent as it comes, chunked);
        a refusal or no answer raises the client's error. An error raised by `body` itself stops the request
        (the connection is dropped) and is raised as it is."""
        if isinstance(body, bytes):
            digest = hashlib.sha256(body).hexdigest()
        else:
            digest = EMPTY_SHA256 if body is None else UNSIGNED_PAYLOAD
        headers = authorization_headers(self.access_key, self.secret_key, method, self.prefix + path, [], digest)
        headers["User-Agent"] = f"rai/{__version__}"
        if content_type:
            headers["Content-Type"] = content_type
        if body is not None and not isinstance(body, bytes):
            headers["Transfer-Encoding"] = "chunked"
            body = _chunked(body)
        wait = self.timeout if timeout is None else timeout
        conn = self._connection()
        conn.timeout = wait
        if conn.sock is not None:
            conn.sock.settimeout(wait)
        try:
            try:
                conn.request(method, self.prefix + path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server refused the body before it had all of it (413, 401): its answer says why
            response = conn.getresponse()
            data = response.read()
        except UserError:
            self.close()
            raise
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise unreachable(self.base, str(e) or type(e).__name__, isinstance(e, TimeoutError), wait) from None
        if response.will_close:
            self.close()
        try:
            answer = json.loads(data) if data else {}
        except ValueError:
            answer = {}
        if response.status >= 300:  # a redirect too: this API never sends one, a proxy in the way might
            raise refusal(response.status, answer, response.getheader("Retry-After"))
        return answer

    def later(self, method: str, path: str) -> Callable[[], dict]:
        """The request sent from a thread of its own while the caller goes on; call what this returns for the
        answer (or its error). The channel takes no other request until then."""
        done: list = []

        def run() -> None:
            try:
                done.append((True, self.request(method, path)))
            except BaseException as e:  # noqa: BLE001 - raised in the caller's thread
                done.append((False, e))

        thread = threading.Thread(target=run, name=f"rai-{method.lower()}", daemon=True)
        thread.start()

        def answer() -> dict:
            thread.join()
            ok, value = done[0]
            if not ok:
                raise value
            return value

        return answer

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
