"""The ranked projects' public part in Redis: raid publishes it (`rai:projects`), rai-server reads it to check a
submission; the model is rai.domain.public_projects."""

from __future__ import annotations

import redis

from rai.domain.projects import ProjectConfig
from rai.domain.public_projects import PublicProjects
from rai.errors import ServiceUnavailable
from rai.live.redis_keys import KEYS

PUBLIC_KEY = KEYS.projects()  # Redis key raid publishes the public part of `projects:` under


def publish_projects(r: redis.Redis, local: dict[str, ProjectConfig]) -> None:
    """Put the public part of `projects:` (kinds, required files, metric, enforced spec) where clients read it."""
    r.set(PUBLIC_KEY, PublicProjects.from_config(local).model_dump_json())


def published_projects(r: redis.Redis, local: dict[str, ProjectConfig]) -> PublicProjects:
    """What the raid nodes published under `rai:projects`; the local config's `projects:` when none has."""
    try:
        raw = r.get(PUBLIC_KEY)
    except redis.exceptions.RedisError as e:
        raise ServiceUnavailable(f"reading the ranked projects failed: Redis does not answer ({e})",
                                 hint="check pubsub.url in the config") from None
    if raw:
        return PublicProjects.model_validate_json(raw)
    return PublicProjects.from_config(local)
