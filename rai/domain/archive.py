"""Project and output archives: tar compressed with zstd (10-15x faster than gzip at the same size),
checked as they are unpacked (what an archive may hold: rai/domain/archive_check.py). Packing a project is
rai/client/packing.py; what it leaves out, rai/domain/ignore.py.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import zstandard

from rai.domain.archive_check import (
    MEMBER_SLACK,
    STREAM_SLACK,
    ArchiveCheck,
    ArchiveLimits,
    ArchiveRefused,
    ArchiveStats,
    CappedStream,
    CappedTarInfo,
    strip_name,
)
from rai.errors import UserError
from rai.units import format_size


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def zstd_to_tar(src: Path, dest: Path) -> None:
    """Decompress a tar.zst into a plain tar, unchecked; a project upload goes through `unpack_checked`."""
    with open(src, "rb") as inp, open(dest, "wb") as out:
        zstandard.ZstdDecompressor().copy_stream(inp, out)


def tar_to_zstd(src: Path, dest: Path, level: int = 3) -> None:
    with open(src, "rb") as inp, open(dest, "wb") as out:
        zstandard.ZstdCompressor(level=level, threads=-1).copy_stream(inp, out)


# Checked unpacking: one walk of the tar stream as it decompresses, shared by raid (a project upload,
# `unpack_checked`) and `rai get` (a job's outputs, `unpack`). Nothing is decompressed past the limits:
# a few KiB of zstd can hold terabytes of zeros.

COPY_CHUNK = 1 << 20
READ_CHUNK = 256 * 1024  # what tarfile asks the decompressor for at a time


def _walk_checked(src: Path, limits: ArchiveLimits, on_member, strip_top: str | None = None) -> ArchiveStats:
    """Call `on_member(member, normalized name, tar)` for each member of the tar.zst `src` that passes
    `ArchiveCheck`, as the stream decompresses; `on_member` reads a regular member's data with
    `tar.extractfile(member)` if it wants it. Raises ArchiveRefused, also after the last member.
    """
    check = ArchiveCheck(limits, strip_top)
    try:
        with open(src, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zr:
            stream = CappedStream(zr, limits.max_bytes + STREAM_SLACK, limits.max_bytes)
            with tarfile.open(fileobj=stream, mode="r|", tarinfo=CappedTarInfo,  # type: ignore[call-overload]
                              bufsize=READ_CHUNK) as tar:  # a raw stream reader is a file object to tarfile
                for m in tar:
                    name = check.member(m)
                    stream.cap = limits.max_bytes + STREAM_SLACK + MEMBER_SLACK * check.stats.members
                    if name is not None:
                        on_member(m, name, tar)
                    tar.members.clear()  # tarfile keeps every member it read; a stream needs none of them
        return check.finish()
    except tarfile.FilterError as e:  # from on_member's extract: what is already in the destination
        raise ArchiveRefused("unsafe", f"cannot be unpacked here safely: {e}") from None
    except (tarfile.TarError, zstandard.ZstdError, EOFError, RecursionError, UnicodeError) as e:
        raise ArchiveRefused("corrupt", "is not a valid tar.zst archive", f"{type(e).__name__}: {e}") from None


def _copy(f, out) -> None:
    while chunk := f.read(COPY_CHUNK):
        if out is not None:
            out.write(chunk)


def check_archive(src: Path, limits: ArchiveLimits, strip_top: str | None = None) -> ArchiveStats:
    """Walk the tar.zst `src` through `ArchiveCheck`, decompressing it all but writing nothing."""

    def read(m, _name, tar):
        if m.isreg():
            _copy(tar.extractfile(m), None)

    return _walk_checked(src, limits, read, strip_top)


def _link_name(name: str, strip_top: str | None = None) -> str:
    return "/".join(strip_name(name, strip_top))


def unpack_checked(src: Path, dest: Path, limits: ArchiveLimits) -> ArchiveStats:
    """Decompress the project upload `src` into the plain tar `dest` (what the container engine takes).

    `dest` is written anew from the members `ArchiveCheck` passed (normalized names, plain kinds,
    permission bits only), so the engine gets exactly what was checked. On ArchiveRefused `dest`
    holds what was written until then, never much more than `limits.max_bytes`: the caller removes it.
    """

    def write(m, name, tar):
        info = tarfile.TarInfo(name)
        info.mode = m.mode & 0o777
        info.mtime = max(int(m.mtime or 0), 0)
        info.uid, info.gid, info.uname, info.gname = m.uid, m.gid, m.uname, m.gname
        if m.isreg():
            info.type, info.size = tarfile.REGTYPE, m.size
            out.addfile(info, tar.extractfile(m))
            return
        info.type = m.type
        if m.issym():
            info.linkname = m.linkname
        elif m.islnk():
            info.linkname = _link_name(m.linkname)
        out.addfile(info)

    with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                      copybufsize=COPY_CHUNK) as out:  # TarFile takes it; typeshed's open() does not say so
        return _walk_checked(src, limits, write)


def unpack(archive: Path, dest: Path, strip_top: str | None = None, limits: ArchiveLimits | None = None) -> int:
    """Extract a tar.zst into `dest` safely; returns files written.

    The whole archive is checked first, writing nothing (`ArchiveCheck` with `limits`, by default rai
    get's: no absolute paths, no `..`, no link leading outside, at most max_bytes, max_files,
    max_depth), then extracted with tarfile's "data" filter, which also refuses what is already in
    `dest` (a link there leading out). `strip_top` drops a leading folder name (outputs are archived
    as `build/...`).
    """
    limits = limits or ArchiveLimits()
    written = 0

    def extract(m, name, tar):
        nonlocal written
        m.name = name
        if m.islnk():
            m.linkname = _link_name(m.linkname, strip_top)
        tar.extract(m, dest, filter="data")
        if m.isreg() or m.islnk():
            written += 1

    try:
        check_archive(archive, limits, strip_top)
        dest.mkdir(parents=True, exist_ok=True)
        _walk_checked(archive, limits, extract, strip_top)
    except ArchiveRefused as e:
        if e.kind in ("max_bytes", "max_files", "max_depth"):
            raise UserError(f"the archive {archive.name} is too big to unpack: it {e.reason}",
                            hint=f"rai get unpacks at most {format_size(limits.max_bytes)}, "
                                 f"{limits.max_files} files and folders, {limits.max_depth} levels deep") from None
        raise UserError(f"the archive {archive.name} is damaged or unsafe: it {e.reason}"
                        + (f" ({e.detail})" if e.detail else "")) from None
    except OSError as e:
        raise UserError(f"cannot unpack {archive.name} into {dest}: {e.strerror or e}") from None
    return written
