"""Packing a project: its folder as a tar stream compressed with zstd on every core, made as it is read.

`.raiignore` in the project (rai/domain/ignore.py, git's rules) says what not to upload; the user's profile is
never packed, whatever it is called or however it is reached. `rai submit` streams a PackStream straight
into its upload: no archive on disk, the digest computed on the way.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tarfile
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from rai.domain.ignore import IgnoreRules
from rai.errors import UserError


@dataclass
class PackResult:
    sha256: str
    size: int
    files: int


def _walk(directory: Path, rules: IgnoreRules, excluded: set[tuple[int, int]]):
    """(path, rel, lstat) of each member, in os.walk's top-down order: a folder's subfolders (sorted), its
    other entries (sorted), then each subfolder's tree in turn. A link to a folder counts as a folder for
    `.raiignore` and is not followed. A file whose (st_dev, st_ino), or a link whose target's, is in
    `excluded` is left out (the profile: by its inode, so a hard link or a link to it is left out too).
    """
    stack = [(os.fspath(directory), "")]
    while stack:
        root, rel_root = stack.pop()
        try:
            with os.scandir(root) as it:
                entries = list(it)
        except OSError as e:
            raise UserError(f"cannot read {root}: {e.strerror or e}") from None
        dirs: list[os.DirEntry[str]] = []
        files: list[os.DirEntry[str]] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(entry)
        dirs.sort(key=lambda e: e.name)
        files.sort(key=lambda e: e.name)
        below = []
        for entry in dirs:
            rel = f"{rel_root}{entry.name}"
            if rules.ignored(rel, True):
                continue
            yield entry.path, rel, _lstat(entry)
            if not entry.is_symlink():
                below.append((entry.path, rel + "/"))
        for entry in files:
            rel = f"{rel_root}{entry.name}"
            if rules.ignored(rel, False):
                continue
            st = _lstat(entry)
            if excluded and _is_excluded(entry.path, st, excluded):
                continue
            yield entry.path, rel, st
        stack.extend(reversed(below))


def _lstat(entry: os.DirEntry) -> os.stat_result:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError as e:
        raise UserError(f"cannot read {entry.path}: {e.strerror or e}") from None


def _is_excluded(path: str, st: os.stat_result, excluded: set[tuple[int, int]]) -> bool:
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except OSError:  # a dangling link
            return False
    return (st.st_dev, st.st_ino) in excluded


# zstd level 2, not 3: on projects of source code and data (bench/submit.py) it makes an archive about 1.3%
# larger for about a third less CPU, which on a student's laptop is the longer part of a submit.
PACK_LEVEL = 2
PACK_CHUNK = 1 << 20  # tar bytes handed to the compressor at once; a big file is read this much at a time
PACK_AHEAD = 64 << 20  # compressed bytes a PackStream holds ready before its packer waits for the reader
_NAMES: dict[tuple[str, int], str] = {}  # ("u", uid) / ("g", gid) -> name, as tarfile's gettarinfo looks them up


def _owner(kind: str, ident: int) -> str:
    key = (kind, ident)
    name = _NAMES.get(key)
    if name is None:
        name = ""
        try:
            if kind == "u":
                import pwd

                name = pwd.getpwuid(ident).pw_name
            else:
                import grp

                name = grp.getgrgid(ident).gr_name
        except (ImportError, KeyError):
            pass
        _NAMES[key] = name
    return name


class _Packer:
    """The tar stream of a project, compressed with zstd on every core, as chunks of compressed bytes.

    The members are what `tarfile.add(path, recursive=False)` writes (its own headers, `tobuf` in pax
    format; hard links as links to the first name), with whole-second mtimes (raid keeps no more), written
    without tarfile's file object: headers and small files gathered into PACK_CHUNK-sized writes, big files
    read and compressed PACK_CHUNK at a time. No compressed byte comes out before the first file is found,
    so a project with nothing to upload is refused (UserError) before anything is sent. The digest and
    size of what came out are in `result` at the end.
    """

    def __init__(self, directory: Path, exclude: Iterable[Path] = (), level: int = PACK_LEVEL):
        directory = Path(directory)
        if not directory.is_dir():
            raise UserError(f"{directory} is not a directory", hint="pass the project folder with -p DIR")
        self.directory = directory
        self.level = level
        self.rules = IgnoreRules.for_project(directory)
        self.excluded: set[tuple[int, int]] = set()
        for p in exclude:
            try:
                st = os.stat(p)
            except OSError:
                continue
            self.excluded.add((st.st_dev, st.st_ino))
        self.result: PackResult | None = None

    def chunks(self) -> Generator[bytes, None, None]:
        cobj = zstandard.ZstdCompressor(level=self.level, threads=-1).compressobj()
        digest, size, files, offset = hashlib.sha256(), 0, 0, 0
        out = bytearray()  # tar bytes not yet handed to the compressor
        ready: list[bytes] = []  # compressed bytes not yet handed out (all of them until the first file)
        inodes: dict[tuple[int, int], str] = {}
        block: memoryview | None = None
        for path, rel, st in _walk(self.directory, self.rules, self.excluded):
            info = _tarinfo(path, rel, st, inodes)
            if info is None:
                continue  # a socket: tarfile leaves it out too
            header = _ustar(info) or info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
            out += header
            offset += len(header)
            if info.type == tarfile.REGTYPE:
                files += 1
                if info.size > PACK_CHUNK:
                    if block is None:
                        block = memoryview(bytearray(PACK_CHUNK))
                    ready.append(cobj.compress(out))
                    out.clear()
                    _copy_big(path, info.size, cobj, block, ready)
                else:
                    out += _read_small(path, info.size)
                pad = -info.size % tarfile.BLOCKSIZE
                if pad:
                    out += bytes(pad)
                offset += info.size + pad
            elif info.type == tarfile.LNKTYPE or info.type == tarfile.SYMTYPE and os.path.isfile(path):
                files += 1
            if len(out) >= PACK_CHUNK:
                ready.append(cobj.compress(out))
                out.clear()
            if files and ready:
                for chunk in ready:
                    if chunk:
                        digest.update(chunk)
                        size += len(chunk)
                        yield chunk
                ready.clear()
        if files == 0:
            raise UserError(f"{self.directory} has no files to upload "
                            "(everything is empty or ignored by .raiignore)")
        offset += 2 * tarfile.BLOCKSIZE  # the end-of-archive marker, then up to a whole record, as tarfile ends
        out += bytes(2 * tarfile.BLOCKSIZE + -offset % tarfile.RECORDSIZE)
        ready.append(cobj.compress(out))
        ready.append(cobj.flush())
        for chunk in ready:
            if chunk:
                digest.update(chunk)
                size += len(chunk)
                yield chunk
        self.result = PackResult(digest.hexdigest(), size, files)


def _tarinfo(path: str, rel: str, st: os.stat_result, inodes: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    """What tarfile's gettarinfo makes of `path` (already lstat'ed), mtime in whole seconds."""
    mode = st.st_mode
    info = tarfile.TarInfo(rel)
    if stat.S_ISREG(mode):
        inode = (st.st_ino, st.st_dev)
        first = inodes.get(inode) if st.st_nlink > 1 else None
        if first is not None and first != rel:
            info.type, info.linkname = tarfile.LNKTYPE, first
        else:
            info.type, info.size = tarfile.REGTYPE, st.st_size
            if st.st_nlink > 1 and st.st_ino:
                inodes[inode] = rel
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        try:
            info.linkname = os.readlink(path)
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return None
    info.mode = mode
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)  # a float would add a pax record to every member; raid keeps whole seconds
    info.uname, info.gname = _owner("u", st.st_uid), _owner("g", st.st_gid)
    return info


_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12x")  # one 512-byte header block
_OCTAL7, _OCTAL11 = 8 ** 7, 8 ** 11  # what an 8- and a 12-byte field hold in octal digits


def _ustar(info: tarfile.TarInfo) -> bytes | None:
    """The header block `info.tobuf(PAX_FORMAT)` writes for a member that needs no pax record (an ASCII name
    of at most 100 bytes, ASCII owner names, numbers that fit their fields: nearly every member of a
    project), in a fifth of its time; None for any other, which tarfile writes. tests/test_archive.py holds
    the two equal, byte for byte."""
    name = info.name + "/" if info.type == tarfile.DIRTYPE and not info.name.endswith("/") else info.name
    if not (name.isascii() and info.linkname.isascii() and info.uname.isascii() and info.gname.isascii()):
        return None
    if len(name) > 100 or len(info.linkname) > 100 or len(info.uname) > 32 or len(info.gname) > 32:
        return None
    if not (0 <= info.uid < _OCTAL7 and 0 <= info.gid < _OCTAL7 and 0 <= info.size < _OCTAL11
            and 0 <= info.mtime < _OCTAL11 and 0 <= info.devmajor < _OCTAL7 and 0 <= info.devminor < _OCTAL7):
        return None
    block = _USTAR.pack(name.encode(), b"%07o\0" % (info.mode & 0o7777), b"%07o\0" % info.uid,
                        b"%07o\0" % info.gid, b"%011o\0" % info.size, b"%011o\0" % int(info.mtime), b" " * 8,
                        info.type, info.linkname.encode(), tarfile.POSIX_MAGIC, info.uname.encode(),
                        info.gname.encode(), *_device(info), b"")
    return block[:148] + b"%06o\0" % sum(block) + block[155:]  # the checksum, counting its own field as spaces


def _device(info: tarfile.TarInfo) -> tuple[bytes, bytes]:
    if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        return b"%07o\0" % info.devmajor, b"%07o\0" % info.devminor
    return b"", b""  # as tarfile leaves them for any other member


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def _changed(path: str) -> UserError:
    return UserError(f"cannot read {path}: it became shorter while it was packed", hint="submit again")


def _read_small(path: str, size: int) -> bytes:
    fd = _open(path)
    try:
        data = os.read(fd, size) if size else b""
        while len(data) < size:
            more = os.read(fd, size - len(data))
            if not more:
                raise _changed(path)
            data += more
        return data
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def _copy_big(path: str, size: int, cobj, block: memoryview, ready: list[bytes]) -> None:
    fd = _open(path)
    try:
        left = size
        while left:
            n = os.readv(fd, [block[:min(left, len(block))]])
            if not n:
                raise _changed(path)
            ready.append(cobj.compress(block[:n]))
            left -= n
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)


class PackStream:
    """A project packed (`_Packer`) in a thread of its own while the caller reads the compressed bytes:
    `for chunk in stream` (once), then `result`. The packer starts at once and runs up to PACK_AHEAD
    compressed bytes ahead of the reader (so `rai submit` packs while it loads its modules and asks the
    server who it is), then waits. Its errors (UserError: nothing to upload, a file that cannot be read) are
    raised by the iteration, the first of them before any byte comes out. `close()` (or leaving `with`)
    stops the packer.
    """

    _END = object()

    def __init__(self, directory: Path, exclude: Iterable[Path] = (), level: int = PACK_LEVEL):
        self._packer = _Packer(directory, exclude, level)
        self._ready: deque = deque()  # chunks, then _END or a _Failed
        self._ahead = 0  # bytes in _ready
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="rai-pack", daemon=True)
        self._thread.start()

    @property
    def result(self) -> PackResult | None:
        return self._packer.result

    def _put(self, item, size: int = 0) -> bool:
        with self._cond:
            while self._ahead >= PACK_AHEAD and not self._stop:
                self._cond.wait()
            if self._stop:
                return False
            self._ready.append(item)
            self._ahead += size
            self._cond.notify_all()
            return True

    def _run(self) -> None:
        chunks = self._packer.chunks()
        try:
            for chunk in chunks:
                if not self._put(chunk, len(chunk)):
                    return
            self._put(self._END)
        except BaseException as e:  # noqa: BLE001 - handed to the reader, raised there
            self._put(_Failed(e))
        finally:
            chunks.close()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self._cond:
                while not self._ready:
                    self._cond.wait()
                item = self._ready.popleft()
                if isinstance(item, bytes):
                    self._ahead -= len(item)
                    self._cond.notify_all()
            if item is self._END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._ready.clear()
            self._ahead = 0
            self._cond.notify_all()
        self._thread.join()

    def __enter__(self) -> PackStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class _Failed:
    error: BaseException


def pack_directory(directory: Path, dest: Path, exclude: Iterable[Path] = (), level: int = PACK_LEVEL) -> PackResult:
    """Write `directory` as a tar.zst to `dest`; paths in `exclude` (e.g. the profile) are left out."""
    packer = _Packer(directory, exclude, level)
    with open(dest, "wb") as out:
        for chunk in packer.chunks():
            out.write(chunk)
    assert packer.result is not None
    return packer.result
