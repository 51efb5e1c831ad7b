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
import os
import queue
import secrets
import select
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import docker
import docker.errors
import docker.types
import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rai.config import DockerConfig
from rai.errors import ServiceUnavailable
from rai.models import JobState
from rai.retrying import RetryLater
from raid.container_output import OutputDemux, TarUpload, copy_build_archive
from raid.images import ImageNotFound, ensure_image
from raid.job_script import JobMarkers, duration_text, job_script, marker_token, short, size_text, token_tar

log = logging.getLogger(__name__)

CANCEL_POLL = 0.2  # seconds between should_cancel() calls
RECV_SIZE = 256 * 1024
DRAIN_TIMEOUT = 2.0  # at most this long reading what a stopped job had written
DRAIN_QUIET = 0.1  # ... or until the stream is quiet this long
EOF_MARKER_WAIT = 2.0  # after the end marker on stdout, wait at most this long for the one on stderr
BUILD_COPY_ATTEMPTS = 6  # tries to copy /build out (tenacity), about 3 s of waits in all
BUILD_COPY_FIRST_WAIT = 0.1  # seconds before the second try, doubling after
REMOVE_ATTEMPTS = 6  # tries to remove a job's container (about 30 s in all)
CGROUP_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")  # cgroup v1's pids hierarchy, then v2's unified one
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"]
SOCKETS = ["unix:///run/podman/podman.sock", "unix:///var/run/docker.sock"]


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
    """A tar of the empty /src and /build folders (and the marker token's file), uploaded before the
    project in one call (no record padding)."""
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
        # Containers are removed by a thread of their own once their job's result is known: removing one
        # takes Podman 0.3-0.8 s (more after a big output), which the job's end no longer waits for.
        self._removals: queue.Queue = queue.Queue()
        self._remover: threading.Thread | None = None
        self._remover_lock = threading.Lock()

    # --- engine -------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: DockerConfig) -> Executor:
        """Connect to base_url, else DOCKER_HOST, else the first of the usual sockets that answers."""
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
                client = docker.from_env(timeout=120) if url == "env" else docker.DockerClient(
                    base_url=url, timeout=120)
                client.ping()
            except Exception as e:  # noqa: BLE001 - any failure means "does not answer"
                tried.append(f"{shown} ({type(e).__name__})")
                continue
            return cls(client, gpu_driver=cfg.gpu_driver)
        raise ServiceUnavailable(
            "no container engine answers: tried " + ", ".join(tried),
            hint="start Docker, or Podman's API socket (podman system service --time=0 "
                 "unix:///run/podman/podman.sock &), or set docker.base_url in the config",
        )

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
        try:
            upload = TarUpload(spec.source_tar)
        except (OSError, tarfile.TarError) as e:
            log.warning("job %s: reading the project archive failed: %s", spec.job_id, e)
            return RunResult(JobState.error, None, 0.0, "the project archive could not be read on the node; submit "
                             "again (the node's log has the details under the job id)")
        sock = None
        try:
            container = self._create(spec, token_hex)
        except BaseException:
            upload.close()
            raise
        try:
            container.put_archive("/", _dirs_tar(token_hex))
            try:
                with upload:
                    container.put_archive("/src", upload)
            except docker.errors.APIError as e:  # its words name the host's storage paths: for raid's log only
                log.warning("job %s: the engine refused the project archive: %s", spec.job_id, e)
                return RunResult(JobState.refused, None, 0.0,
                                 "refused: the container engine would not unpack your project into /src (a link "
                                 "pointing outside the project, a device file or an odd file name?); remove it and "
                                 "submit again")
            sock = container.attach_socket(params={"stdout": 1, "stderr": 1, "stream": 1})
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
            return self._follow(spec, sink, should_cancel, build_archive, container, sock, token_hex)
        finally:
            upload.close()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
            self._remove_later(container, spec.job_id)

    def _remove_later(self, container, job_id: str) -> None:
        with self._remover_lock:
            if self._remover is None or not self._remover.is_alive():
                self._remover = threading.Thread(target=self._remove_queued, name="container-remover", daemon=True)
                self._remover.start()
        self._removals.put((container, job_id))

    def _remove_queued(self) -> None:
        while True:
            container, job_id = self._removals.get()
            try:
                self._remove(container, job_id)
            finally:
                self._removals.task_done()

    def wait_removals(self, timeout: float = 60.0) -> bool:
        """Wait until every finished job's container is removed (raid's stop, tests); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._removals.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _remove(self, container, job_id: str) -> None:
        """Remove the container, retrying: after an output flood Podman may answer 500 ("timed out waiting
        for file .../exits/...") for a while. What still fails is logged; raid removes it at its next start."""
        delay = 0.5
        for attempt in range(REMOVE_ATTEMPTS):
            try:
                container.remove(force=True)
                return
            except docker.errors.NotFound:
                return
            except Exception as e:  # noqa: BLE001 - never hide the job's result behind a cleanup failure
                if attempt == REMOVE_ATTEMPTS - 1:
                    log.error("job %s: removing container %s failed: %s", job_id, container.id[:12], e)
                    return
                log.info("job %s: removing container %s failed (attempt %d): %s", job_id, container.id[:12],
                         attempt + 1, e)
                time.sleep(delay)
                delay = min(delay * 2, 8.0)

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
            working_dir="/build",
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            cap_add=list(CAPABILITIES),
            ulimits=[docker.types.Ulimit(name="nofile", soft=spec.nofile, hard=spec.nofile),
                     docker.types.Ulimit(name="nproc", soft=spec.nproc, hard=spec.nproc)],
            auto_remove=False,
            stdin_open=False,
            tty=False,
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
        duration = (job.ended_at if job.ended else time.monotonic()) - started

        if job.ended:  # the script holds the container: copy /build while it runs, then remove it
            demux.flush()
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

    def _copy_build(self, container, dest: Path, spec: RunSpec, sink: OutputSink, alive: bool) -> bool:
        """Write /build to `dest`; returns whether it was truncated. Leaves no file when it fails.

        A copy taken while an exited container is still being torn down may fail or come back
        empty (Podman), so an exited container is waited for first and failures are retried.
        """
        state = {"alive": alive, "waited": False}

        def copy_once() -> bool:
            if not state["alive"] and not state["waited"]:
                state["waited"] = True
                try:
                    container.wait(timeout=10)
                except Exception:  # noqa: BLE001 - best effort: the copy is retried anyway
                    pass
            try:
                chunks, _ = container.get_archive("/build", chunk_size=1 << 20)
                result = copy_build_archive(chunks, dest, spec.output_limit)
            except (docker.errors.APIError, tarfile.TarError, requests.exceptions.RequestException) as e:
                raise RetryLater(short(str(getattr(e, "explanation", None) or e), 200)) from None
            if not result.members:
                raise RetryLater("the archive was empty")
            return result.truncated

        def before_retry(retry_state) -> None:
            log.info("job %s: copying /build failed (attempt %d): %s", spec.job_id, retry_state.attempt_number,
                     retry_state.outcome.exception())
            if not state["waited"]:
                try:
                    container.reload()
                    state["alive"] = container.status in ("running", "paused")
                except docker.errors.APIError:
                    state["alive"] = False

        try:
            return Retrying(stop=stop_after_attempt(BUILD_COPY_ATTEMPTS), retry=retry_if_exception_type(RetryLater),
                            wait=wait_exponential(multiplier=BUILD_COPY_FIRST_WAIT), before_sleep=before_retry,
                            reraise=True)(copy_once)
        except RetryLater as e:
            error = e.reason
        dest.unlink(missing_ok=True)
        log.warning("job %s: /build could not be copied: %s", spec.job_id, error)
        sink.status("could not copy /build out of the container, so this job has no outputs "
                    "(the node's log has the details under the job id)")
        return False


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
