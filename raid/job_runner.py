"""One job from claim to ack, in named steps: verify → admit → fetch → image → run → collect, then settle:
record → publish → give back → tell the queue. Each step returns what the next one needs or the job's
`Outcome` (raid/outcome.py): ended, waits its turn, or handed back. A job never ends silent."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from rai.backends import Backends
from rai.backends.log_writer import LogWriter
from rai.backends.queue import ClaimedJob, DeadLettering
from rai.domain.image_policy import allowed_patterns
from rai.domain.models import Account, JobEnd, JobRecord, JobRequest, JobState, LogEntry, LogKind
from rai.domain.signing import verify
from rai.domain.spec import JobSpec, parse_spec
from rai.units import format_duration, format_size
from raid.admission import gpu_shortfall, take_jobs_at_once_slot
from raid.charging import charge_usage
from raid.executor import Executor, RunResult, RunSpec
from raid.images import IMAGE_USES, BuildFailed, BuildRequest, ImageRefused, ImageUses, build_image
from raid.job_record import Started, change, new_record
from raid.lease import JobLease
from raid.outcome import Ended, HandedBack, Outcome, Waits, ended, ending_of, refused
from raid.ranking import RankedRun, RankedSubmissions
from raid.verify import Limits, role_limits, verify_request
from raid.workspace import fetch_project, job_folder, node_work_dir, store_outputs

log = logging.getLogger("raid.job")

WAIT_RECHECK = 2.0  # seconds between two looks at the same waiting job on one node


@dataclass
class Attempt:
    """One delivery of a job, in this node's hands from claim to ack."""

    claimed: ClaimedJob
    req: JobRequest
    record: JobRecord
    writer: LogWriter
    lease: JobLease
    began: float = field(default_factory=time.monotonic)

    @property
    def job_id(self) -> str:
        return self.req.job_id


@dataclass
class Verified:
    """Who sent the job, the spec it runs (a ranked kind's replaces the submitter's) and under which limits."""

    account: Account
    spec: JobSpec
    limits: Limits
    ranked: RankedRun | None


class JobRunner:
    """Runs claimed jobs on this node; one instance shared by every worker slot."""

    def __init__(self, backends: Backends, executor: Executor, node: str, stopping: threading.Event,
                 submissions: RankedSubmissions | None = None, gpus: int = 0):
        self.b = backends
        self.cfg = backends.config
        self.executor = executor
        self.node = node
        self.stopping_hard = stopping  # set when running jobs must be handed back now
        self.submissions = submissions  # ranked submissions: their spec, checks, result
        self.gpus = gpus  # GPUs this node offers; a job asking for more waits for a node that has them
        self._starting = threading.Lock()  # admit-then-mark-running, one worker slot at a time
        # how long a running job's jobs_at_once slot outlives its node's last keep-alive
        self._slot_lease = max(5.0, self.cfg.broker.visibility_timeout)
        self._waiting: dict[str, float] = {}  # job id -> when this node last sent it back to wait its turn
        self.images_in_use: dict[str, str] = {}  # job id -> the image it runs in (the node's prune keeps them)
        self.image_uses = ImageUses(node_work_dir(self.cfg, node) / IMAGE_USES)

    def run(self, claimed: ClaimedJob, consumer: str) -> None:
        """Take the job through its steps to an outcome and settle it; returns once the queue knows."""
        req = self._deliverable(claimed)
        if req is None:
            return
        attempt = Attempt(claimed, req, new_record(req, claimed, self.node),
                          LogWriter(self.b.logs, req.job_id, max_log_bytes=self.cfg.pubsub.max_log_bytes),
                          JobLease(self.b, claimed, consumer, req.username, req.job_id, self._slot_lease))
        with attempt.lease:  # the message stays claimed, a taken slot leased, while the steps run
            outcome = self._steps(attempt)
        self._settle(attempt, outcome)
        if isinstance(outcome, Waits) and outcome.elsewhere:  # let a node that can run it claim it first
            self.stopping_hard.wait(WAIT_RECHECK)

    def _deliverable(self, claimed: ClaimedJob) -> JobRequest | None:
        """The job's request; None when the message is dropped: malformed, or another delivery of a job that
        ended (whose end entry is published again when it was lost)."""
        try:
            req = JobRequest.from_json(claimed.body)
        except ValidationError:
            log.error("dropping a malformed queue message %s", claimed.message_id)
            self.b.queue.ack(claimed)
            return None
        done = self.b.db.get_job(req.job_id)
        if done is not None and done.state.finished:
            log.info("job %s already ended (%s); dropping the duplicate delivery", req.job_id, done.state.value)
            self._republish_end(done)
            self.b.queue.ack(claimed)
            return None
        return req

    # --- the steps ----------------------------------------------------------------------------------

    def _steps(self, a: Attempt) -> Outcome:
        """verify → admit → fetch → image → run → collect. A step that raises (a check's Refused, a service
        down, raid's own failure) ends the job with a reason the student can act on."""
        try:
            verified = self._verify(a)
            if isinstance(verified, Ended):
                return verified
            stopped = self._admit(a, verified)
            if stopped is not None:
                return stopped
            with job_folder(self.cfg, self.node, a.job_id) as folder:  # gone before the job is recorded
                return self._in_folder(a, verified, Path(folder))
        except Exception as e:  # noqa: BLE001 - every job ends with a reason, whatever broke
            return ending_of(e, self.node, a.job_id)

    def _in_folder(self, a: Attempt, v: Verified, folder: Path) -> Outcome:
        """fetch → image → run → collect, in the job's scratch folder."""
        source_tar = fetch_project(self.b.store, a.req, folder, self.cfg.docker)
        if isinstance(source_tar, Ended):
            return source_tar
        if v.ranked is not None:
            v.ranked.check_source(source_tar)
        image_started = time.monotonic()
        image = self._image(a, v, source_tar)
        if not isinstance(image, str):
            return image
        run_spec = self._run_spec(a, v, image, source_tar, image_started)
        build_tar = folder / "build.tar"
        result = self._run(a, v, run_spec, build_tar)
        if isinstance(result, HandedBack):
            return result
        return self._collect(a, v, run_spec, result, build_tar)

    def _verify(self, a: Attempt) -> Verified | Ended:
        """Not delivered too often; signed, fresh, by a live account; a spec that parses; limits the role allows."""
        max_attempts = self.cfg.broker.max_attempts
        if a.claimed.attempts > max_attempts:
            last = self.b.live.get_job(a.job_id)
            where = f" (last on node {last.node})" if last is not None and last.node else ""
            return Ended(JobEnd(state=JobState.error, message=(
                f"dead-lettered: gave up after {max_attempts} attempts, the node running this job stopped "
                f"each time{where}; ask your course staff")), dead_letter=True)
        if a.claimed.attempts > 1:
            a.writer.status(f"attempt {a.claimed.attempts} of {max_attempts} (the previous node stopped)")
        account = verify_request(a.req, self.b.accounts, self.cfg.raid.max_request_age)
        spec = parse_spec(a.req.spec, "the job's rai_build.yml")
        ranked = self.submissions.open(a.req, a.record) if self.submissions is not None else None
        if ranked is not None:
            change(a.record, ranked.kind)
            spec = ranked.spec  # the project's build spec replaces the submitter's
        limits = role_limits(self.cfg, account, spec, a.req.queue)
        if spec.resources.limits.time and spec.resources.limits.time > limits.time:
            a.writer.status(f"time limit capped to {format_duration(limits.time)} by the server")
        if spec.resources.limits.memory and spec.resources.limits.memory > limits.memory:
            a.writer.status(f"memory limit capped to {format_size(limits.memory)} by the server")
        return Verified(account, spec, limits, ranked)

    def _admit(self, a: Attempt, v: Verified) -> Outcome | None:
        """Not cancelled meanwhile, GPUs enough here, one of the role's jobs_at_once slots: then it is marked
        running. None: go on."""
        if self.stopping_hard.is_set():
            return HandedBack()
        reason = self._cancel_reason(a.job_id)
        if reason:
            return ended(JobState.cancelled, f"{reason} before it started")
        short = gpu_shortfall(self.b.live, a.req.queue, self.node, self.gpus, v.limits.gpus)
        if short is not None:
            return short
        with self._starting:
            last = self._waiting.get(a.job_id)
            if last is not None:  # back at once: the queue holds little else, so don't spin on it
                self.stopping_hard.wait(max(0.0, WAIT_RECHECK - (time.monotonic() - last)))
            wait = take_jobs_at_once_slot(self.cfg, v.account, a.lease)
            if wait is not None:
                return wait
            change(a.record, Started(team=v.account.team))
            self._save(a.record)
        a.writer.status(f"running on {self.node} (image {v.spec.rai.image}, time limit "
                        f"{format_duration(v.limits.time)}, memory {format_size(v.limits.memory)})")
        return None

    def _image(self, a: Attempt, v: Verified, source_tar: Path) -> str | Outcome:
        """The image the job runs in: the project's own, built (or found built) from its Dockerfile, else
        rai.image (the executor pulls it when missing: the one place a job's image is pulled). Noted as in use,
        so the node's prune keeps it."""
        wanted = v.spec.commands.build_image
        if wanted is None:
            image = v.spec.rai.image
        else:
            build = BuildRequest(
                username=a.req.username, image_name=wanted.image_name, dockerfile=wanted.dockerfile or "Dockerfile",
                no_cache=wanted.no_cache, context_tar=source_tar, memory_limit=self.cfg.docker.build_memory_limit,
                network=v.limits.network, allowed=allowed_patterns(self.cfg, v.account.role))
            try:
                image = build_image(self.executor.client, build, a.writer, v.limits.time,
                                    lambda: self._stop_reason(a.job_id))
            except ImageRefused as e:
                return refused(e.message)
            except BuildFailed as e:
                if e.cancelled and self.stopping_hard.is_set():
                    return HandedBack()
                return ended(JobState.timeout if e.timed_out else JobState.cancelled if e.cancelled
                             else JobState.failed, e.message)
        self.images_in_use[a.job_id] = image
        self.image_uses.touch(image)
        return image

    def _run_spec(self, a: Attempt, v: Verified, image: str, source_tar: Path, image_started: float) -> RunSpec:
        docker, limits = self.cfg.docker, v.limits
        return RunSpec(
            job_id=a.job_id, image=image, commands=v.spec.commands.build, env=thread_env(limits.cpus),
            source_tar=source_tar, network=limits.network, memory_limit=limits.memory, pids_limit=docker.pids_limit,
            gpus=limits.gpus,
            time_limit=max(1.0, limits.time - (time.monotonic() - image_started)) if v.spec.commands.build_image
            else limits.time,  # a build's time counts against the job's limit; a pull's does not
            labels={"rai.node": self.node, "rai.user": a.req.username},
            output_limit=docker.output_limit, nofile=docker.nofile, nproc=docker.nproc, cpus=limits.cpus,
        )

    def _run(self, a: Attempt, v: Verified, run_spec: RunSpec, build_tar: Path) -> RunResult | HandedBack:
        """The job's commands in their container, output to the job's log; /build copied to `build_tar`."""
        sink = v.ranked.watch(a.writer) if v.ranked is not None else a.writer
        result = self.executor.run(run_spec, sink, lambda: self._stop_reason(a.job_id), build_tar)
        if result.state == JobState.cancelled and self.stopping_hard.is_set():
            return HandedBack()
        return result

    def _collect(self, a: Attempt, v: Verified, run_spec: RunSpec, result: RunResult, build_tar: Path) -> Ended:
        """The job's end: its /build stored for `rai get`, a ranked submission's result recorded."""
        end = JobEnd(state=result.state, exit_code=result.exit_code, duration=round(result.duration, 3),
                     message=result.message)
        stored = store_outputs(self.b.store, a.req, build_tar)
        if stored is not None:
            end.output_key, end.output_url = stored
            if result.output_truncated:
                end.message += f" (outputs truncated at {format_size(self.cfg.docker.output_limit)})"
        if v.ranked is not None:
            end.message += "; " + v.ranked.finish(result.state, build_tar, self.executor, run_spec, a.writer,
                                                  lambda: self._stop_reason(a.job_id))
        return Ended(end)

    def _cancel_reason(self, job_id: str) -> str | None:
        """Who cancelled the job, when a cancel request signed by its owner (or an admin) is there."""
        req = self.b.live.cancel_request(job_id)
        if req is None:
            return None
        account = self.b.accounts.by_access_key(req.access_key)
        if account is None or not verify(req, account.secret_key):
            return None
        record = self.b.live.get_job(job_id)
        if record is not None and account.username != record.username and account.role != "admin":
            return None
        return f"cancelled by {account.username}"

    def _stop_reason(self, job_id: str) -> str | None:
        """Why a building or running job must stop now: the node hands it back, or it was cancelled."""
        if self.stopping_hard.is_set():  # the step that stops reads this as a hand-back, not a cancel
            return f"node {self.node} is shutting down"
        return self._cancel_reason(job_id)

    # --- settling -----------------------------------------------------------------------------------

    def _settle(self, a: Attempt, outcome: Outcome) -> None:
        """Record first, publish last (whoever sees the end, `rai get` or `rai ranking`, finds the record),
        give back what the job held, then tell the queue."""
        if isinstance(outcome, Ended) and not outcome.end.duration:
            outcome.end.duration = round(time.monotonic() - a.began, 3)
        try:
            try:
                change(a.record, outcome)
                self._save(a.record)
            finally:
                self._publish(a, outcome)
        finally:
            self._give_back(a, outcome)
        self._tell_queue(a.claimed, outcome)

    def _publish(self, a: Attempt, outcome: Outcome) -> None:
        """The job's log hears the outcome: its end entry, or why it goes back to the queue (a wait told once)."""
        try:
            match outcome:
                case Ended(end=end):
                    a.writer.end(end)
                case Waits(reason=reason) if a.job_id not in self._waiting:
                    a.writer.status(reason)
                case HandedBack():
                    a.writer.status(f"node {self.node} is shutting down: the job goes back to the queue and will "
                                    "run again")
        finally:
            a.writer.close()
            if isinstance(outcome, Ended):
                self.b.logs.expire(a.job_id, self.cfg.pubsub.retention)
        if isinstance(outcome, Ended):
            end = outcome.end
            log.info("job %s %s exit=%s %.2fs", a.job_id, end.state.value, end.exit_code, end.duration)

    def _give_back(self, a: Attempt, outcome: Outcome) -> None:
        """What the job held on this node: its image (prune may take it), its slot; its usage charged."""
        self.images_in_use.pop(a.job_id, None)
        a.lease.free_slot()
        if isinstance(outcome, Waits):
            self._waiting[a.job_id] = time.monotonic()
        elif isinstance(outcome, Ended):
            self._waiting.pop(a.job_id, None)
        charge_usage(self.b, a.claimed, outcome.end.duration if isinstance(outcome, Ended) else None)

    def _tell_queue(self, claimed: ClaimedJob, outcome: Outcome) -> None:
        queue = self.b.queue
        match outcome:
            case Waits():  # a fresh copy to the back of the queue (waiting costs no delivery attempt), then the
                # held one acked: a crash between leaves a duplicate (dropped once the job ends), never a lost job
                queue.enqueue(claimed.queue, claimed.body)
                queue.ack(claimed)
            case HandedBack():
                queue.release(claimed)
            case Ended(dead_letter=True) if isinstance(queue, DeadLettering):
                queue.dead_letter(claimed, outcome.end.message)  # kept with its reason, never delivered again
            case Ended():
                queue.ack(claimed)

    def _republish_end(self, record: JobRecord) -> None:
        """A job whose end entry was lost (Redis down at the end) gets it now, so no follower waits forever."""
        last = self.b.logs.last_entry(record.job_id)
        if last is not None and last.kind == LogKind.end:
            return
        end = JobEnd(state=record.state, exit_code=record.exit_code, duration=record.duration or 0.0,
                     output_key=record.output_key, message=record.message)
        self.b.logs.append(record.job_id, [LogEntry(kind=LogKind.end, end=end)])
        self.b.logs.expire(record.job_id, self.cfg.pubsub.retention)

    def _save(self, record: JobRecord) -> None:
        self.b.live.put_job(record, ttl=self.cfg.pubsub.record_ttl)
        self.b.db.save_job(record)


def thread_env(cpus: float | None) -> dict[str, str]:
    """OMP_NUM_THREADS and MKL_NUM_THREADS matching the job's CPU quota (none without one)."""
    if not cpus:
        return {}
    threads = str(max(1, math.ceil(cpus)))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
