"""The rai_build.yml files this client has checked already, so that `rai submit` of an unchanged spec loads no
pydantic: its models cost about 0.14 s of CPU to load and check a spec, half again the packing's own Python
work, on the cores the packing needs (bench/submit.py).

An entry is a spec that passed, as the job request carries it (JobSpec.model_dump(mode="json")), keyed by the
file's bytes and by what checked it: rai's version and the size and time of the spec's modules, so that an
upgrade or an edited model checks again. A spec that fails is checked, and refused in its own words, every
time. The cache only spares the client's own check: rai-server and raid check every spec again. Its folder is
RAI_CACHE_DIR, else the platform's cache folder (~/.cache/rai on Linux); one that cannot be read or written
is no error, only a slower submit.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import rai
from rai import __version__

KEPT = 64  # entries; the oldest go when there are more
_CHECKED_BY = ("domain/spec.py", "units.py")  # the modules whose code decides whether a spec passes


def cache_dir() -> Path:
    """Where the client keeps what it may compute again: the platform's user cache folder (platformdirs'
    user_cache_dir, written out here: that package costs 12 ms to load)."""
    if os.environ.get("RAI_CACHE_DIR"):
        return Path(os.environ["RAI_CACHE_DIR"])
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "rai"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "rai" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "rai"


def _key(text: bytes) -> str:
    digest = hashlib.sha256(text)
    digest.update(f"\0{__version__}".encode())
    package = Path(rai.__file__).parent
    for name in _CHECKED_BY:
        try:
            st = os.stat(package / name)
        except OSError:
            continue  # a zipped or frozen install: its version is the key
        digest.update(f"\0{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def _entry(text: bytes) -> Path:
    return cache_dir() / "specs" / f"{_key(text)}.json"


def checked(text: bytes) -> dict[str, Any] | None:
    """The spec of this rai_build.yml as it was when it passed, or None when it has not been checked (or its
    entry cannot be read)."""
    try:
        fields = json.loads(_entry(text).read_bytes())
    except (OSError, ValueError):
        return None
    return fields if isinstance(fields, dict) else None


def remember(text: bytes, fields: dict[str, Any]) -> None:
    """Keep `fields`, the spec this rai_build.yml passed as, for the next submit."""
    entry = _entry(text)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(fields).encode())
        os.replace(scratch, entry)  # whole or not at all: a submit running beside this one reads either
        entries = sorted(entry.parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEPT:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # no cache to write to: the next submit checks again
