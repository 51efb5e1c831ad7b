"""A node's images: pulled with progress in the job's log, built from a project's Dockerfile, pruned when unused.

A built image is tagged per user and per content (`localhost/rai-build/<user>/<image_name>:<digest>`): the same
Dockerfile and files build once, another user's or an operator's image is never overwritten. Which images raid
used when is kept in a small JSON file in the node's work folder, so a prune removes only what this node pulled
or built and nobody used for `docker.image_keep`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import docker
import docker.errors

from rai.domain.image_policy import image_allowed
from rai.errors import UserError
from rai.units import format_size
from raid.job_script import duration_text, short

log = logging.getLogger("raid.images")

IMAGE_USES = "images-used.json"  # in the node's work folder: when this node last used each image
PROGRESS_EVERY = 5.0  # seconds between two progress lines of a pull
BUILD_TAIL = 5  # last lines of a failed build repeated in its end message
STEP = re.compile(r"^(?:STEP|Step) (\d+)/(\d+) ?: ?(.*)$")  # Podman's and Docker's step lines
NAME_PART = re.compile(r"[^a-z0-9._-]+")


class ImageNotFound(UserError):
    """The job's image is not on the node and cannot be pulled."""


class BuildFailed(UserError):
    """The project's image did not build; `timed_out` when the job's time limit ended it."""

    def __init__(self, message: str, timed_out: bool = False, cancelled: bool = False):
        super().__init__(message)
        self.timed_out = timed_out
        self.cancelled = cancelled


class ImageRefused(UserError):
    """The Dockerfile builds on an image the role may not use."""


class Sink(Protocol):  # what a job's log writer offers (raid.executor.OutputSink)
    def output(self, kind: str, data: bytes) -> None: ...

    def status(self, text: str) -> None: ...


# --- pulling ------------------------------------------------------------------------------------

def pull_failure(image: str, reason: str) -> str:
    """Why a pull failed, in the student's words: a wrong name, an unreachable registry, or a full disk."""
    low = reason.lower()
    if image.startswith("localhost/") and "no space left" not in low:
        return (f"image {image} not found: the node has no such image, and localhost/ images are made on the node, "
                "never pulled; check rai.image in rai_build.yml")
    if "invalid reference" in low or "repository name must" in low:
        return f"{image} is not a valid image name; check rai.image in rai_build.yml"
    if "no space left" in low or "disk quota" in low:
        return f"the node is out of disk space while pulling {image}; submit again later (your course staff are told)"
    if any(w in low for w in ("connection refused", "no such host", "dial tcp", "timeout", "i/o timeout",
                              "network is unreachable", "tls handshake", "connection reset", "pinging container")):
        return (f"the registry of {image} cannot be reached from the node; check the registry part of rai.image, "
                "or submit again later")
    return f"image {image} not found (the registry has no image of that name or tag); check rai.image in rai_build.yml"


class PullProgress:
    """Sums the layers of a pull's events and says where it is every few seconds, not once a chunk."""

    def __init__(self, image: str, say: Callable[[str], None], every: float = PROGRESS_EVERY):
        self.image, self.say, self.every = image, say, every
        self.layers: dict[str, tuple[int, int]] = {}  # layer id -> (bytes done, bytes in all)
        self.next_at = time.monotonic() + every

    def event(self, ev: dict) -> None:
        detail = ev.get("progressDetail") or {}
        lid = ev.get("id")
        if lid and isinstance(detail, dict) and detail.get("total"):
            self.layers[lid] = (int(detail.get("current") or 0), int(detail["total"]))
        elif lid and str(ev.get("status", "")).lower().startswith(("download complete", "pull complete")):
            done, total = self.layers.get(lid, (0, 0))
            self.layers[lid] = (total, total)
        if time.monotonic() >= self.next_at:
            self.next_at = time.monotonic() + self.every
            self.say(self.line())

    def line(self) -> str:
        done = sum(d for d, _ in self.layers.values())
        total = sum(t for _, t in self.layers.values())
        sizes = ", ".join(format_size(t) for _, t in self.layers.values()) or "sizes not known yet"
        return (f"pulling {self.image}: {format_size(done)} of {format_size(total)} "
                f"({len(self.layers)} layers: {sizes})")


def ensure_image(client: docker.DockerClient, image: str, sink: Sink) -> bool:
    """Pull `image` when the node lacks it, saying its progress; ImageNotFound says why it cannot be had.
    Returns whether it was pulled."""
    if has_image(client, image):
        return False
    sink.status(f"pulling image {image}")
    started = time.monotonic()
    progress = PullProgress(image, sink.status)
    try:
        for event in client.api.pull(image, stream=True, decode=True):
            if isinstance(event, dict):
                if event.get("error"):
                    raise docker.errors.APIError(str(event["error"]))
                progress.event(event)
        client.images.get(image)
    except (docker.errors.APIError, docker.errors.ImageNotFound) as e:
        reason = str(getattr(e, "explanation", None) or e)
        log.warning("pulling %s failed: %s", image, reason)
        raise ImageNotFound(pull_failure(image, reason)) from None
    total = sum(t for _, t in progress.layers.values())
    size = f" ({format_size(total)})" if total else ""
    sink.status(f"pulled image {image}{size} in {duration_text(round(time.monotonic() - started))}")
    return True


def has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as e:
        if e.status_code == 404:
            return False
        raise


# --- building -----------------------------------------------------------------------------------

@dataclass
class BuildRequest:
    username: str
    image_name: str | None  # the tag the user sees; the real one is namespaced per user and content
    dockerfile: str  # path inside the project
    no_cache: bool
    context_tar: Path  # the project as a plain tar
    memory_limit: int
    network: bool
    allowed: list[str]  # glob patterns every FROM image must match


def _slug(text: str, fallback: str) -> str:
    return NAME_PART.sub("-", text.lower()).strip("-._")[:60] or fallback


def build_tag(req: BuildRequest, digest: str) -> str:
    name = (req.image_name or "image").rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"localhost/rai-build/{_slug(req.username, 'user')}/{_slug(name, 'image')}:{digest[:16]}"


def context_digest(context_tar: Path, dockerfile: str) -> tuple[str, str | None]:
    """A digest of the Dockerfile path and every member's name, mode and content (not mtimes), and the
    Dockerfile's text (None when the project has none there)."""
    h = hashlib.sha256(dockerfile.encode() + b"\0")
    text = None
    want = dockerfile.removeprefix("./")
    with tarfile.open(context_tar) as t:
        for m in t:
            name = m.name.removeprefix("./")
            h.update(f"{name}\0{m.type!r}\0{m.mode}\0{m.linkname}\0".encode())
            if m.isfile():
                f = t.extractfile(m)
                data = f.read() if f is not None else b""
                h.update(hashlib.sha256(data).digest())
                if name == want:
                    text = data.decode("utf-8", "replace")
    return h.hexdigest(), text


def base_images(dockerfile_text: str) -> list[str]:
    """The images the Dockerfile's FROM lines name (not its own earlier stages)."""
    stages: set[str] = set()
    bases = []
    for raw in dockerfile_text.splitlines():
        words = raw.strip().split()
        if len(words) < 2 or words[0].upper() != "FROM":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if not args:
            continue
        if args[0].lower() not in stages:
            bases.append(args[0])
        if len(args) >= 3 and args[1].upper() == "AS":
            stages.add(args[2].lower())
    return bases


def build_image(client: docker.DockerClient, req: BuildRequest, sink: Sink, time_limit: float,
                should_cancel: Callable[[], str | None] = lambda: None) -> str:
    """Build the project's image (or find it built before from the same files), streaming the build's output into
    the job's log; returns the real tag. BuildFailed/ImageRefused say why it did not build."""
    digest, text = context_digest(req.context_tar, req.dockerfile)
    if text is None:
        raise BuildFailed(f"commands.build_image.dockerfile: {req.dockerfile} is not in the project; add it or "
                          "fix the path (relative to the project folder)")
    for base in base_images(text):
        if "$" not in base and not image_allowed(base, req.allowed):
            raise ImageRefused(f"refused: the Dockerfile builds FROM {base}, which is not allowed; the allowed "
                               f"images are: {', '.join(req.allowed) or '(none)'}")
    tag = build_tag(req, digest)
    shown = req.image_name or tag
    if not req.no_cache and has_image(client, tag):
        sink.status(f"build_image: {shown} is built already from the same Dockerfile and files (cached image); "
                    "no_cache: true rebuilds it")
        return tag
    sink.status(f"building image {shown} from {req.dockerfile}" + (" (no_cache)" if req.no_cache else ""))
    started = time.monotonic()
    _stream_build(client, req, tag, sink, started + time_limit, should_cancel)
    sink.status(f"built image {shown} in {duration_text(round(time.monotonic() - started))}")
    return tag


def _build_events(client: docker.DockerClient, req: BuildRequest, tag: str) -> Iterable[dict]:
    with open(req.context_tar, "rb") as context:
        yield from client.api.build(
            fileobj=context, custom_context=True, dockerfile=req.dockerfile, tag=tag, nocache=req.no_cache,
            rm=True, forcerm=True, pull=False, decode=True, network_mode=None if req.network else "none",
            container_limits={"memory": req.memory_limit, "memswap": req.memory_limit},
            labels={"rai.built": "1", "rai.user": req.username, "rai.image_name": req.image_name or ""},
        )


def _stream_build(client, req: BuildRequest, tag: str, sink: Sink, deadline: float,
                  should_cancel: Callable[[], str | None]) -> None:
    events: queue.Queue = queue.Queue()

    def read() -> None:  # in a thread: the stream blocks while a step runs, the time limit must not
        try:
            for ev in _build_events(client, req, tag):
                events.put(ev)
        except Exception as e:  # noqa: BLE001 - handed to the job's thread
            events.put(e)
        events.put(None)

    threading.Thread(target=read, name=f"build-{tag[-16:]}", daemon=True).start()
    tail: deque[str] = deque(maxlen=BUILD_TAIL)
    step = ""
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise BuildFailed("time limit reached while building the image" + (f", at {step}" if step else ""),
                              timed_out=True)
        reason = should_cancel()
        if reason:
            raise BuildFailed(f"{reason} while its image was building", cancelled=True)
        try:
            ev = events.get(timeout=min(0.5, deadline - now))
        except queue.Empty:
            continue
        if ev is None:
            break
        if isinstance(ev, Exception):
            reason = str(getattr(ev, "explanation", None) or ev)
            log.warning("building %s failed: %s", tag, reason)
            raise BuildFailed(_failure(step, reason, tail)) from None
        if ev.get("error"):
            raise BuildFailed(_failure(step, str(ev["error"]), tail))
        text = ev.get("stream")
        if text:
            sink.output("stdout", text.encode())
            for line in text.splitlines():
                if line.strip():
                    tail.append(line.rstrip())
                m = STEP.match(line.strip())
                if m:
                    step = f"step {m.group(1)}/{m.group(2)} ({m.group(3)})"
    if not has_image(client, tag):
        raise BuildFailed(_failure(step, "the engine reported no image at the end", tail))


def _failure(step: str, reason: str, tail: deque[str]) -> str:
    reason = re.sub(r"(/[\w.-]+){2,}", "…", reason.strip())  # the engine's words may name host paths
    lines = " | ".join(short(line, 160) for line in tail)
    where = f" at {step}" if step else ""
    return f"the image build failed{where}: {short(reason, 200)}" + (f"; its last lines: {lines}" if lines else "")


# --- uses (what raid.image_prune reads) ---------------------------------------------------------------------------

class ImageUses:
    """When this node last used each image it pulled, built or ran (a JSON file; safe across worker threads)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
            return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def touch(self, image: str, at: float | None = None) -> None:
        with self._lock:
            data = self.load()
            data[image] = time.time() if at is None else at
            self._write(data)

    def forget(self, images: Iterable[str]) -> None:
        with self._lock:
            data = self.load()
            for i in images:
                data.pop(i, None)
            self._write(data)

    def _write(self, data: dict[str, float]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
        tmp.replace(self.path)
