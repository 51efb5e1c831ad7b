"""What goes into and comes out of a job's container: /src, the live stdout/stderr stream, /build.

`OutputDemux` splits the engine's multiplexed attach stream (8-byte frame headers) into stdout and
stderr and pulls the job script's marker lines (`<token> step N`, `<token> end N RC OOM` on stdout,
`<token> eof` on stderr) out of the streams, so the token never reaches the user.
`copy_build_archive` writes the engine's tar stream of /build to a plain tar file, keeping whole
members only, up to a size limit. `JobUpload` hands the container its folders, its marker token and the
project (under src/) in one put_archive, without the tar's trailing zero padding; `attach_while_uploading` sends
it while the attach is made.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import docker.errors

STDOUT, STDERR = "stdout", "stderr"
_HEADER = 8
_MAX_PENDING = 4096  # a "marker" this long without a newline is not ours: let it through


class OutputDemux:
    """Feed it raw bytes from the attach socket; it calls `output(kind, data)` and `marker(kind, words)`.

    Work per frame is a header decode and one `bytes.find` of the token; consecutive frames of the
    same stream in one `feed` are handed on as one piece. A marker may start anywhere in a frame (after
    output without a newline) and may be split across frames: a tail that could be the start of one is
    held back until the next frame of that stream.
    """

    def __init__(self, token: bytes, output: Callable[[str, bytes], None],
                 marker: Callable[[str, list[str]], None]):
        if not token or token[:1] in token[1:]:
            raise ValueError("the token's first byte must not occur again in it")
        self._token = token
        self._output = output
        self._marker = marker
        self._buf = bytearray()
        self._pending = {STDOUT: b"", STDERR: b""}  # bytes held back: a marker not complete yet

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        n = len(buf)
        off = 0
        kind = STDOUT
        parts: list[bytes] = []
        mv = memoryview(buf)
        try:
            while n - off >= _HEADER:
                size = int.from_bytes(mv[off + 4:off + 8], "big")
                end = off + _HEADER + size
                if end > n:
                    break
                k = STDERR if buf[off] == 2 else STDOUT
                if k != kind and parts:
                    self._scan(kind, parts[0] if len(parts) == 1 else b"".join(parts))
                    parts = []
                kind = k
                parts.append(bytes(mv[off + _HEADER:end]))
                off = end
        finally:
            mv.release()
        if parts:
            self._scan(kind, parts[0] if len(parts) == 1 else b"".join(parts))
        if off:
            del buf[:off]

    def flush(self) -> None:
        """At the end of the stream: whatever was held back is the user's output after all."""
        for kind, data in self._pending.items():
            if data:
                self._pending[kind] = b""
                if self._token not in data:
                    self._output(kind, data)

    def _scan(self, kind: str, data: bytes) -> None:
        tok = self._token
        held = self._pending[kind]
        if held:
            data = held + data
            self._pending[kind] = b""
        start = 0
        i = data.find(tok)
        while i >= 0:
            if i > start:
                self._output(kind, data[start:i])
            j = data.find(b"\n", i)
            if j < 0:
                if len(data) - i > _MAX_PENDING:  # not a marker of ours: pass it on
                    self._output(kind, data[i:])
                else:
                    self._pending[kind] = data[i:]
                return
            self._marker(kind, data[i + len(tok):j].decode("ascii", "replace").split())
            start = j + 1
            i = data.find(tok, start)
        # hold back a tail that may be the start of a marker split across frames
        p = data.rfind(tok[:1], max(start, len(data) - len(tok) + 1))
        if p >= 0 and tok.startswith(data[p:]):
            if p > start:
                self._output(kind, data[start:p])
            self._pending[kind] = data[p:]
        elif start < len(data):
            self._output(kind, data[start:] if start else data)


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (the engine's archive stream)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it: Iterator[bytes] = iter(chunks)
        self._chunk = b""
        self._pos = 0
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._pos >= len(self._chunk):
            try:
                self._chunk = next(self._it)
            except StopIteration:
                return 0
            self._pos = 0
        n = min(len(b), len(self._chunk) - self._pos)
        b[:n] = self._chunk[self._pos:self._pos + n]
        self._pos += n
        self.consumed += n
        return n


class ArchiveCopy:
    """The outcome of `copy_build_archive`."""

    def __init__(self, members: int, size: int, truncated: bool):
        self.members = members
        self.size = size
        self.truncated = truncated


def _blocks(size: int, unit: int = 512) -> int:
    return (size + unit - 1) // unit * unit


def copy_build_archive(chunks: Iterable[bytes], dest: Path, limit: int) -> ArchiveCopy:
    """Copy a tar stream to `dest` as a plain tar of at most `limit` bytes, whole members only.

    A member that does not fit is left out (and `truncated` set) but smaller ones after it are still
    kept; reading stops once the stream has given four times the limit (plus 64 MiB) so that a huge
    /build is not read to its end for nothing. Raises tarfile.ReadError on an empty or broken stream.
    """
    reader = _ChunkReader(chunks)
    try:
        return _copy(reader, dest, limit)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _copy(reader: _ChunkReader, dest: Path, limit: int) -> ArchiveCopy:
    stop_after = 4 * limit + (64 << 20)
    members = 0
    truncated = False
    with io.BufferedReader(reader, 1 << 20) as src, \
            tarfile.open(fileobj=src, mode="r|") as tin, \
            tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                         copybufsize=1 << 20) as tout:  # TarFile takes it; typeshed's open() does not say so
        for m in tin:
            need = 512 + (_blocks(m.size) if m.isreg() else 0) + (1024 if m.pax_headers else 0)
            if _blocks(tout.offset + need + 1024, tarfile.RECORDSIZE) > limit:
                truncated = True
                if reader.consumed > stop_after:
                    break
                continue
            if m.isreg():
                tout.addfile(m, tin.extractfile(m))
            else:
                tout.addfile(m)
            members += 1
    return ArchiveCopy(members, dest.stat().st_size, truncated)


class JobUpload(io.RawIOBase):
    """What a job's container gets before it starts, in one put_archive at "/": the members of `head` (its
    folders and the marker token's file, a tar without its end marker) and the project tar at `source_tar`
    with every name (and hard link target) under src/, then the end-of-archive marker and no record padding:
    Podman's extractor stops reading at the marker and exits, and an upload still writing padding then fails
    with "broken pipe". The project's file data is read from `source_tar` as it is sent, not copied;
    `len()` gives the request its Content-Length. Raises tarfile.ReadError when `source_tar` is not a tar.
    """

    def __init__(self, source_tar: Path, head: bytes, under: str = "src"):
        super().__init__()
        self._f = open(source_tar, "rb")  # noqa: SIM115 - closed with this object
        self._parts: list[bytes | tuple[int, int]] = [head]  # bytes, or (offset, length) of source_tar
        try:
            with tarfile.open(fileobj=self._f, mode="r:") as tar:
                for m in tar:
                    if m.name in ("", "."):
                        continue  # the folder itself: `head` has it
                    data_at, size = m.offset_data, m.size if m.isreg() else 0
                    m.name = f"{under}/{m.name}"
                    if m.islnk():
                        m.linkname = f"{under}/{m.linkname}"
                    # a long name's pax record would win over the new name
                    m.pax_headers = {k: v for k, v in m.pax_headers.items() if k not in ("path", "linkpath")}
                    self._parts.append(m.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))
                    if size:
                        self._parts.append((data_at, _blocks(size)))
        except BaseException:
            self._f.close()
            raise
        self._parts.append(bytes(2 * tarfile.BLOCKSIZE))
        self._length = sum(len(p) if isinstance(p, bytes) else p[1] for p in self._parts)
        self._part = 0
        self._done = 0  # bytes of the current part already sent

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._part < len(self._parts):
            part = self._parts[self._part]
            size = len(part) if isinstance(part, bytes) else part[1]
            if self._done >= size:
                self._part, self._done = self._part + 1, 0
                continue
            n = min(len(b), size - self._done)
            if isinstance(part, bytes):
                b[:n] = part[self._done:self._done + n]
            else:
                n = os.preadv(self._f.fileno(), [memoryview(b)[:n]], part[0] + self._done)
                if n <= 0:
                    raise OSError("the project archive became shorter while it was sent")
            self._done += n
            return n
        return 0

    def close(self) -> None:
        self._f.close()
        super().close()


class Uploading:
    """`container.put_archive("/", upload)` in a thread of its own; `result()` waits for it: None when the engine
    took the archive, its APIError when it refused it. Anything else (the engine gone) is raised there."""

    def __init__(self, container, upload: JobUpload):
        self._container = container
        self._upload = upload
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._put, name="job-upload", daemon=True)
        self._thread.start()

    def _put(self) -> None:
        try:
            with self._upload:
                self._container.put_archive("/", self._upload)
        except BaseException as e:  # noqa: BLE001 - handed to the job's thread in result()
            self._error = e

    def result(self) -> docker.errors.APIError | None:
        self._thread.join()
        if isinstance(self._error, docker.errors.APIError):
            return self._error
        if self._error is not None:
            raise self._error
        return None


def attach_while_uploading(container, upload: JobUpload) -> tuple[Any, docker.errors.APIError | None]:
    """The container's attach socket (stdout and stderr, made before it starts) and the engine's refusal of the
    project's upload, or None. The project goes in while the attach is made: Podman sets the container up (its
    runtime, the output relay) in the attach, and most of the upload's ~25 ms overlaps it. An upload that fails
    otherwise (the engine gone) is raised once the attach is closed again."""
    uploading = Uploading(container, upload)
    try:
        sock = container.attach_socket(params={"stdout": 1, "stderr": 1, "stream": 1})
    except BaseException:
        with contextlib.suppress(Exception):  # the attach's error is the one to tell
            uploading.result()
        raise
    try:
        return sock, uploading.result()
    except BaseException:
        sock.close()
        raise
