"""Copying a job's /build out of its container into a plain tar on the node, retried while the engine is
not ready to give it."""

from __future__ import annotations

import logging
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import docker.errors
import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rai.retrying import RetryLater
from raid.container_output import copy_build_archive
from raid.job_script import short

log = logging.getLogger("raid.executor")

BUILD_COPY_ATTEMPTS = 6  # tries to copy /build out (tenacity), about 3 s of waits in all
BUILD_COPY_FIRST_WAIT = 0.1  # seconds before the second try, doubling after


def copy_build(container, dest: Path, output_limit: int, job_id: str, status: Callable[[str], None],
               alive: bool) -> bool:
    """Write /build to `dest`, at most `output_limit` bytes; returns whether it was truncated. Leaves no file
    when it fails, and says so through `status` in the student's words.

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
            result = copy_build_archive(chunks, dest, output_limit)
        except (docker.errors.APIError, tarfile.TarError, requests.exceptions.RequestException) as e:
            raise RetryLater(short(str(getattr(e, "explanation", None) or e), 200)) from None
        if not result.members:
            raise RetryLater("the archive was empty")
        return result.truncated

    def before_retry(retry_state) -> None:
        log.info("job %s: copying /build failed (attempt %d): %s", job_id, retry_state.attempt_number,
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
    log.warning("job %s: /build could not be copied: %s", job_id, error)
    status("could not copy /build out of the container, so this job has no outputs "
           "(the node's log has the details under the job id)")
    return False


def empty_build(dest: Path) -> None:
    """Write to `dest` what copy_build writes for a /build with nothing in it (the folder alone, as the engine
    gives it), without asking the engine."""
    folder = tarfile.TarInfo("build")
    folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o777, int(time.time())
    folder.uname = folder.gname = "root"
    with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(folder)
