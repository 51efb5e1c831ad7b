"""The node's connection to its container engine: Docker Engine, or Podman's Docker-compatible socket."""

from __future__ import annotations

import os
from pathlib import Path

import docker

from rai.config import DockerConfig
from rai.errors import ServiceUnavailable

SOCKETS = ["unix:///run/podman/podman.sock", "unix:///var/run/docker.sock"]


def connect(cfg: DockerConfig) -> docker.DockerClient:
    """A client of base_url, else DOCKER_HOST, else the first of the usual sockets that answers."""
    if cfg.base_url:
        candidates = [cfg.base_url]
    elif os.environ.get("DOCKER_HOST"):
        candidates = ["env"]
    else:
        candidates = list(SOCKETS)
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg:
            candidates.append(f"unix://{xdg}/podman/podman.sock")
    tried = []
    for url in candidates:
        shown = os.environ.get("DOCKER_HOST", "") if url == "env" else url
        if url.startswith("unix://") and not Path(url[len("unix://"):]).exists():
            tried.append(f"{shown} (no such socket)")
            continue
        try:
            client = docker.from_env(timeout=120) if url == "env" else docker.DockerClient(base_url=url, timeout=120)
            client.ping()
        except Exception as e:  # noqa: BLE001 - any failure means "does not answer"
            tried.append(f"{shown} ({type(e).__name__})")
            continue
        return client
    raise ServiceUnavailable(
        "no container engine answers: tried " + ", ".join(tried),
        hint="start Docker, or Podman's API socket (podman system service --time=0 "
             "unix:///run/podman/podman.sock &), or set docker.base_url in the config",
    )
