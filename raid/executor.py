"""Runs one job in one container: upload /src, run the commands, stream output, copy /build back.

The container runs a small shell script (raid/job_script.py) that runs each command with
`/bin/sh -c` in /build and stops at the first failure. It tells us which command runs and how the
job ended through marker lines that carry a per-job random token; `OutputDemux` takes them out of
the stream, so the user sees only their own output. After its end markers the script sleeps: /build
is copied while the container still runs (Podman unmounts a container's root file system while it
exits, so a copy taken then can come back empty), and then the container is removed. On a time
limit or a cancel the container is paused (frozen) instead, and /build copied the same way.

Engine problems (the socket does not answer, the API fails) raise; anything the job itself causes
(an image that cannot be pulled or cannot start /bin/sh, a failing command, a limit) comes back as
a `RunResult`.
"""

from __future__ import annotations

import functools
import io
import logging
import secrets
import select
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import docker
import docker.errors
import docker.types
import requests

from rai.config import DockerConfig
from rai.domain.models import JobState
from rai.errors import ServiceUnavailable
from raid.build_copy import copy_build, empty_build
from raid.cgroups import pids_cgroup, pids_refused
from raid.container_output import JobUpload, OutputDemux, attach_while_uploading
from raid.container_removal import ContainerRemover
from raid.engine import connect
from raid.images import ImageNotFound, ensure_image
from raid.job_script import JobMarkers, duration_text, job_script, marker_token, size_text, token_tar

log = logging.getLogger(__name__)

CANCEL_POLL = 0.2  # seconds between should_cancel() calls
RECV_SIZE = 256 * 1024
# A job that prints fast arrives in the engine's 4 KB frames, one recv each (6,000 for 15 MB, a tenth of a CPU-s
# of raid's): after a read of a whole frame or more, but short of COALESCE_BELOW, the reader lets more gather
# first. Smaller reads (a line, the job script's markers) are not held: a trivial job ends as fast as before,
# and the log batches output for 50 ms anyway.
COALESCE_FROM = 4 * 1024
COALESCE_BELOW = 64 * 1024
COALESCE_WAIT = 0.002
DRAIN_TIMEOUT = 2.0  # at most this long reading what a stopped job had written
DRAIN_QUIET = 0.1  # ... or until the stream is quiet this long
EOF_MARKER_WAIT = 2.0  # after the end marker on stdout, wait at most this long for the one on stderr
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"]


@dataclass
class RunSpec:
    job_id: str
    image: str
    commands: list[str]  # each run through /bin/sh -c in /build, in order, stopping at the first failure
    env: dict[str, str]  # extra environment; CI, RAI, RAI_SOURCE_DIR, RAI_BUILD_DIR, RAI_JOB_ID always set
    source_tar: Path  # a plain tar of the project, extracted into /src before start
    network: bool = False
    memory_limit: int | None = None  # bytes, no swap
    pids_limit: int | None = 4096
    time_limit: float = 3600.0  # seconds of wall clock from the start
    gpus: int = 0
    labels: dict[str, str] = field(default_factory=dict)  # rai.job=<job_id> is added
    output_limit: int = 1 << 30  # bytes of /build archive kept
    nofile: int = 1024
    nproc: int = 4096
    cpus: float | None = None  # CPU quota (nano_cpus); None: no limit


@dataclass
class RunResult:
    state: JobState  # succeeded | failed | timeout | oom | cancelled | error
    exit_code: int | None
    duration: float  # seconds the commands ran
    message: str  # one line a student understands
    failed_command: int | None = None  # 1-based
    output_truncated: bool = False


class OutputSink(Protocol):
    def output(self, kind: str, data: bytes) -> None: ...  # "stdout" / "stderr", raw bytes in order

    def status(self, text: str) -> None: ...  # "$ make", "pulling image ..."


def _dirs_tar(token_hex: str | None = None) -> bytes:
    """A tar of the empty /src and /build folders (and the marker token's file), no record padding; the
    project follows it in the same put_archive (JobUpload)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, mode in (("src", 0o755), ("build", 0o777)):
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE
            ti.mode = mode
            ti.mtime = int(time.time())
            t.addfile(ti)
        if token_hex is not None:
            with tarfile.open(fileobj=io.BytesIO(token_tar(token_hex))) as token:
                member = token.next()
                if member is not None:  # token_tar holds one file
                    t.addfile(member, token.extractfile(member))
        end = t.offset + 1024  # the two zero blocks that end the archive
    return buf.getvalue()[:end]


class Executor:
    def __init__(self, client: docker.DockerClient, gpu_driver: str = "nvidia"):
        self.client = client
        self.gpu_driver = gpu_driver
        self._remover = ContainerRemover()  # containers go once their job's result is known, not before

    # --- engine -------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: DockerConfig) -> Executor:
        """Connect to base_url, else DOCKER_HOST, else the first of the usual sockets that answers."""
        return cls(connect(cfg), gpu_driver=cfg.gpu_driver)

    @functools.cached_property
    def engine_reports_oom(self) -> bool:
        """Whether the engine sets State.OOMKilled when the kernel kills a job for memory: Docker Engine does;
        Podman's compatible API leaves it false here, so there an exit 137 under a memory limit is read as
        out of memory (a kill from outside looks the same)."""
        try:
            components = self.client.version().get("Components") or []
        except Exception:  # noqa: BLE001 - unknown: fall back on the exit code, as for Podman
            return False
        return not any("podman" in str(c.get("Name", "")).lower() for c in components)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001
            return False

    def ensure_image(self, image: str, sink: OutputSink) -> None:
        """Pull `image` when the node lacks it (progress in the job log); ImageNotFound says why it cannot."""
        ensure_image(self.client, image, sink)

    def remove_leftovers(self, labels: dict[str, str]) -> int:
        """Remove every container (any state) carrying all of `labels`; returns how many."""
        if not labels:
            raise ValueError("remove_leftovers needs at least one label")
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        removed = 0
        for c in self.client.containers.list(all=True, filters=filters):
            if any(c.labels.get(k) != v for k, v in labels.items()):
                continue
            try:
                c.remove(force=True)
                removed += 1
            except docker.errors.NotFound:
                pass
        return removed

    # --- a job --------------------------------------------------------------------------------

    def run(self, spec: RunSpec, sink: OutputSink, should_cancel: Callable[[], str | None],
            build_archive: Path) -> RunResult:
        """Run the job to its end; its container is handed to the remover thread before this returns, also on
        exceptions (`wait_removals` waits for it).

        `should_cancel` is polled every 0.2 s; a reason it returns ends the job as cancelled with that
        reason as the message. /build is written to `build_archive` as a plain tar (left absent when
        it cannot be copied). Raises ServiceUnavailable when the engine stops answering.
        """
        try:
            return self._run(spec, sink, should_cancel, build_archive)
        except requests.exceptions.ConnectionError as e:
            raise ServiceUnavailable(f"the container engine stopped answering: {e}",
                                     hint="check that Docker or Podman's API socket is running") from e

    def _run(self, spec: RunSpec, sink: OutputSink, should_cancel: Callable[[], str | None],
             build_archive: Path) -> RunResult:
        token_hex = secrets.token_hex(16)
        try:
            self.ensure_image(spec.image, sink)
        except ImageNotFound as e:
            return RunResult(JobState.error, None, 0.0, e.message)
        try:  # the folders, the marker token and the project in one call: each put_archive costs Podman ~35 ms
            upload = JobUpload(spec.source_tar, _dirs_tar(token_hex)[:-2 * tarfile.BLOCKSIZE])
        except (OSError, tarfile.TarError) as e:
            log.warning("job %s: reading the project archive failed: %s", spec.job_id, e)
            return RunResult(JobState.error, None, 0.0, "the project archive could not be read on the node; submit "
                             "again (the node's log has the details under the job id)")
        sock = None
        self._remover.setup_begins()  # no container removed beside it: the engine does one thing at a time
        setting_up = True
        try:
            container = self._create(spec, token_hex)
        except BaseException:
            self._remover.setup_ends()
            upload.close()
            raise
        try:
            sock, refused_by = attach_while_uploading(container, upload)
            if refused_by is not None:  # its words name the host's storage paths: for raid's log only
                log.warning("job %s: the engine refused the project archive: %s", spec.job_id, refused_by)
                return RunResult(JobState.refused, None, 0.0,
                                 "refused: the container engine would not unpack your project into /src (a link "
                                 "pointing outside the project, a device file or an odd file name?); remove it and "
                                 "submit again")
            try:
                container.start()
            except docker.errors.APIError as e:
                log.warning("job %s: the container did not start: %s", spec.job_id, e)
                if spec.gpus and "device driver" in str(e):  # Docker without the NVIDIA container toolkit
                    return RunResult(JobState.error, None, 0.0,
                                     f"the node's container engine could not give the job {spec.gpus} GPU"
                                     f"{'s' if spec.gpus > 1 else ''} (no NVIDIA container runtime there); tell the "
                                     "operators")
                return RunResult(JobState.error, None, 0.0,
                                 f"the container did not start: the image {spec.image} may lack /bin/sh, or the node's "
                                 "engine failed (the node's log has the details under the job id)")
            self._remover.setup_ends()
            setting_up = False
            return self._follow(spec, sink, should_cancel, build_archive, container, sock, token_hex)
        finally:
            if setting_up:
                self._remover.setup_ends()
            upload.close()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
            self._remover.remove_later(container, spec.job_id)

    def wait_removals(self, timeout: float = 60.0) -> bool:
        """Wait until every finished job's container is removed (raid's stop, tests); False on timeout."""
        return self._remover.wait(timeout)

    def _create(self, spec: RunSpec, token_hex: str):
        env = dict(spec.env)
        env.update({"CI": "rai", "RAI": "true", "RAI_SOURCE_DIR": "/src", "RAI_BUILD_DIR": "/build",
                    "RAI_JOB_ID": spec.job_id})
        kwargs: dict = dict(
            entrypoint=["/bin/sh"],
            command=["-c", job_script(spec.commands)],  # the token goes in a file, not on the command line
            name=f"rai-{spec.job_id}-{token_hex[:6]}",
            environment=env,
            labels={**spec.labels, "rai.job": spec.job_id},
            # the script goes to /build itself: a working folder the image lacks (the project's upload makes
            # /build) has Podman make it while the attach sets the container up, beside the upload: ~50 ms more
            working_dir="/",
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            cap_add=list(CAPABILITIES),
            ulimits=[docker.types.Ulimit(name="nofile", soft=spec.nofile, hard=spec.nofile),
                     docker.types.Ulimit(name="nproc", soft=spec.nproc, hard=spec.nproc)],
            auto_remove=False,
            stdin_open=False,
            tty=False,
            # raid reads the output through its attach and keeps it in the job's log: no second copy in the
            # engine's own log file on the node's disk (a job that prints gigabytes would fill it)
            log_config=docker.types.LogConfig(type="none"),
        )
        if not spec.network:
            kwargs["network_mode"] = "none"
        if spec.pids_limit:
            kwargs["pids_limit"] = spec.pids_limit
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.memory_limit:
            kwargs["mem_limit"] = spec.memory_limit
            kwargs["memswap_limit"] = spec.memory_limit
        if spec.gpus > 0:
            kwargs["device_requests"] = [docker.types.DeviceRequest(
                count=spec.gpus, capabilities=[["gpu"]], driver=self.gpu_driver)]
        return self.client.containers.create(spec.image, **kwargs)

    def _follow(self, spec: RunSpec, sink: OutputSink, should_cancel: Callable[[], str | None],
                build_archive: Path, container, sock, token_hex: str) -> RunResult:
        result = self._watch(spec, sink, should_cancel, build_archive, container, sock, token_hex)
        refused = pids_refused(pids_cgroup(container.id))
        if refused and spec.pids_limit:  # forks refused at the limit: a fork bomb, or a job that needs more
            result.message += (f"; the job hit the process limit of {spec.pids_limit} "
                               f"({refused} process starts refused)")
        return result

    # long: one read loop and its three endings (markers, a stop, a killed shell) share the state they read
    def _watch(self, spec: RunSpec, sink: OutputSink, should_cancel: Callable[[], str | None],
               build_archive: Path, container, sock, token_hex: str) -> RunResult:
        job = JobMarkers(spec.job_id, spec.commands, sink.status)
        demux = OutputDemux(marker_token(token_hex), sink.output, job.marker)
        raw = getattr(sock, "_sock", sock)
        started = time.monotonic()
        deadline = started + spec.time_limit
        next_poll = started
        stop: str | None = None  # "timeout" or the cancel reason
        cancel_check_failed = False
        while not job.done:
            now = time.monotonic()
            if job.ended:
                if now - job.ended_at > EOF_MARKER_WAIT:
                    break
            elif now >= deadline:
                stop = "timeout"
                break
            elif now >= next_poll:
                next_poll = now + CANCEL_POLL
                try:
                    reason = should_cancel()
                except Exception:  # noqa: BLE001 - a broken check must not end the job
                    reason = None
                    if not cancel_check_failed:
                        log.exception("job %s: checking for a cancel failed", spec.job_id)
                    cancel_check_failed = True
                if reason:
                    stop = reason
                    break
            pending = getattr(raw, "pending", None)
            if not (pending and pending()):
                wake = job.ended_at + EOF_MARKER_WAIT if job.ended else min(next_poll, deadline)
                ready, _, _ = select.select([raw], [], [], max(0.0, wake - now))
                if not ready:
                    continue
            data = raw.recv(RECV_SIZE)
            if not data:
                break
            demux.feed(data)
            if COALESCE_FROM <= len(data) < COALESCE_BELOW and not job.ended:
                time.sleep(COALESCE_WAIT)
        duration = (job.ended_at if job.ended else time.monotonic()) - started

        if job.ended:  # the script holds the container: copy /build while it runs, then remove it
            demux.flush()
            truncated = False
            if job.build_empty:  # nothing to copy: the archive of an empty /build, written here
                empty_build(build_archive)
            else:
                truncated = self._copy_build(container, build_archive, spec, sink, alive=True)
            state, message = job.outcome(spec.memory_limit)
            return RunResult(state, job.rc, duration, message, job.failed, truncated)

        if stop is not None:  # freeze the job, take what it wrote, copy /build, then remove it
            try:
                container.pause()
            except docker.errors.APIError as e:
                log.warning("job %s: pausing the container failed: %s", spec.job_id, e)
            self._drain(raw, demux)
            truncated = self._copy_build(container, build_archive, spec, sink, alive=True)
            if stop == "timeout":
                return RunResult(JobState.timeout, None, duration,
                                 f"time limit of {duration_text(spec.time_limit)} reached", None, truncated)
            return RunResult(JobState.cancelled, None, duration, stop, None, truncated)

        # the script itself ended without its end marker (killed: by the OOM killer or from outside)
        demux.flush()
        try:
            container.wait(timeout=10)  # the exit code is only true once the container has exited
        except Exception:  # noqa: BLE001 - read what there is
            pass
        try:
            container.reload()
            exit_code = container.attrs["State"].get("ExitCode")
            oom_killed = bool(container.attrs["State"].get("OOMKilled"))
        except docker.errors.APIError:
            exit_code, oom_killed = None, False
        truncated = self._copy_build(container, build_archive, spec, sink, alive=False)
        if oom_killed or (exit_code == 137 and spec.memory_limit and not self.engine_reports_oom):
            limit = size_text(spec.memory_limit) if spec.memory_limit else "the node's memory"
            return RunResult(JobState.oom, exit_code, duration, f"out of memory: the job's limit is {limit}", None,
                             truncated)
        return RunResult(JobState.error, exit_code, duration,
                         f"the job's shell ended unexpectedly (exit code {exit_code})", None, truncated)

    @staticmethod
    def _drain(raw, demux: OutputDemux) -> None:
        """Read what the (paused) job had written until the stream goes quiet or ends."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([raw], [], [], DRAIN_QUIET)
                if not ready:
                    break
                data = raw.recv(RECV_SIZE)
                if not data:
                    break
                demux.feed(data)
        except OSError:
            pass
        demux.flush()

    @staticmethod
    def _copy_build(container, dest: Path, spec: RunSpec, sink: OutputSink, alive: bool) -> bool:
        return copy_build(container, dest, spec.output_limit, spec.job_id, sink.status, alive)
