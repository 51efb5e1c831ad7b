"""Object store port: project uploads and `/build` outputs.

Embedded backend: a local directory (`LocalStore`). Production: Amazon S3 (`rai.backends.s3_store`).
Keys: `uploads/<username>/<job_id>.tar.zst`, `outputs/<username>/<job_id>.tar.zst`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from rai.errors import NotFound, UserError

Progress = Callable[[int], None]  # called with the bytes just transferred


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path, progress: Progress | None = None, consume: bool = False) -> None:
        """Store the file at `path` as `key`. `consume`: the caller has no more use for the file, so the store
        may take it as it is (a local store moves it in when it is on the same file system) or leave it."""

    def get_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        """Download `key` to `path`; raises NotFound when it does not exist."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def url(self, key: str) -> str:
        """A link to the object for its owner (presigned and expiring on S3)."""


class LocalStore:
    """Objects as files under one directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the store folder {self.root}: {e.strerror}") from None

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in Path(key).parts:
            raise UserError(f"invalid object key {key!r}")
        return self.root / key

    def put_file(self, key: str, path: Path, progress: Progress | None = None, consume: bool = False) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if consume:
            try:
                os.chmod(path, 0o600)
                os.replace(path, dest)  # atomic, and no copy: a 1 GB upload is stored at once
                if progress:
                    progress(dest.stat().st_size)
                return
            except OSError:  # another file system (EXDEV), or not ours to move: copy it as below
                pass
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
            os.chmod(tmp, 0o600)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        src = self._path(key)
        if not src.is_file():
            raise NotFound(f"no stored object {key}")
        with open(src, "rb") as inp, open(path, "wb") as out:
            while chunk := inp.read(1 << 20):
                out.write(chunk)
                if progress:
                    progress(len(chunk))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        return self._path(key).resolve().as_uri()

    def copy_to(self, key: str, path: Path) -> None:
        shutil.copyfile(self._path(key), path)
