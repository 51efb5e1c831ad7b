"""What an untrusted archive may hold, checked member by member as it streams: no absolute path, no path or
link out of the project, no device, sizes, counts, depths and name lengths within `ArchiveLimits`, pax and
long-name records within a budget; `ArchiveRefused` says which rule and `upload_refusal` tells the student."""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass

from rai.units import format_size

HEADER_RECORD_LIMIT = 16 * 1024  # a pax or GNU long-name record bigger than this does not come from tar
RECORD_BUDGET = 4 * 1024**2  # pax and long-name records, all together, at most this ...
RECORD_SLACK = 2 * 1024  # ... and this much more a header
DIGIT_RUN = 64  # digits in a row a pax record may hold (see CappedTarInfo)
_DIGIT_RUN = re.compile(rb"[0-9]{%d}" % (DIGIT_RUN + 1))
STREAM_SLACK = 1024**2  # tar's own bytes (headers, padding, read-ahead) allowed past max_bytes ...
MEMBER_SLACK = 8 * 1024  # ... and this much more per member
LINK_HOPS = 40  # links followed resolving one path, as Linux does
NAME_MAX = 255  # bytes in one path component
PATH_MAX = 4096  # bytes in one path


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may unpack to. The defaults are rai get's; raid passes docker.upload_limit and co."""

    max_bytes: int = 8 * 1024**3  # the regular files' content, all together
    max_files: int = 1_000_000  # members: files, folders and links
    max_depth: int = 128  # components in one path


@dataclass
class ArchiveStats:
    files: int = 0  # regular files and hard links
    members: int = 0  # every member counted against max_files
    bytes: int = 0  # regular files' content


class ArchiveRefused(Exception):
    """The archive passes a limit, holds something a project folder cannot hold, or is no tar.zst at all.

    `kind` is "max_bytes", "max_files" or "max_depth" (the limit passed), "unsafe" (a member, named in
    the reason) or "corrupt"; `reason` reads after "the archive" ("holds a link to outside ...");
    `detail` says what the decompressor or tar reader found, for logs.
    """

    def __init__(self, kind: str, reason: str, detail: str = ""):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.detail = detail


def _shown(name: str, width: int = 120) -> str:
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return name if len(name) <= width else name[:width] + "…"


class CappedStream:
    """The decompressed stream, refused as soon as more than `cap` bytes came out of it."""

    def __init__(self, f, cap: int, max_bytes: int):
        self.f = f
        self.cap = cap
        self.max_bytes = max_bytes
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = max(self.cap - self.count + 1, 1)
        data = self.f.read(n)
        self.count += len(data)
        if self.count > self.cap:
            raise ArchiveRefused("max_bytes", f"unpacks to more than {format_size(self.max_bytes)}")
        return data


class _PutBack:
    """A stream with `data` put back in front of it (a pax record read once to be checked first)."""

    def __init__(self, data: bytes, f):
        self.data = data
        self.f = f

    def read(self, n: int = -1) -> bytes:
        if not self.data:
            return self.f.read(n)
        if n is None or n < 0:
            out, self.data = self.data + self.f.read(), b""
            return out
        out, self.data = self.data[:n], self.data[n:]
        return out + self.f.read(n - len(out)) if len(out) < n else out

    def tell(self) -> int:
        return self.f.tell() - len(self.data)

    def __getattr__(self, name):
        return getattr(self.f, name)


class CappedTarInfo(tarfile.TarInfo):
    """A stricter TarInfo for reading a stream.

    tarfile reads a pax or GNU long-name record whole into memory, so one bigger than any tar writes
    (HEADER_RECORD_LIMIT), or records adding up to more than RECORD_BUDGET and RECORD_SLACK a header,
    are refused before; and a pax record holding a run of more than DIGIT_RUN digits too: tarfile
    before Python 3.11.10/3.12.6 searches it in time quadratic in such runs (CVE-2024-6232), seconds
    for one record. A header cut short or garbled after the first is, to tarfile, the end of the
    archive (an upload cut at a member's boundary would run as a smaller project): here the archive
    is corrupt; only the end-of-archive marker (a zero block) ends it.
    """

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.EOFHeaderError:  # type: ignore[attr-defined]  # tarfile has it; typeshed does not
            raise
        except tarfile.HeaderError as e:
            raise ArchiveRefused("corrupt", "is not a valid tar.zst archive",
                                 f"{type(e).__name__}: {e or 'no end-of-archive marker'}") from None

    @classmethod
    def fromtarfile(cls, tarfile):
        tarfile._rai_headers = getattr(tarfile, "_rai_headers", 0) + 1
        return super().fromtarfile(tarfile)

    def _check_record(self, tarfile) -> None:
        spent = getattr(tarfile, "_rai_record_bytes", 0) + self.size
        tarfile._rai_record_bytes = spent
        if self.size > HEADER_RECORD_LIMIT or spent > RECORD_BUDGET + RECORD_SLACK * tarfile._rai_headers:
            raise ArchiveRefused("corrupt", "is not a valid tar.zst archive",
                                 f"a header record of {self.size} bytes ({spent} bytes of them so far)")

    def _proc_gnulong(self, tarfile):
        self._check_record(tarfile)
        return super()._proc_gnulong(tarfile)  # type: ignore[misc]  # a private hook typeshed leaves out

    def _proc_pax(self, tarfile):
        self._check_record(tarfile)
        f = tarfile.fileobj
        record = f.read(self._block(self.size))  # type: ignore[attr-defined]  # private, as _proc_pax
        if _DIGIT_RUN.search(record):
            raise ArchiveRefused("corrupt", "is not a valid tar.zst archive",
                                 f"a pax record with a run of more than {DIGIT_RUN} digits")
        tarfile.fileobj = _PutBack(record, f)
        try:
            return super()._proc_pax(tarfile)  # type: ignore[misc]  # a private hook typeshed leaves out
        finally:
            tarfile.fileobj = f


class ArchiveCheck:
    """Checks members one by one, in archive order: limits, paths, links, kinds.

    Paths: relative, no `..`, no component over NAME_MAX, none over PATH_MAX, at most max_depth deep.
    Kinds: regular files, folders, symlinks, hard links; no devices, pipes or sparse files. A symlink
    must resolve inside the archive's root (through the archive's other symlinks, checked again at the
    end, when all are known); a hard link must name a file earlier in the archive. `strip_top` drops a
    leading folder (outputs are archived as `build/...`) before anything is checked; the folder itself
    is skipped.
    """

    def __init__(self, limits: ArchiveLimits, strip_top: str | None = None):
        self.limits = limits
        self.strip_top = strip_top
        self.stats = ArchiveStats()
        self.kinds: dict[str, str] = {}  # normalized name -> "file", "dir", "symlink"
        self.symlinks: dict[str, str] = {}  # normalized name -> target

    def _parts(self, name: str, member: str) -> list[str]:
        if name.startswith("/"):
            raise ArchiveRefused("unsafe", f"holds an absolute path: {_shown(member)}")
        if ".." in name.split("/"):
            raise ArchiveRefused("unsafe", f"holds a path that leaves the project: {_shown(member)}")
        return strip_name(name, self.strip_top)

    # long: every rule one member must pass, in the order they are checked, each a few lines
    def member(self, m: tarfile.TarInfo) -> str | None:
        """Check one member; returns its normalized name, or None for the root folder (skip it)."""
        parts = self._parts(m.name, m.name)
        if not parts:
            if m.isdir():
                return None
            raise ArchiveRefused("unsafe", f"holds a {'link' if m.issym() or m.islnk() else 'file'} "
                                           f"without a name: {_shown(m.name)!r}")
        name = "/".join(parts)
        self.stats.members += 1
        if self.stats.members > self.limits.max_files:
            raise ArchiveRefused("max_files", f"holds more than {self.limits.max_files} files and folders")
        if len(parts) > self.limits.max_depth:
            raise ArchiveRefused("max_depth", f"has a path more than {self.limits.max_depth} levels deep: "
                                              f"{_shown(name)}")
        raw = name.encode("utf-8", "surrogateescape")
        if len(raw) > PATH_MAX:
            raise ArchiveRefused("unsafe", f"holds a path longer than {PATH_MAX} bytes: {_shown(name)}")
        if any(len(p.encode("utf-8", "surrogateescape")) > NAME_MAX for p in parts):
            raise ArchiveRefused("unsafe", f"holds a name longer than {NAME_MAX} bytes: {_shown(name)}")
        for i in range(1, len(parts)):
            above = self.kinds.get("/".join(parts[:i]))
            if above == "file":
                raise ArchiveRefused("unsafe", f"holds {_shown(name)} inside {_shown('/'.join(parts[:i]))}, "
                                               "which is a file")
        if m.isreg():
            if m.sparse is not None or m.type == tarfile.GNUTYPE_SPARSE:
                raise ArchiveRefused("unsafe", f"holds a sparse file: {_shown(name)}")
            kind = "file"
            self.stats.files += 1
            self.stats.bytes += m.size
            if self.stats.bytes > self.limits.max_bytes:
                raise ArchiveRefused("max_bytes", f"unpacks to more than {format_size(self.limits.max_bytes)}")
        elif m.isdir():
            kind = "dir"
        elif m.issym():
            kind = "symlink"
            if not m.linkname or m.linkname.startswith("/"):
                raise self._outside(name, m.linkname)
            if len(m.linkname.encode("utf-8", "surrogateescape")) > PATH_MAX:
                raise ArchiveRefused("unsafe", f"holds a link to a path longer than {PATH_MAX} bytes: "
                                               f"{_shown(name)}")
        elif m.islnk():
            kind = "file"
            target = m.linkname
            if target.startswith("/") or ".." in target.split("/"):
                raise self._outside(name, target)
            parts_to = self._parts(target, target)
            if self.kinds.get("/".join(parts_to)) != "file":
                raise ArchiveRefused("unsafe", f"holds a hard link to a file that is not before it in the "
                                               f"archive: {_shown(name)} -> {_shown(target)}")
            self.stats.files += 1
        elif m.ischr() or m.isblk():
            raise ArchiveRefused("unsafe", f"holds a device file: {_shown(name)}")
        elif m.isfifo():
            raise ArchiveRefused("unsafe", f"holds a pipe (FIFO): {_shown(name)}")
        else:
            raise ArchiveRefused("unsafe", f"holds {_shown(name)}, which is not a file, a folder or a link "
                                           f"(tar type {m.type!r})")
        before = self.kinds.get(name)
        if before is not None and (before == "symlink" or kind == "symlink"):
            raise ArchiveRefused("unsafe", f"holds {_shown(name)} twice, once as a link")
        self.kinds[name] = kind
        if kind == "symlink":
            self.symlinks[name] = m.linkname
            self._check_link(name, m.linkname)
        return name

    def finish(self) -> ArchiveStats:
        """After the last member: every symlink checked again, now that all of them are known."""
        for name, target in self.symlinks.items():
            self._check_link(name, target)
        return self.stats

    def _outside(self, name: str, target: str) -> ArchiveRefused:
        return ArchiveRefused("unsafe", f"holds a link to outside the project: {_shown(name)} -> {_shown(target)}")

    def _check_link(self, name: str, target: str) -> None:
        parent = name.split("/")[:-1]
        if self._resolve(parent + target.split("/"), name) is None:
            raise self._outside(name, target)

    def _resolve(self, parts: list[str], link: str) -> list[str] | None:
        """Where `link`'s target lands, following the archive's symlinks; None when it leaves the root."""
        done: list[str] = []
        todo = list(reversed(parts))
        hops = 0
        while todo:
            p = todo.pop()
            if p in ("", "."):
                continue
            if p == "..":
                if not done:
                    return None
                done.pop()
                continue
            done.append(p)
            target = self.symlinks.get("/".join(done))
            if target is not None:
                hops += 1
                if target.startswith("/"):
                    return None
                if hops > LINK_HOPS:
                    raise ArchiveRefused("unsafe", f"holds links that loop (or chain more than {LINK_HOPS} "
                                                   f"deep): {_shown(link)} -> {_shown(self.symlinks[link])}")
                done.pop()
                todo.extend(reversed(target.split("/")))
        return done


def strip_name(name: str, strip_top: str | None) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if strip_top and parts and parts[0] == strip_top:
        parts = parts[1:]
    return parts


def upload_refusal(e: ArchiveRefused) -> str:
    """What the submitter reads when raid does not unpack their project upload."""
    if e.kind == "corrupt":
        return "refused: the upload is not a valid tar.zst archive; submit again with rai"
    if e.kind == "unsafe":
        return f"refused: your archive {e.reason}; leave it out of the project (or with .raiignore) and submit again"
    setting, hint = {
        "max_bytes": ("docker.upload_limit", "leave large data out with .raiignore"),
        "max_files": ("docker.max_files", "leave generated files out with .raiignore"),
        "max_depth": ("docker.max_depth", "leave deep folders out with .raiignore"),
    }[e.kind]
    return f"refused: the project {e.reason} ({setting}); {hint}"
