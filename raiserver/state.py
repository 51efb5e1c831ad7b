"""What every route shares: the config, the backends, the authenticator, the rate limits, a spool folder
and an asyncio Redis client for the log followers."""

from __future__ import annotations

import tempfile
from pathlib import Path

import redis
import redis.asyncio

from rai.backends import Backends
from rai.live.quotas import QuotaBook
from raiserver.auth import Authenticator
from raiserver.metrics import Metrics
from raiserver.places import PlaceBoard
from raiserver.ratelimit import SubmitRate

MAX_FOLLOWERS = 4096  # connections the followers' pool may open (each follower blocks on one)


class ServerState:
    def __init__(self, backends: Backends):
        """`backends` carries the config too (the server's settings are its `server:` section)."""
        config = backends.config
        self.config = config
        self.b = backends
        self.auth = Authenticator(self.b, config.server.request_window)
        self.rate = SubmitRate(self.b.redis)
        self.quotas = QuotaBook(self.b.redis)  # jobs an hour, GPU-hours a day (rai/live/quotas.py)
        self.places = PlaceBoard(self.b)  # waiting jobs' places (fair share or fifo) and ETAs
        self.metrics = Metrics(self.b, config.server.metrics_token)
        self.spool = tempfile.mkdtemp(prefix="rai-server-")  # uploads on their way to the store
        self._follow_redis: redis.asyncio.Redis | None = None

    @property
    def follow_redis(self) -> redis.asyncio.Redis:
        """An asyncio client with the same server and credentials as the backends' one, for XREAD BLOCK."""
        if self._follow_redis is None:
            kw = self.b.redis.connection_pool.connection_kwargs
            common = {"db": kw.get("db", 0), "username": kw.get("username"), "password": kw.get("password"),
                      "max_connections": MAX_FOLLOWERS, "socket_connect_timeout": 5, "health_check_interval": 30}
            if "path" in kw:
                self._follow_redis = redis.asyncio.Redis(unix_socket_path=kw["path"], **common)
            else:
                ssl = issubclass(self.b.redis.connection_pool.connection_class, redis.SSLConnection)
                self._follow_redis = redis.asyncio.Redis(host=kw.get("host", "127.0.0.1"), port=kw.get("port", 6379),
                                                         ssl=ssl, **common)
        return self._follow_redis

    async def close(self) -> None:
        if self._follow_redis is not None:
            await self._follow_redis.aclose()
        for p in Path(self.spool).glob("*"):
            p.unlink(missing_ok=True)
        Path(self.spool).rmdir()
