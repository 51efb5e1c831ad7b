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
from rai.errors import NotFound, ServiceUnavailable, UserError
from rai.models import CancelRequest, JobRecord, JobRequest, JobState, LogEntry, new_job_id, utcnow
from rai.profile import Profile
from rai.projects import check_submission, published_projects
from rai.signing import sign
from rai.spec import JobSpec, load_spec, parse_spec
from rai.units import plural


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
        self._aws = None  # vended AWS credentials in use (S3 store)

    def _aws_credentials(self) -> None:
        """On S3 with vended credentials: get short-lived ones scoped to this user (again when 2 minutes are left)."""
        cfg = self.b.config.store
        if cfg.provider != "s3" or cfg.client_credentials != "vended":
            return
        if self._aws is not None and self._aws.expiration and (self._aws.expiration - utcnow()).total_seconds() > 120:
            return
        from rai.backends.sts import request_upload_credentials

        self._aws = request_upload_credentials(self.b.redis, self.profile.access_key, self.profile.username,
                                               self.profile.secret_key, cfg.vend_timeout)
        self.b.use_aws_credentials(self._aws)

    def submit(
        self,
        directory: Path,
        queue: str | None = None,
        submission: str | None = None,
        exclude: tuple[Path, ...] = (),
        on_progress: Callable[[str], None] = lambda _: None,
        spec: JobSpec | None = None,
        upload_progress: Callable[[int, int], None] | None = None,
    ) -> Submission:
        """Validate, pack, upload and enqueue `directory`; returns as soon as the job is queued.

        `upload_progress(bytes_just_sent, total)` is called as the archive goes up (from several threads on S3)."""
        directory = Path(directory)
        if submission:  # a ranked submission: refused here, before any upload, for an unknown kind or a missing file
            _project, kind = check_submission(published_projects(self.b.redis, self.b.config.projects), directory,
                                              submission)
            if spec is None and kind.spec is not None:
                spec = parse_spec(kind.spec, f"the build spec of {submission}")  # what raid will run
        spec = spec or load_spec(directory)
        queue = queue or self.b.config.broker.queue or f"rai_{spec.resources.cpu.architecture}"
        job_id = new_job_id()
        key = upload_key(self.profile.username, job_id)
        with tempfile.TemporaryDirectory(prefix="rai-upload-") as tmp:
            archive = Path(tmp) / "project.tar.zst"
            on_progress(f"packing {directory}")
            packed = pack_directory(directory, archive, exclude=exclude)
            on_progress(f"uploading {packed.files} files ({packed.size} bytes)")
            self._aws_credentials()
            total = archive.stat().st_size
            self.b.store.put_file(key, archive,
                                  progress=(lambda n: upload_progress(n, total)) if upload_progress else None)
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
        self._aws_credentials()  # a long upload may have used most of them up
        self.b.queue.enqueue(queue, request.to_json())
        return Submission(job_id, queue, spec, packed.files, packed.size)

    def queue_notice(self, queue: str, gpus: int = 0) -> str | None:
        """Why a job just queued may not start soon, as the nodes' heartbeats tell it; None when a node
        that can run it is up (or when the heartbeats cannot be read: the job is queued either way)."""
        try:
            nodes = self.b.live.serving(queue)
        except Exception:  # noqa: BLE001 - only advice; never fail a submission that went through
            return None
        if not nodes:
            return (f"no rai node serves queue {queue} right now: the job waits there until one starts "
                    "(ctrl+c leaves it queued; follow it later with `rai logs JOB -f`)")
        if gpus and not any(n.heartbeat.offered_gpus >= gpus for n in nodes):
            return (f"no node on queue {queue} has {plural(gpus, 'GPU')}: the job will be refused "
                    "unless one starts first; remove resources.gpu.count from rai_build.yml to run without")
        if all(n.draining for n in nodes):
            return f"every node on queue {queue} is drained for now: the job waits until the staff resume one"
        return None

    def follow(self, job_id: str, live: bool = True, idle: float | None = None,
               on_wait: Callable[[JobRecord, tuple[int, int] | None], None] | None = None) -> Iterator[LogEntry]:
        """The job's log from its first entry; with `live`, on until its end entry. While the job waits in
        its queue and its log is quiet, `on_wait(record, (ahead, waiting) or None)` is called every couple
        of seconds."""
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
            yield from self.b.logs.follow(job_id, idle=idle,
                                          on_quiet=self._waiting_reporter(job_id, on_wait) if on_wait else None)

    def _waiting_reporter(self, job_id: str, on_wait) -> Callable[[], None]:
        started = False

        def report() -> None:
            nonlocal started
            if started:
                return
            try:
                record = self.b.live.get_job(job_id)
                if record is None or record.state != JobState.queued:
                    started = record is not None
                    return
                on_wait(record, self.position(record))
            except ServiceUnavailable:  # the log follower rides out the blip and says so if it lasts
                pass

        return report

    def position(self, record: JobRecord) -> tuple[int, int] | None:
        """(jobs waiting ahead of this one, jobs waiting on its queue), when it waits."""
        if record.state != JobState.queued or not record.queue:
            return None
        return self.b.live.waiting_position(record.queue, record.job_id)

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

    def ask(self, what: str, project: str | None = None, kind: str | None = None, limit: int = 10):
        """A signed question to the servers: `ranking`, `history` or `submitted` (rai/queries.py)."""
        from rai.queries import ask

        return ask(self.b.redis, self.profile.access_key, self.profile.username, self.profile.secret_key, what,
                   project=project, kind=kind, limit=limit)

    def download_outputs(self, job_id: str, dest: Path, record: JobRecord | None = None,
                         output_key: str | None = None) -> int:
        """Unpack the job's `/build` folder into `dest`; returns the number of files.

        `output_key` (from the job's end entry) is used as it is: raid writes the end entry a moment
        before it saves the record, so right after the end the record may still say "running"."""
        if output_key is None:
            record = record or self.status(job_id)
            if not record.output_key:
                if record.state in (JobState.queued, JobState.running):
                    raise UserError(f"job {job_id} has not ended yet", hint=f"wait with `rai logs {job_id} -f`")
                raise NotFound(f"job {job_id} has no outputs ({record.state.value}: {record.message})")
            output_key = record.output_key
        with tempfile.TemporaryDirectory(prefix="rai-get-") as tmp:
            archive = Path(tmp) / "build.tar.zst"
            self._aws_credentials()
            self.b.store.get_file(output_key, archive)
            return unpack(archive, Path(dest), strip_top="build")
