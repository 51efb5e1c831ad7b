"""What the kernel knows about a job's container: its pids cgroup, and how many forks its limit refused."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")  # cgroup v1's pids hierarchy, then v2's unified one


def pids_cgroup(container_id: str) -> Path | None:
    """The folder of the container's pids cgroup on this host (Docker and Podman name it after the id), or
    None where it cannot be found (the engine on another host, another layout)."""
    for root in CGROUP_ROOTS:
        base = Path(root)
        if not base.is_dir():
            continue
        for parent, dirs, _files in os.walk(base):
            depth = len(Path(parent).relative_to(base).parts)
            for d in dirs:
                if container_id in d and (Path(parent) / d / "pids.events").exists():
                    return Path(parent) / d
            if depth >= 3:
                dirs[:] = []
    return None


def pids_refused(folder: Path | None) -> int:
    """How many process starts the pids limit refused in the cgroup (`max N` of pids.events); 0 when unknown."""
    if folder is None:
        return 0
    try:
        for line in (folder / "pids.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "max" and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0
