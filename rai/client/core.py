"""What the `rai` client does, without the command line: submit, follow, fetch, cancel, ask — all through
rai-server's API (rai/client/api.py). It reads the server's URL and the user's profile, nothing else."""

from __future__ import annotations

import itertools
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rai import __version__
from rai.client.api import ServerAPI
from rai.client.packing import PackStream
from rai.client.profile import Profile
from rai.config import Config
from rai.domain.archive import unpack
from rai.domain.archive_check import ArchiveLimits
from rai.domain.models import CancelRequest, JobRecord, JobRequest, LogEntry, new_job_id
from rai.domain.object_keys import upload_key
from rai.domain.public_projects import PublicProjects, check_submission
from rai.domain.signing import sign
from rai.domain.spec import JobSpec, load_spec, parse_spec
from rai.errors import UserError
from rai.units import format_size

UPLOAD_CHUNK = 1 << 20  # the most one piece of the upload holds (zstd hands out a whole job's output at once)
JOB_ID = re.compile(r"^[0-9]{14}-[0-9a-f]{12}$")


def job_path(job_id: str, rest: str = "") -> str:
    """The API path of a job, once its id is known to be one (a clear message instead of a server's 422)."""
    if not JOB_ID.match(job_id or ""):
        raise UserError(f"{job_id!r} is not a job id", hint="job ids look like 20261202093011-5f0c2a9b1d3e, "
                        "as `rai submit` and `rai history` print them")
    return f"/v1/jobs/{job_id}{rest}"


@dataclass
class Submission:
    job_id: str
    queue: str
    spec: JobSpec
    files: int
    size: int
    notice: str | None = None  # the server's word on why the job may not start soon


class Client:
    def __init__(self, config: Config, profile: Profile, api: ServerAPI | None = None):
        self.config = config
        self.profile = profile
        self.api = api or ServerAPI(config.server, profile)
        self._whoami: dict | None = None

    def whoami(self) -> dict:
        """The account as the server knows it, the server's default queue and its ranked projects."""
        if self._whoami is None:
            self._whoami = self.api.get("/v1/whoami")
        return self._whoami

    def submit(
        self,
        directory: Path,
        queue: str | None = None,
        submission: str | None = None,
        exclude: tuple[Path, ...] = (),
        on_progress: Callable[[str], None] = lambda _: None,
        spec: JobSpec | None = None,
        upload_progress: Callable[[int, int | None], None] | None = None,
        packing: PackStream | None = None,
    ) -> Submission:
        """Validate, pack, upload and enqueue `directory`; returns as soon as the job is queued.

        The archive is uploaded as it is packed (no copy on disk; its digest and size computed on the way and
        compared with what the server measured): `upload_progress(bytes_just_sent, None)` is called as it
        goes up, the total not being known before the end. `packing`: the PackStream of `directory` already
        started by the caller (packing while the rest loads); closed here whatever happens."""
        directory = Path(directory)
        packing = packing or PackStream(directory, exclude=exclude)
        with packing:
            return self._submit(directory, queue, submission, on_progress, spec, upload_progress, packing)

    def _submit(self, directory: Path, queue: str | None, submission: str | None,
                on_progress: Callable[[str], None], spec: JobSpec | None,
                upload_progress: Callable[[int, int | None], None] | None, stream: PackStream) -> Submission:
        me = self.whoami()
        if submission:  # a ranked submission: refused here, before any upload, for an unknown kind or a missing file
            public = PublicProjects.model_validate(me["projects"])
            _project, kind = check_submission(public, directory, submission)
            if spec is None and kind.spec is not None:
                spec = parse_spec(kind.spec, f"the build spec of {submission}")  # what raid will run
        spec = spec or load_spec(directory)
        queue = queue or me.get("default_queue") or f"rai_{spec.resources.cpu.architecture}"
        job_id = new_job_id()
        on_progress(f"packing {directory} (uploading as it packs)")
        chunks = iter(stream)
        first = next(chunks, b"")  # nothing to upload, or a file that cannot be read: said before any request
        body = _upload_body(first, chunks, me.get("max_upload"), upload_progress)
        uploaded = self.api.request("PUT", f"/v1/uploads/{job_id}", content=body,
                                    headers={"Content-Type": "application/zstd"},
                                    timeout=max(self.api.timeout, 600)).json()
        packed = stream.result
        if packed is None:  # the server answered before it had the whole stream (a server that does not wait)
            raise UserError("the server answered before the whole project was uploaded", hint="submit again")
        if uploaded["sha256"] != packed.sha256 or uploaded.get("size", packed.size) != packed.size:
            raise UserError("the server received a different archive than the one sent", hint="submit again")
        on_progress(f"uploaded {packed.files} files ({packed.size} bytes)")
        request = JobRequest(
            job_id=job_id,
            access_key=self.profile.access_key,
            username=self.profile.username,
            team=self.profile.team,
            queue=queue,
            spec=spec.model_dump(mode="json"),
            upload_key=uploaded.get("upload_key") or upload_key(self.profile.username, job_id),
            upload_sha256=packed.sha256,
            upload_size=packed.size,
            submission=submission,
            client_version=__version__,
        )
        sign(request, self.profile.secret_key)
        queued = self.api.request("POST", "/v1/jobs", body=request.to_json()).json()
        return Submission(job_id, queued["queue"], spec, packed.files, packed.size, queued.get("notice"))

    def follow(self, job_id: str, live: bool = True,
               on_wait: Callable[[tuple[int, int]], None] | None = None,
               on_gap: Callable[[str], None] | None = None) -> Iterator[LogEntry]:
        """The job's log from its first entry, live until its end entry (`live` False: what there is now).
        While the job waits in its queue, `on_wait((ahead, waiting))` is called when its place changes."""
        for event, _id, data in self.api.follow_log(job_path(job_id, "/log"), live=live, on_gap=on_gap):
            if event == "waiting":
                if on_wait is not None:
                    place = json.loads(data)
                    on_wait(_place(place))
                continue
            yield LogEntry.model_validate_json(data)

    def status(self, job_id: str) -> tuple[JobRecord, tuple | None]:
        """The job's record, and while it waits (jobs waiting ahead of it, jobs waiting on its queue), with
        the server's ETA in words third when it gave one ("about 6 min")."""
        data = self.api.get(job_path(job_id))
        waiting = data.get("waiting")
        return JobRecord.model_validate(data["job"]), _place(waiting) if waiting else None

    def cancel(self, job_id: str) -> JobRecord:
        req = CancelRequest(job_id=job_id, access_key=self.profile.access_key)
        sign(req, self.profile.secret_key)
        data = self.api.request("POST", job_path(job_id, "/cancel"), body=req.to_json()).json()
        return JobRecord.model_validate(data["job"])

    def ask(self, what: str, project: str | None = None, kind: str | None = None, limit: int = 10):
        """The leaderboard (`ranking`), the user's `history`, or their team's `submitted` jobs
        (rai/domain/answers.py)."""
        from rai.domain.answers import ANSWERS

        params = {"limit": limit} if what == "history" else {"project": project, "kind": kind, "limit": limit}
        return ANSWERS[what].model_validate(self.api.get(f"/v1/{what}", **params))

    def download_outputs(self, job_id: str, dest: Path, limits: ArchiveLimits | None = None) -> int:
        """Unpack the job's `/build` folder into `dest`; returns the number of files.

        A job can write anything to /build: the archive is checked whole before anything is written
        (`limits`, by default 8 GiB, a million files and folders, 128 levels deep; nothing outside
        `dest`), and a refusal is a UserError.
        """
        with tempfile.TemporaryDirectory(prefix="rai-get-") as tmp:
            archive = Path(tmp) / "build.tar.zst"
            self.api.download(job_path(job_id, "/outputs"), archive)
            return unpack(archive, Path(dest), strip_top="build", limits=limits)


def _place(waiting: dict) -> tuple:
    """(ahead, on_queue) from the server's `waiting` answer, plus its ETA in words when it has one."""
    place = (int(waiting["ahead"]), int(waiting["on_queue"]))
    return (*place, str(waiting["eta"])) if waiting.get("eta") else place


def _upload_body(first: bytes, rest: Iterator[bytes], cap: int | None,
                 progress: Callable[[int, int | None], None] | None) -> Iterator[bytes]:
    """The PUT body: the compressed chunks as the packer makes them (the total is not known before the end:
    `progress(n, None)`); stopped with the server's own words once they would pass its `max_upload`."""
    sent = 0
    for packed in itertools.chain((first,), rest):
        for at in range(0, len(packed), UPLOAD_CHUNK):
            chunk = packed[at:at + UPLOAD_CHUNK] if len(packed) > UPLOAD_CHUNK else packed
            if cap is not None and sent + len(chunk) > cap:
                raise UserError(f"the packed project is over the server's limit of {format_size(cap)} "
                                f"(stopped after {format_size(sent)} of it)",
                                hint="leave large data and build outputs out with .raiignore")
            sent += len(chunk)
            if progress is not None:
                progress(len(chunk), None)
            yield chunk
