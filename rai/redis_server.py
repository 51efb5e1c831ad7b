"""Connect to Redis, starting a local `redis-server` when the URL is local and nothing answers.

Redis is the one server even the embedded default needs, so a newcomer never has to start it: when
`pubsub.url` points at this machine (127.0.0.1, localhost, ::1) and nothing answers there, `connect`
starts `redis-server` as a daemon bound to that address and port only, with append-only persistence
(queued jobs survive a restart) and its files under `data_dir()/redis`:

- `redis-<port>.conf`  the configuration written before each start
- `redis-<port>.log`   its log, `redis-<port>.pid` its pid file
- `appendonly-<port>.aof*` (inside `appendonlydir/` on Redis 7) and `dump-<port>.rdb`: its data

Two processes racing to start it serialise on a lock file; the second finds the first one's server.
Every failure is a `ServiceUnavailable` naming the URL with a hint, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from rai.config import data_dir
from rai.errors import ServiceUnavailable

LOCAL_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
CONNECT_TIMEOUT = 3.0  # seconds to open a TCP connection before calling Redis unreachable
PROBE_TIMEOUT = 5.0  # seconds a PING may take before whatever listens there counts as not Redis
START_WAIT = 5.0  # seconds a freshly started server has to answer
LOADING_WAIT = 120.0  # seconds a server still loading its data (a big append-only file) may take


def network_hint(port: int) -> str:
    return (
        "check pubsub.url in the config and that the Redis server runs; "
        f"a campus or company network may block port {port} (try a VPN or an SSH tunnel)"
    )


INSTALL_HINT = (
    "install redis-server (apt install redis-server, dnf install redis, brew install redis), "
    "or set pubsub.url to a Redis server you can reach"
)


def connect(url: str, start_local: bool = True) -> redis.Redis:
    """A client (bytes replies) for `url` that has answered PING; starts a local server if needed."""
    parts = _parse(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 6379
    shown = _redact(url)
    probe = _client(url, retries=0)
    problem = _ping(probe, shown)
    if problem is None:
        probe.close()
        return _answering_client(url, shown, port)
    bind = LOCAL_HOSTS.get(host.lower()) if parts.scheme in ("redis", "") else None
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
    _start_local(server, probe, shown, bind, port, parts.password)
    probe.close()
    return _answering_client(url, shown, port)


def _parse(url: str):
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        raise ServiceUnavailable(f"pubsub.url {url!r} is not a valid Redis URL: {e}",
                                 hint="write it as redis://host:6379/0") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ServiceUnavailable(f"pubsub.url {_redact(url)!r} is not a Redis URL",
                                 hint="write it as redis://host:6379/0 (rediss:// for TLS)")
    return parts


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


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
        raise ServiceUnavailable(f"pubsub.url {_redact(url)!r} is not a valid Redis URL: {e}",
                                 hint="write it as redis://host:6379/0") from None


def _answering_client(url: str, shown: str, port: int) -> redis.Redis:
    """The client handed out: retries connection blips itself (about 10 s in all)."""
    client = _client(url, retries=10)
    problem = _ping(client, shown)
    if problem is not None:
        client.close()
        raise ServiceUnavailable(f"Redis at {shown} does not answer: {problem}", hint=network_hint(port))
    return client


def _ping(client: redis.Redis, shown: str) -> str | None:
    """None when PING is answered; else why not. Waits for a server still loading its data."""
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
            raise ServiceUnavailable(f"Redis at {shown} refused the credentials: {e}",
                                     hint="check the password in pubsub.url") from None
        except redis.exceptions.ResponseError as e:
            if "NOAUTH" in str(e) or "WRONGPASS" in str(e):
                raise ServiceUnavailable(f"Redis at {shown} wants a password: {e}",
                                         hint="put it in pubsub.url: redis://:PASSWORD@host:6379/0") from None
            return str(e)
        except (redis.exceptions.RedisError, OSError) as e:
            return str(e) or type(e).__name__


def _conf_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _start_local(server: str, probe: redis.Redis, shown: str, bind: str, port: int, password: str | None) -> None:
    folder = data_dir() / "redis"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise ServiceUnavailable(
            f"Redis at {shown} does not answer, and its data folder {folder} cannot be created to start one: {e}",
            hint="set RAI_DATA_DIR to a writable folder",
        ) from None
    log_file = folder / f"redis-{port}.log"
    with _start_lock(folder / f"redis-{port}.lock"):
        # Another process may have started it while this one waited for the lock.
        if _ping(probe, shown) is None:
            return
        conf = folder / f"redis-{port}.conf"
        lines = [
            f"port {port}",
            f"bind {bind}",
            "protected-mode yes",
            "daemonize yes",
            f"dir {_conf_value(str(folder))}",
            f"pidfile {_conf_value(str(folder / f'redis-{port}.pid'))}",
            f"logfile {_conf_value(str(log_file))}",
            "appendonly yes",
            f"appendfilename {_conf_value(f'appendonly-{port}.aof')}",
            f"dbfilename {_conf_value(f'dump-{port}.rdb')}",
        ]
        if password:
            lines.append(f"requirepass {_conf_value(password)}")
        conf.write_text("\n".join(lines) + "\n")
        log_start = log_file.stat().st_size if log_file.exists() else 0
        os.chmod(conf, 0o600)
        try:
            done = subprocess.run([server, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=15, close_fds=True)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ServiceUnavailable(f"Redis at {shown} does not answer, and starting {server} failed: {e}",
                                     hint=INSTALL_HINT) from None
        if done.returncode != 0:
            said = done.stdout.decode(errors="replace").strip()[-500:] or _log_tail(log_file)
            raise ServiceUnavailable(
                f"Redis at {shown} does not answer, and {server} would not start (exit {done.returncode}): {said}",
                hint=f"see {log_file}",
            )
        deadline = time.monotonic() + START_WAIT
        problem = "no answer"
        while time.monotonic() < deadline:
            problem = _ping(probe, shown)
            if problem is None:
                return
            fatal = _fatal_in_log(log_file, log_start)
            if fatal:
                raise ServiceUnavailable(
                    f"Redis at {shown} does not answer, and the redis-server started for it stopped: {fatal}",
                    hint=f"see {log_file}; another program may hold port {port}: set pubsub.url to another port",
                )
            time.sleep(0.05)
    raise ServiceUnavailable(
        f"started redis-server for {shown}, but it did not answer within {START_WAIT:.0f}s ({problem}); "
        f"its log says: {_log_tail(log_file) or '(nothing)'}",
        hint=f"see {log_file}; another program may hold port {port}: set pubsub.url to another port",
    )


FATAL_MARKS = ("Could not create server TCP listening socket", "Failed listening", "Fatal error", "Can't open",
               "Permission denied", "Bad file format", "Aborting")


def _fatal_in_log(path: Path, start: int) -> str | None:
    """The line saying why a just-started redis-server stopped, if its log has one after `start`."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read(1 << 20).decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if any(mark in line for mark in FATAL_MARKS):
            return line.split(" # ", 1)[-1].strip()
    return None


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(line.strip() for line in text[-lines:])


@contextlib.contextmanager
def _start_lock(path: Path, timeout: float = 20.0):
    """An exclusive lock between processes (flock); a no-op where flock does not exist."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path, "a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(f"another process holds {path} and has been starting Redis for "
                                             f"{timeout:.0f}s", hint=f"remove {path} if no rai process runs") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
