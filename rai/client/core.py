"""What the `rai` client does, without the command line: submit, follow, fetch, cancel, ask — all through
rai-server's API (rai/client/api.py). It reads the server's URL and the user's profile, nothing else."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from rai.client.api import ServerAPI
from rai.client.packing import PackStream
from rai.client.profile import Profile
from rai.client.settings import ServerSettings
from rai.client.submitting import Credentials, Submission, submit_project
from rai.config import Config
from rai.domain.archive import unpack
from rai.domain.archive_check import ArchiveLimits
from rai.domain.job_ids import JOB_ID as JOB_ID_PATTERN
from rai.domain.models import CancelRequest, JobRecord, LogEntry
from rai.domain.signing import sign
from rai.domain.spec import JobSpec
from rai.errors import UserError

JOB_ID = re.compile(JOB_ID_PATTERN)


def job_path(job_id: str, rest: str = "") -> str:
    """The API path of a job, once its id is known to be one (a clear message instead of a server's 422)."""
    if not JOB_ID.match(job_id or ""):
        raise UserError(f"{job_id!r} is not a job id", hint="job ids look like 20261202093011-5f0c2a9b1d3e, "
                        "as `rai submit` and `rai history` print them")
    return f"/v1/jobs/{job_id}{rest}"


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
        """Validate, pack, upload and enqueue `directory`; returns as soon as the job is queued
        (rai/client/submitting.py: the archive uploaded as it is packed, on a connection of its own)."""
        return submit_project(ServerSettings.of(self.config.server), Credentials.of(self.profile), directory,
                              queue=queue, submission=submission, exclude=exclude, on_progress=on_progress,
                              spec=spec, upload_progress=upload_progress, packing=packing, me=self._whoami)

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
