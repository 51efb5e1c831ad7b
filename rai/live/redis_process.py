"""The local redis-server that rai starts on demand (rai.live.redis_server.connect decides when): its password
file, its config file, the process started as a daemon, what its log says when it would not start, and the
lock two starting processes share. Files under `data_dir()/redis` (see rai.live.redis_server)."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from rai.config import data_dir
from rai.errors import ServiceUnavailable

START_WAIT = 5.0  # seconds a freshly started server has to answer

INSTALL_HINT = (
    "install redis-server (apt install redis-server, dnf install redis, brew install redis), "
    "or set pubsub.url to a Redis server you can reach"
)


def local_password(port: int) -> str | None:
    """The password of the Redis rai started (or would start) on this machine's `port` for a URL without
    credentials, read from `data_dir()/redis/redis-<port>.password`; None when there is none yet."""
    try:
        text = password_file(port).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def password_file(port: int) -> Path:
    return data_dir() / "redis" / f"redis-{port}.password"


def hide(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def conf_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ensure_password(folder: Path, port: int, shown: str) -> str:
    """The password kept in `folder`/redis-<port>.password, made (0600, random) when there is none.
    Called with the start lock held, so only one process makes it; it appears whole (renamed into place)."""
    password = local_password(port)
    if password is not None:
        return password
    path = folder / f"redis-{port}.password"
    password = secrets.token_urlsafe(24)
    tmp = folder / f".redis-{port}.password.{os.getpid()}"
    try:
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        os.chmod(tmp, 0o600)  # whatever the umask
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ServiceUnavailable(
            f"Redis at {shown} does not answer, and the password file {path} for the one rai would start "
            f"cannot be written: {e}",
            hint="set RAI_DATA_DIR to a writable folder",
        ) from None
    return password


def run_server(server: str, ready: Callable[[], str | None], shown: str, bind: str, port: int, password: str | None,
                folder: Path, log_file: Path) -> None:
    """Write the config, start redis-server as a daemon and wait until `ready()` says no problem (None)."""
    conf = folder / f"redis-{port}.conf"
    lines = [
        f"port {port}",
        f"bind {bind}",
        "protected-mode yes",
        "daemonize yes",
        f"dir {conf_value(str(folder))}",
        f"pidfile {conf_value(str(folder / f'redis-{port}.pid'))}",
        f"logfile {conf_value(str(log_file))}",
        "appendonly yes",
        f"appendfilename {conf_value(f'appendonly-{port}.aof')}",
        f"dbfilename {conf_value(f'dump-{port}.rdb')}",
    ]
    if password:
        lines.append(f"requirepass {conf_value(password)}")
    # 0600 from the start: the file holds the password
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.chmod(conf, 0o600)
        f.write("\n".join(lines) + "\n")
    log_start = log_file.stat().st_size if log_file.exists() else 0
    try:
        done = subprocess.run([server, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=15, close_fds=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServiceUnavailable(f"Redis at {shown} does not answer, and starting {server} failed: {e}",
                                 hint=INSTALL_HINT) from None
    if done.returncode != 0:
        said = hide(done.stdout.decode(errors="replace").strip()[-500:] or log_tail(log_file), password)
        raise ServiceUnavailable(
            f"Redis at {shown} does not answer, and {server} would not start (exit {done.returncode}): {said}",
            hint=f"see {log_file}",
        )
    deadline = time.monotonic() + START_WAIT
    problem: str | None = "no answer"
    while time.monotonic() < deadline:
        problem = ready()
        if problem is None:
            return
        fatal = hide(_fatal_in_log(log_file, log_start) or "", password)
        if fatal:
            raise ServiceUnavailable(
                f"Redis at {shown} does not answer, and the redis-server started for it stopped: {fatal}",
                hint=f"see {log_file}; another program may hold port {port}: set pubsub.url to another port",
            )
        time.sleep(0.05)
    raise ServiceUnavailable(
        f"started redis-server for {shown}, but it did not answer within {START_WAIT:.0f}s ({problem}); "
        f"its log says: {hide(log_tail(log_file), password) or '(nothing)'}",
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


def log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(line.strip() for line in text[-lines:])


@contextlib.contextmanager
def start_lock(path: Path, timeout: float = 20.0):
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
