"""Whether the console leaves Redis running when it quits.

`rai.live.redis_server.connect` starts a local `redis-server` (daemonized, so no child of anybody) when the
URL is on this machine and nothing answers there. The console asks at its start, before anything of
it connects, whether Redis answers (`RedisAtStart.probe`: a short-timeout client that starts nothing).
When it did not and it answers when the console quits, the console (its own connect, or the raid or
rai-server it started) started it: `stop_if_ours` sends it SHUTDOWN through the console's own client,
after raid and rai-server have stopped, unless other clients still use it. Either way it says what it
did in one line for the terminal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rai.config import Config
from rai.live import redis_server

PROBE_TIMEOUT = 0.5  # seconds: a local Redis answers in well under a millisecond


@dataclass
class RedisAtStart:
    url: str
    where: str  # host:port, no credentials: what the lines name
    local: bool  # on this machine, and rai would start a redis-server for it (pubsub.start_local)
    answered: bool  # Redis answered before the console connected

    @classmethod
    def probe(cls, config: Config, timeout: float = PROBE_TIMEOUT) -> RedisAtStart:
        url = config.pubsub.url
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 6379
        except ValueError:
            return cls(url, url.rpartition("@")[2], False, False)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        local = (parts.scheme in ("redis", "") and host.lower() in redis_server.LOCAL_HOSTS
                 and config.pubsub.start_local)
        return cls(url, where, local, answers(url, port, timeout))


def answers(url: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a Redis answers at `url`: any reply counts, a refused password too. Starts nothing.
    A URL without credentials is tried with the password rai keeps for a local port, when there is one."""
    candidates = [url]
    parts = urlsplit(url)
    local_password = getattr(redis_server, "local_password", None)  # rai/live/redis_server.py may not have it yet
    if local_password is not None and not (parts.username or parts.password):
        try:
            password = local_password(port)
        except Exception:  # noqa: BLE001 - a probe never fails the console
            password = None
        if password:
            candidates.insert(0, parts._replace(netloc=f":{quote(password, safe='')}@{parts.netloc}").geturl())
    for candidate in candidates:
        try:
            client = redis.Redis.from_url(candidate, socket_connect_timeout=timeout, socket_timeout=timeout,
                                          retry=Retry(NoBackoff(), 0))
        except ValueError:
            return False
        try:
            client.ping()
            return True
        except (redis.exceptions.AuthenticationError, redis.exceptions.AuthenticationWrongNumberOfArgsError,
                redis.exceptions.BusyLoadingError, redis.exceptions.ResponseError):
            return True  # a Redis, wanting another password (or still loading): it runs
        except (redis.exceptions.RedisError, OSError):
            return False
        finally:
            client.close()
    return False


def _no_retry_client(client: redis.Redis, timeout: float = 5.0) -> redis.Redis:
    """A client on the same server with the same credentials as `client`, one connection, no retries."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(retry=Retry(NoBackoff(), 0), socket_timeout=timeout, socket_connect_timeout=timeout)
    kwargs.pop("retry_on_error", None)
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def _other_clients(probe: redis.Redis) -> int:
    """Clients of the server besides `probe` itself (normal and pub/sub connections)."""
    mine = probe.client_id()
    return sum(1 for c in probe.client_list() if int(c.get("id", -1)) != mine
               and "M" not in str(c.get("flags", "")) and "S" not in str(c.get("flags", "")))


@dataclass
class RedisOutcome:
    stopped: bool  # the console shut it down
    line: str | None  # "left running: ..." or None (stopped, or never ran)


def stop_if_ours(at_start: RedisAtStart | None, client: redis.Redis | None, settle: float = 2.0) -> RedisOutcome:
    """On quit, after raid and rai-server have stopped: SHUTDOWN the Redis the console started, through
    `client` (the console's own; None when it never connected), and say what is left running."""
    if at_start is None:
        return RedisOutcome(False, None)
    name = f"redis-server on {at_start.where}"
    if at_start.answered:
        return RedisOutcome(False, f"left running: {name} (it was running before the console started)")
    if client is None:
        return RedisOutcome(False, None)  # the console never reached it
    try:
        client.connection_pool.disconnect()  # the console's own connections go: what is left is someone else's
    except Exception:  # noqa: BLE001
        pass
    probe = _no_retry_client(client)
    try:
        try:
            probe.ping()
        except redis.exceptions.RedisError:
            return RedisOutcome(False, None)  # gone already
        if not at_start.local:
            return RedisOutcome(False, f"left running: Redis at {at_start.where} (not started by the console)")
        others = 0
        deadline = time.monotonic() + settle  # the stopped raid's and rai-server's connections close
        while True:
            try:
                others = _other_clients(probe)
            except redis.exceptions.ResponseError:  # CLIENT LIST not allowed: nobody can be seen
                others = 0
            if others == 0 or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if others:
            return RedisOutcome(False, f"left running: {name} (the console started it, but "
                                       f"{others} other client{'s still use' if others != 1 else ' still uses'} it)")
        try:
            probe.shutdown()  # saves as configured (append-only: queued jobs survive)
        except redis.exceptions.RedisError as e:
            said = str(e).splitlines()[0] if str(e) else type(e).__name__
            password = unquote(urlsplit(at_start.url).password or "")
            if password:
                said = said.replace(password, "***")
            return RedisOutcome(False, f"left running: {name} (SHUTDOWN failed: {said})")
        return RedisOutcome(True, None)
    finally:
        probe.close()
