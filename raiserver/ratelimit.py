"""Per-user submissions a minute (`server.rate_limits`, by role), counted in Redis so every rai-server
process behind a load balancer shares one count."""

from __future__ import annotations

import math
import time

import redis

from rai.live.redis_keys import KEYS

WINDOW = 60.0

# KEYS[1] the user's window; ARGV: now, window, limit, member. -1 when admitted, else seconds to wait.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(oldest[2] + ARGV[2] - ARGV[1])
"""


class SubmitRate:
    def __init__(self, client: redis.Redis):
        self._take = client.register_script(_TAKE)

    def take(self, username: str, limit: int | None, token: str) -> float | None:
        """Count one submission; None when it is within `limit` a minute, else seconds until one frees."""
        if limit is None:
            return None
        wait = float(self._take(keys=[KEYS.rate(username)], args=[time.time(), WINDOW, limit, token]))
        return None if wait < 0 else max(1.0, math.ceil(wait))
