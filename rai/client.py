"""What the `rai` client does, without the command line: submit, follow, fetch, cancel."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rai import __version__
from rai.archive import pack_directory, unpack
from rai.backends import Backends
from rai.backends.store import upload_key
from rai.errors import NotFound, UserError
from rai.models import CancelRequest, JobRecord, JobRequest, JobState, LogEntry, new_job_id, utcnow
from rai.profile import Profile
from rai.signing import sign
from rai.spec import JobSpec, load_spec


@dataclass
class Submission:
    job_id: str
    queue: str
    spec: JobSpec
    files: int
    size: int


class Client:
    def __init__(self, backends: Backends, profile: Profile):
        self.b = backends
        self.profile = profile

    def submit(
        self,
        directory: Path,
        queue: str | None = None,
        submission: str | None = None,
        exclude: tuple[Path, ...] = (),
        on_progress: Callable[[str], None] = lambda _: None,
        spec: JobSpec | None = None,
    ) -> Submission:
        """Validate, pack, upload and enqueue `directory`; returns as soon as the job is queued."""
        directory = Path(directory)
        spec = spec or load_spec(directory)
        queue = queue or self.b.config.broker.queue or f"rai_{spec.resources.cpu.architecture}"
        job_id = new_job_id()
        key = upload_key(self.profile.username, job_id)
        with tempfile.TemporaryDirectory(prefix="rai-upload-") as tmp:
            archive = Path(tmp) / "project.tar.zst"
            on_progress(f"packing {directory}")
            packed = pack_directory(directory, archive, exclude=exclude)
            on_progress(f"uploading {packed.files} files ({packed.size} bytes)")
            self.b.store.put_file(key, archive)
        request = JobRequest(
            job_id=job_id,
            access_key=self.profile.access_key,
            username=self.profile.username,
            team=self.profile.team,
            queue=queue,
            spec=spec.model_dump(mode="json"),
            upload_key=key,
            upload_sha256=packed.sha256,
            upload_size=packed.size,
            submission=submission,
            client_version=__version__,
        )
        sign(request, self.profile.secret_key)
        record = JobRecord(
            job_id=job_id,
            username=self.profile.username,
            team=self.profile.team,
            queue=queue,
            submission=submission,
            submitted_at=request.submitted_at,
            image=spec.rai.image,
            upload_key=key,
        )
        self.b.live.put_job(record, ttl=self.b.config.pubsub.retention + 30 * 86400)
        self.b.queue.enqueue(queue, request.to_json())
        return Submission(job_id, queue, spec, packed.files, packed.size)

    def follow(self, job_id: str, live: bool = True, idle: float | None = None) -> Iterator[LogEntry]:
        """The job's log from its first entry; with `live`, on until its end entry."""
        if not live:
            after = "0"
            while True:
                batch = self.b.logs.read(job_id, after=after, count=1000)
                if not batch:
                    return
                for entry_id, entry in batch:
                    after = entry_id
                    yield entry
        else:
            yield from self.b.logs.follow(job_id, idle=idle)

    def status(self, job_id: str) -> JobRecord:
        record = self.b.live.get_job(job_id)
        if record is None:
            raise NotFound(f"no job {job_id}", hint="check the id; jobs are kept for the retention period")
        return record

    def cancel(self, job_id: str) -> JobRecord:
        record = self.status(job_id)
        if record.state.finished:
            raise UserError(f"job {job_id} already ended ({record.state.value})", exit_code=1)
        req = CancelRequest(job_id=job_id, access_key=self.profile.access_key, requested_at=utcnow())
        sign(req, self.profile.secret_key)
        self.b.live.request_cancel(req)
        return record

    def download_outputs(self, job_id: str, dest: Path, record: JobRecord | None = None) -> int:
        """Unpack the job's `/build` folder into `dest`; returns the number of files."""
        record = record or self.status(job_id)
        if not record.output_key:
            if record.state in (JobState.queued, JobState.running):
                raise UserError(f"job {job_id} has not ended yet", hint=f"wait with `rai logs {job_id} -f`")
            raise NotFound(f"job {job_id} has no outputs ({record.state.value}: {record.message})")
        with tempfile.TemporaryDirectory(prefix="rai-get-") as tmp:
            archive = Path(tmp) / "build.tar.zst"
            self.b.store.get_file(record.output_key, archive)
            return unpack(archive, Path(dest), strip_top="build")
