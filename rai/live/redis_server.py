"""Connect to Redis, starting a local `redis-server` when the URL is local and nothing answers.

Redis is the one server even the embedded default needs, so a newcomer never has to start it: when
`pubsub.url` points at this machine (127.0.0.1, localhost, ::1) and nothing answers there, `connect`
starts `redis-server` as a daemon bound to that address and port only, with append-only persistence
(queued jobs survive a restart) and its files under `data_dir()/redis`:

- `redis-<port>.conf`  the configuration written before each start (mode 0600)
- `redis-<port>.password`  the server's password (mode 0600, in a 0700 folder), made once
- `redis-<port>.log`   its log, `redis-<port>.pid` its pid file
- `appendonly-<port>.aof*` (inside `appendonlydir/` on Redis 7) and `dump-<port>.rdb`: its data

The server it starts for a URL without credentials asks for a password (`requirepass`) that rai
generates once (`secrets.token_urlsafe(24)`) and keeps in `redis-<port>.password`; every later
`connect` to that URL reads it from there (`local_password`), so raid, the console and rai-server
sharing the embedded default config (`redis://127.0.0.1:6379/0`) and data folder share the server
without anybody typing a password. When a Redis that is not rai's and has no password answers there
(a developer's own), connect falls back to using it without one. A URL with its own credentials always
wins: they are used as given, and a server started for them requires that password.

Two processes racing to start it serialise on a lock file; the second finds the first one's server.
Every failure is a `ServiceUnavailable` naming the URL with a hint, never a traceback.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from pathlib import Path
from urllib.parse import SplitResult, quote, unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from rai.config import data_dir
from rai.errors import ServiceUnavailable
from rai.live.redis_process import (
    INSTALL_HINT,
    ensure_password,
    hide,
    local_password,
    password_file,
    run_server,
    start_lock,
)

LOCAL_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
CONNECT_TIMEOUT = 3.0  # seconds to open a TCP connection before calling Redis unreachable
PROBE_TIMEOUT = 5.0  # seconds a PING may take before whatever listens there counts as not Redis
LOADING_WAIT = 120.0  # seconds a server still loading its data (a big append-only file) may take


def network_hint(port: int) -> str:
    return (
        "check pubsub.url in the config and that the Redis server runs; "
        f"a campus or company network may block port {port} (try a VPN or an SSH tunnel)"
    )


def connect(url: str, start_local: bool = True) -> redis.Redis:
    """A client (bytes replies) for `url` that has answered PING; starts a local server if needed."""
    parts = _parse(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 6379
    shown = _redact(url)
    bind = LOCAL_HOSTS.get(host.lower()) if parts.scheme in ("redis", "") else None
    embedded = bind is not None and not (parts.username or parts.password)
    target, probe, problem = _probe_embedded(url, shown, port) if embedded else _probe(url, shown)
    if problem is None:
        probe.close()
        return _answering_client(target, shown, port)
    probe.close()
    if bind is None:
        raise ServiceUnavailable(f"Redis at {shown} does not answer: {problem}", hint=network_hint(port))
    if not start_local:
        raise ServiceUnavailable(
            f"Redis at {shown} does not answer: {problem}",
            hint="start redis-server, or set pubsub.start_local: true so rai starts one itself",
        )
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceUnavailable(
            f"Redis at {shown} does not answer and redis-server is not installed to start one", hint=INSTALL_HINT
        )
    target = _start_local(server, url, shown, bind, port, embedded)
    return _answering_client(target, shown, port)


class _NoPasswordSet(Exception):
    """The server has no password, yet the client sent the embedded one: a Redis that is not rai's."""


class _PasswordWanted(ServiceUnavailable):
    """The server wants a password the client did not send."""


def _probe(url: str, shown: str, password_file: Path | None = None) -> tuple[str, redis.Redis, str | None]:
    """(url, a client without retries, None when it answered PING or else why not)."""
    probe = _client(url, retries=0)
    try:
        return url, probe, _ping(probe, shown, password_file)
    except BaseException:
        probe.close()
        raise


def _probe_embedded(url: str, shown: str, port: int) -> tuple[str, redis.Redis, str | None]:
    """`_probe` for a local URL without credentials: with the password rai keeps for the port, if any;
    without it when the Redis answering there has none (not one rai started)."""
    password = local_password(port)
    if password is None:
        try:
            return _probe(url, shown)
        except _PasswordWanted as e:
            password = local_password(port)  # another process may have just made it and started the server
            if password is None:
                e.hint = (f"if rai started it for another user or data folder, its password is in that folder's "
                          f"redis/redis-{port}.password (this one's is {password_file(port)}): run with the same "
                          f"RAI_DATA_DIR, or put the password in pubsub.url: redis://:PASSWORD@host:{port}/0")
                raise
    try:
        return _probe(_with_password(url, password), shown, password_file(port))
    except _NoPasswordSet:
        return _probe(url, shown)


def _with_password(url: str, password: str) -> str:
    """`url` (which has no credentials) with `password` for the default user."""
    parts = urlsplit(url)
    return parts._replace(netloc=f":{quote(password, safe='')}@{parts.netloc}").geturl()


def _parse(url: str):
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        raise ServiceUnavailable(f"pubsub.url {_redact(url)!r} is not a valid Redis URL: {_scrub(str(e), url)}",
                                 hint="write it as redis://host:6379/0") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ServiceUnavailable(f"pubsub.url {_redact(url)!r} is not a Redis URL",
                                 hint="write it as redis://host:6379/0 (rediss:// for TLS)")
    return parts


def _redact(url: str) -> str:
    """The URL without its password, for messages (even a URL that does not parse)."""
    parts: SplitResult | None
    password: str | None
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        parts = password = None
    if parts is not None and password is None:
        return url
    if parts is not None and "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return parts._replace(netloc=f"{user}:***@{netloc}").geturl()
    # Unparseable: hide whatever stands between "//" and the last "@" of the authority.
    return re.sub(r"(//)([^/?#]*@)", lambda m: m.group(1) + "***@", url, count=1)


def _scrub(text: str, url: str) -> str:
    """`text` with the password of `url` (as written and percent-decoded) replaced by ***."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return _redact(text)
    for secret in {password or "", unquote(password or "")} - {""}:
        text = text.replace(secret, "***")
    return text


def _client(url: str, retries: int) -> redis.Redis:
    if retries:
        retry = Retry(ExponentialWithJitterBackoff(base=0.02, cap=1.0), retries)
    else:
        retry = Retry(NoBackoff(), 0)
    try:
        return redis.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=None if retries else PROBE_TIMEOUT,
            socket_keepalive=True,
            health_check_interval=30,
            retry=retry,
        )
    except ValueError as e:
        raise ServiceUnavailable(f"pubsub.url {_redact(url)!r} is not a valid Redis URL: {_scrub(str(e), url)}",
                                 hint="write it as redis://host:6379/0") from None


def _answering_client(url: str, shown: str, port: int) -> redis.Redis:
    """The client handed out: retries connection blips itself (about 10 s in all)."""
    client = _client(url, retries=10)
    try:
        problem = _ping(client, shown)
    except BaseException:
        client.close()
        raise
    if problem is not None:
        client.close()
        raise ServiceUnavailable(f"Redis at {shown} does not answer: {_scrub(problem, url)}", hint=network_hint(port))
    return client


def _says_password_wanted(e: Exception) -> bool:
    """The server wants a password the client did not send (RESP2: NOAUTH; RESP3: HELLO refused)."""
    text = str(e)
    return "NOAUTH" in text or "Authentication required" in text or "already authenticated" in text


def _says_no_password(e: Exception) -> bool:
    text = str(e).lower()
    return "without any password configured" in text or "no password is set" in text


def _ping(client: redis.Redis, shown: str, password_file: Path | None = None) -> str | None:
    """None when PING is answered; else why not. Waits for a server still loading its data.

    `password_file`: the client sends the password kept there (the embedded one); a server that has
    no password raises _NoPasswordSet, one with another password says so naming the file."""
    secret = client.connection_pool.connection_kwargs.get("password")
    deadline = time.monotonic() + LOADING_WAIT
    while True:
        try:
            client.ping()
            return None
        except redis.exceptions.BusyLoadingError:
            if time.monotonic() > deadline:
                return "it is still loading its data"
            time.sleep(0.1)
        except (redis.exceptions.AuthenticationError, redis.exceptions.AuthenticationWrongNumberOfArgsError) as e:
            said = hide(str(e), secret)
            if password_file is not None:
                if _says_no_password(e):
                    raise _NoPasswordSet() from None
                raise ServiceUnavailable(
                    f"Redis at {shown} refused the password rai keeps for it in {password_file}: {said}",
                    hint="another Redis with its own password holds the port: put that password in pubsub.url "
                         f"(redis://:PASSWORD@host:port/0), or stop it and remove {password_file}",
                ) from None
            if _says_password_wanted(e):
                raise _PasswordWanted(f"Redis at {shown} wants a password: {said}",
                                      hint="put it in pubsub.url: redis://:PASSWORD@host:6379/0") from None
            raise ServiceUnavailable(f"Redis at {shown} refused the credentials: {said}",
                                     hint="check the password in pubsub.url") from None
        except redis.exceptions.ResponseError as e:
            said = hide(str(e), secret)
            if "NOAUTH" in str(e) or "WRONGPASS" in str(e):
                raise _PasswordWanted(f"Redis at {shown} wants a password: {said}",
                                      hint="put it in pubsub.url: redis://:PASSWORD@host:6379/0") from None
            return said
        except (redis.exceptions.RedisError, OSError) as e:
            return hide(str(e), secret) or type(e).__name__


def _start_local(server: str, url: str, shown: str, bind: str, port: int, embedded: bool) -> str:
    """Start redis-server for `url` (unless another process did meanwhile); the URL to connect with.

    `embedded`: the URL has no credentials, so the server gets the password kept for its port (made now
    when there is none yet)."""
    folder = data_dir() / "redis"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise ServiceUnavailable(
            f"Redis at {shown} does not answer, and its data folder {folder} cannot be created to start one: {e}",
            hint="set RAI_DATA_DIR to a writable folder",
        ) from None
    log_file = folder / f"redis-{port}.log"
    password: str | None
    with start_lock(folder / f"redis-{port}.lock"):
        if embedded:
            password = ensure_password(folder, port, shown)
            target = _with_password(url, password)
        else:
            password = unquote(urlsplit(url).password or "") or None
            target = url
        # Another process may have started it while this one waited for the lock.
        try:
            _, probe, problem = _probe(target, shown, password_file(port) if embedded else None)
        except _NoPasswordSet:  # a passwordless Redis (not rai's) started there meanwhile: use it as it is
            return url
        with contextlib.closing(probe):
            if problem is None:
                return target
            run_server(server, lambda: _ping(probe, shown), shown, bind, port, password, folder, log_file)
            return target


