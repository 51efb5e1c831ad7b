"""The client's side of rai-server's HTTP API: every request signed (rai/domain/signing.py), certificates
verified (`server.ca_bundle` for a private CA), refusals turned into the client's errors, and a log
followed as Server-Sent Events that resumes with `Last-Event-ID` after a dropped connection.

The client holds the server's URL and the user's profile, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from rai import __version__
from rai.client.profile import Profile
from rai.client.refusals import refusal, unreachable
from rai.client.settings import ca_bundle_file
from rai.config import ServerConfig
from rai.domain.signing import EMPTY_SHA256, UNSIGNED_PAYLOAD, authorization_headers
from rai.errors import ServiceUnavailable, UserError

# httpx's own command line (httpx._main) loads rich's progress bars and syntax highlighting and pygments, a
# third of what `import httpx` costs; rai never runs it, so that import fails as httpx expects when its
# [cli] extra is missing (httpx.main then only says how to install it).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx  # noqa: E402

log = logging.getLogger("rai.client.api")

RECONNECT_FOR = 120.0  # seconds a follower keeps reconnecting through a dropped connection
READ_IDLE = 60.0  # seconds without a byte (the server pings every 15) before a log connection counts as dropped


class ServerAPI:
    def __init__(self, server: ServerConfig, profile: Profile):
        self.base = server.url.rstrip("/")
        self.prefix = urlsplit(self.base).path.rstrip("/")  # a server behind a proxy at https://host/rai
        self.profile = profile
        self.timeout = server.timeout
        verify: bool | ssl.SSLContext = True
        if urlsplit(self.base).scheme == "http":
            # No TLS to a plain-http server (a local one): an empty context instead of loading certifi's bundle
            # (~50 ms of every command). It trusts no certificate, so a TLS connection through it would fail.
            verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        elif (bundle := ca_bundle_file(server.ca_bundle)) is not None:
            verify = ssl.create_default_context(cafile=str(bundle))
        self.http = httpx.Client(base_url=self.base, verify=verify, timeout=httpx.Timeout(self.timeout, connect=10),
                                 headers={"User-Agent": f"rai/{__version__}"}, follow_redirects=False)

    # --- one request --------------------------------------------------------------------------

    def _headers(self, method: str, path: str, params: dict | None, digest: str) -> dict[str, str]:
        query = [(k, str(v)) for k, v in (params or {}).items() if v is not None]
        return authorization_headers(self.profile.access_key, self.profile.secret_key, method, self.prefix + path,
                                     query, digest)

    def request(self, method: str, path: str, params: dict | None = None, body: dict | str | None = None,
                content: Iterable[bytes] | None = None, headers: dict | None = None,
                timeout: float | None = None) -> httpx.Response:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        data: bytes | None = None
        if body is not None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            digest = hashlib.sha256(data).hexdigest()
        else:
            digest = UNSIGNED_PAYLOAD if content is not None else EMPTY_SHA256
        hdrs = {**self._headers(method, path, params, digest), **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            response = self.http.request(method, path, params=params, content=data if data is not None else content,
                                         headers=hdrs,
                                         timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        if response.status_code >= 300:  # a redirect too: this API never sends one, a proxy in the way might
            raise self.problem(response)
        return response

    def get(self, path: str, **params) -> dict:
        return self.request("GET", path, params=params).json()

    def _unreachable(self, e: httpx.HTTPError) -> ServiceUnavailable:
        return unreachable(self.base, str(e) or type(e).__name__, isinstance(e, httpx.TimeoutException), self.timeout)

    def problem(self, response: httpx.Response) -> UserError:
        """The error a refused request raises: the server's message and hint, the exit code by its status."""
        try:
            response.read()
            data = response.json()
        except (ValueError, httpx.HTTPError):
            data = {}
        return refusal(response.status_code, data, response.headers.get("retry-after"))

    # --- the log, as Server-Sent Events --------------------------------------------------------

    def follow_log(self, path: str, after: str | None = None, live: bool = True,
                   on_gap: Callable[[str], None] | None = None) -> Iterator[tuple[str, str | None, str]]:
        """(event, id, data) of the job's log at `path` (/v1/jobs/ID/log) from after `after` (None: the first
        entry) until the server closes it after the end entry (`live` False: once it has sent what there is
        now); reconnects with Last-Event-ID through dropped connections for up to RECONNECT_FOR seconds,
        telling `on_gap` once per outage."""
        from httpx_sse import EventSource

        params = None if live else {"live": "false"}
        last = after
        failing_since: float | None = None
        delay = 0.2
        while True:
            headers = self._headers("GET", path, params, EMPTY_SHA256)
            headers["Accept"] = "text/event-stream"
            if last:
                headers["Last-Event-ID"] = last
            try:
                with self.http.stream("GET", path, params=params, headers=headers,
                                      timeout=httpx.Timeout(self.timeout, read=READ_IDLE)) as response:
                    if response.status_code >= 300:
                        raise self.problem(response)
                    failing_since, delay = None, 0.2
                    for sse in EventSource(response).iter_sse():
                        if sse.id:
                            last = sse.id
                        yield sse.event, sse.id or None, sse.data
                        if sse.event == "end":
                            return
                    if not live:
                        return
                    # the server closed the stream without an end: it lost its log store for a moment
            except httpx.HTTPError as e:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    if on_gap is not None:
                        on_gap(f"lost the connection to the rai server ({type(e).__name__}); reconnecting")
                elif now - failing_since > RECONNECT_FOR:
                    raise self._unreachable(e) from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def download(self, path: str, dest: Path) -> None:
        """GET `path` into the file `dest`, streamed."""
        headers = self._headers("GET", path, None, EMPTY_SHA256)
        try:
            with self.http.stream("GET", path, headers=headers,
                                  timeout=httpx.Timeout(self.timeout, read=120)) as response:
                if response.status_code >= 300:
                    raise self.problem(response)
                with open(dest, "wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None

    def close(self) -> None:
        self.http.close()
