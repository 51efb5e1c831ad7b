"""Pruning a node's images: those this node pulled or built (raid.images.ImageUses) that nobody used for
`docker.image_keep`, then built ones, oldest first, while they take more than `docker.build_budget`; never one
a container or a waiting or running job uses."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import docker
import docker.errors

from rai.units import format_size
from raid.images import ImageUses

log = logging.getLogger("raid.images")


@dataclass
class Candidate:
    tags: list[str]
    image_id: str
    size: int
    built: bool
    last_used: float


def _candidates(client: docker.DockerClient, uses: dict[str, float]) -> list[Candidate]:
    out = []
    # the list's own summaries: the SDK's images.list() inspects each image, racing with images removed meanwhile
    for img in client.api.images():
        tags = [t for t in (img.get("RepoTags") or []) if t and t != "<none>:<none>"]
        built = (img.get("Labels") or {}).get("rai.built") == "1"
        known = [uses[t] for t in tags if t in uses]
        if not known:
            continue  # not pulled, built or run by this node: an operator's (or another node's), never pruned here
        created = _created(img.get("Created"))
        out.append(Candidate(tags, img.get("Id") or "", int(img.get("Size") or 0), built, max(known or [created])))
    return out


def _created(value) -> float:
    from datetime import datetime

    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")[:26] + "+00:00").timestamp()
    except ValueError:
        return time.time()


def in_use_ids(client: docker.DockerClient, needed: Iterable[str]) -> set[str]:
    """Ids of the images every container (any state) runs and of the `needed` ones (waiting and running jobs')."""
    # the list's own summaries: inspecting each container races with jobs whose containers go meanwhile
    ids = {c.get("ImageID") or c.get("Image") or "" for c in client.api.containers(all=True)}
    for name in needed:
        try:
            ids.add(client.images.get(name).id)
        except (docker.errors.ImageNotFound, docker.errors.APIError):
            pass
    return {i.removeprefix("sha256:") for i in ids if i}


def prune(client: docker.DockerClient, uses: ImageUses, keep: float | None, budget: int | None,
          needed: Iterable[str], now: float | None = None) -> list[str]:
    """Remove images this node pulled or built that nobody used for `keep` seconds, then built ones, oldest first,
    while they take more than `budget` bytes; never one a container or a `needed` name uses. Returns the tags."""
    now = time.time() if now is None else now
    busy = in_use_ids(client, needed)
    known = uses.load()
    left = []
    removed: list[str] = []
    for c in sorted(_candidates(client, known), key=lambda c: c.last_used):
        if c.image_id.removeprefix("sha256:") in busy:
            continue
        if keep is not None and now - c.last_used > keep and _remove(client, c):
            removed += c.tags
        else:
            left.append(c)
    if budget is not None:
        built = [c for c in left if c.built]
        total = sum(c.size for c in built)
        for c in built:
            if total <= budget:
                break
            if _remove(client, c):
                removed += c.tags
                total -= c.size
    uses.forget(removed)
    return removed


def _remove(client: docker.DockerClient, c: Candidate) -> bool:
    try:
        for tag in c.tags or [c.image_id]:
            client.images.remove(tag, noprune=False)
        log.info("pruned image %s (%s)", ", ".join(c.tags) or c.image_id[:12], format_size(c.size))
        return True
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError as e:  # a container took it meanwhile: keep it
        log.info("keeping image %s: %s", ", ".join(c.tags) or c.image_id[:12], e)
        return False
