"""One job from claim to ack: verify, record, fetch, run, upload, end. A job never ends silent."""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from rai.archive import ArchiveLimits, ArchiveRefused, file_sha256, tar_to_zstd, unpack_checked, upload_refusal
from rai.backends import Backends
from rai.backends.log_writer import LogWriter
from rai.backends.queue import ClaimedJob, DeadLettering
from rai.backends.store import output_key
from rai.errors import NotFound, ServiceUnavailable, UserError
from rai.image_policy import allowed_patterns
from rai.models import JobEnd, JobRecord, JobRequest, JobState, LogEntry, LogKind, utcnow
from rai.quotas import QuotaBook
from rai.signing import verify
from rai.spec import JobSpec, parse_spec
from rai.units import format_duration, format_size, plural
from rai.usage import group_of
from raid.executor import Executor, RunSpec
from raid.images import IMAGE_USES, BuildFailed, BuildRequest, ImageRefused, ImageUses, build_image
from raid.verify import MustWait, Refused, check_jobs_at_once, jobs_at_once_limit, role_limits, verify_request

log = logging.getLogger("raid.job")

WAIT_RECHECK = 2.0  # seconds between two looks at the same waiting job on one node


class HandBack(Exception):
    """The node is shutting down: give the job back to the queue instead of ending it."""


class GiveUp(UserError):
    """Delivered too many times: end the job and move it to the dead-letter queue (where the queue has one)."""


class JobRunner:
    """Runs claimed jobs on this node; one instance shared by every worker slot."""

    def __init__(self, backends: Backends, executor: Executor, node: str, stopping: threading.Event,
                 on_result: Callable[[JobRecord, JobSpec | None], None] | None = None, submissions=None,
                 gpus: int = 0):
        self.b = backends
        self.cfg = backends.config
        self.executor = executor
        self.node = node
        self.stopping_hard = stopping  # set when running jobs must be handed back now
        self.on_result = on_result
        self.submissions = submissions  # raid.ranking.RankedSubmissions: ranked submissions' spec, checks, result
        self.gpus = gpus  # GPUs this node offers; a job asking for more waits for a node that has them
        self._starting = threading.Lock()  # admit-then-mark-running, one worker slot at a time
        # how long a running job's jobs_at_once slot outlives its node's last keep-alive
        self._slot_lease = max(5.0, self.cfg.broker.visibility_timeout)
        self._waiting: dict[str, float] = {}  # job id -> when this node last sent it back to wait its turn
        self.images_in_use: dict[str, str] = {}  # job id -> the image it runs in (the node's prune keeps them)
        self.image_uses = ImageUses(node_work_dir(self.cfg, node) / IMAGE_USES)

    def run(self, claimed: ClaimedJob, consumer: str) -> None:
        try:
            req = JobRequest.from_json(claimed.body)
        except ValidationError:
            log.error("dropping a malformed queue message %s", claimed.message_id)
            self.b.queue.ack(claimed)
            return
        done = self.b.db.get_job(req.job_id)
        if done is not None and done.state.finished:
            log.info("job %s already ended (%s); dropping the duplicate delivery", req.job_id, done.state.value)
            self._republish_end(done)
            self.b.queue.ack(claimed)
            return
        stop_keepalive = threading.Event()
        keeper = threading.Thread(target=self._keep_alive, args=(claimed, consumer, stop_keepalive, req),
                                  daemon=True)
        keeper.start()
        writer = LogWriter(self.b.logs, req.job_id, max_log_bytes=self.cfg.pubsub.max_log_bytes)
        record = JobRecord(
            job_id=req.job_id, username=req.username, team=req.team, access_key=req.access_key, queue=req.queue,
            submission=req.submission, submitted_at=req.submitted_at, upload_key=req.upload_key,
            image=str(req.spec.get("rai", {}).get("image", "")), attempts=claimed.attempts, node=self.node,
            gpus=_asked_gpus(req.spec),
        )
        spec: JobSpec | None = None
        started = time.monotonic()
        handed_back = gave_up = False
        try:
            spec, end = self._run(req, record, claimed, writer)
        except HandBack:
            handed_back = True
            end = None
        except MustWait as e:
            stop_keepalive.set()
            self._account(claimed, None)
            self._wait_turn(req, record, claimed, writer, str(e))
            if e.elsewhere:  # let a node that can run it claim it before this slot takes it back
                self.stopping_hard.wait(WAIT_RECHECK)
            return
        except GiveUp as e:
            gave_up = True
            end = JobEnd(state=JobState.error, message=e.message)
        except Refused as e:
            end = JobEnd(state=JobState.refused, message=str(e))
        except ServiceUnavailable as e:  # its words name sockets, hosts and ports: the operator's, not the student's
            log.error("job %s: %s", req.job_id, e)
            end = JobEnd(state=JobState.error, message=f"a service on node {self.node} stopped answering; "
                         f"submit again later (your course staff find the details under job {req.job_id})")
        except UserError as e:
            end = JobEnd(state=JobState.error, message=e.message)
        except Exception as e:  # raid's own failure must still end the job with a reason
            log.exception("job %s failed inside raid", req.job_id)
            # what broke (paths, an engine's words) is for the operator; the student reads where to find it
            end = JobEnd(state=JobState.error, message=f"internal error on node {self.node} ({type(e).__name__}); "
                         f"your course staff find the details in the node's log under job {req.job_id}")
        finally:
            stop_keepalive.set()
        if handed_back:
            self.images_in_use.pop(req.job_id, None)
            writer.status(f"node {self.node} is shutting down: the job goes back to the queue and will run again")
            writer.close()
            record.state = JobState.queued
            self._save(record)
            self._free_slot(req)
            self._account(claimed, None)
            self.b.queue.release(claimed)
            return
        self._waiting.pop(req.job_id, None)
        self.images_in_use.pop(req.job_id, None)
        if not end.duration:
            end.duration = round(time.monotonic() - started, 3)
        try:
            self._finish(req, record, end, writer, spec)
        finally:
            self._free_slot(req)
            self._account(claimed, end.duration)
        if gave_up and isinstance(self.b.queue, DeadLettering):
            # kept with its reason for the post-mortem, never delivered again
            self.b.queue.dead_letter(claimed, end.message)
        else:
            self.b.queue.ack(claimed)

    def _wait_turn(self, req: JobRequest, record: JobRecord, claimed: ClaimedJob, writer: LogWriter,
                   reason: str) -> None:
        """Over the role's jobs_at_once: a fresh copy goes to the back of the queue (waiting costs no
        delivery attempt and frees this slot for others' jobs), then the held message is acked."""
        if req.job_id not in self._waiting:
            writer.status(reason)
        writer.close()
        self._waiting[req.job_id] = time.monotonic()
        record.state = JobState.queued
        record.message = reason
        self._save(record)
        # Enqueue before the ack: a crash between leaves a duplicate (dropped once the job ends), never a lost job.
        self.b.queue.enqueue(claimed.queue, claimed.body)
        self.b.queue.ack(claimed)

    def _check_jobs_at_once(self, account, req: JobRequest) -> None:
        last = self._waiting.get(req.job_id)
        if last is not None:  # back at once: the queue holds little else, so don't spin on it
            self.stopping_hard.wait(max(0.0, WAIT_RECHECK - (time.monotonic() - last)))
        limit = jobs_at_once_limit(self.cfg, account)
        if limit is None:
            return
        # one atomic admission in Redis, shared by every node: two nodes never both take the last slot
        held = self.b.live.take_slot(account.username, req.job_id, limit, self._slot_lease)
        if held is not None:
            check_jobs_at_once(self.cfg, account, held)

    def _check_gpus(self, req: JobRequest, wanted: int) -> None:
        """A job asking for more GPUs than this node has goes back to the queue for a node that has them,
        or, when no live node on its queue has them, is refused with what to do."""
        if wanted <= self.gpus:
            return
        able = [n.name for n in self.b.live.serving(req.queue)  # draining included: a drain is for a while
                if n.name != self.node and n.heartbeat.offered_gpus >= wanted]
        asks = f"the job asks for {plural(wanted, 'GPU')}"
        has = f"node {self.node} has {self.gpus or 'none'}"
        if able:
            raise MustWait(f"waiting: {asks} and {has}; it goes back to the queue for a node that has them "
                           f"({', '.join(sorted(able))})", elsewhere=True)
        raise Refused(f"refused: {asks} and no node on queue {req.queue} has {'them' if wanted != 1 else 'one'} "
                      f"({has}); remove resources.gpu.count from rai_build.yml to run without a GPU, or ask your "
                      "course staff which queue has GPUs")

    def _account(self, claimed: ClaimedJob, duration: float | None) -> None:
        """Fair share: charge the job's user (or team) what it ran, less what the claim charged ahead;
        None: it did not run here after all (waits its turn, handed back), so the claim's charge is refunded."""
        try:
            who, weight = group_of(claimed.body, self.b.usage.by)
            self.b.usage.charge(who, (weight * duration if duration is not None else 0.0) - claimed.charged)
            if duration is not None:
                self.b.usage.record_duration(claimed.queue, duration)
                req = JobRequest.from_json(claimed.body)
                gpus = int(req.spec.get("resources", {}).get("gpu", {}).get("count") or 0)
                QuotaBook(self.b.redis).count_gpu_time(req.username, req.job_id, gpus * duration)
        except Exception as e:  # usage only orders the queue; the job's end matters more
            log.warning("charging the usage of job message %s failed: %s", claimed.message_id, e)

    def _free_slot(self, req: JobRequest) -> None:
        try:
            self.b.live.free_slot(req.username, req.job_id)
        except Exception as e:  # the lease ends it anyway
            log.warning("freeing the running slot of %s failed: %s", req.job_id, e)

    def _republish_end(self, record: JobRecord) -> None:
        """A job whose end entry was lost (Redis down at the end) gets it now, so no follower waits forever."""
        last = self.b.logs.last_entry(record.job_id)
        if last is not None and last.kind == LogKind.end:
            return
        end = JobEnd(state=record.state, exit_code=record.exit_code, duration=record.duration or 0.0,
                     output_key=record.output_key, message=record.message)
        self.b.logs.append(record.job_id, [LogEntry(kind=LogKind.end, end=end)])
        self.b.logs.expire(record.job_id, self.cfg.pubsub.retention)

    def _keep_alive(self, claimed: ClaimedJob, consumer: str, stop: threading.Event, req: JobRequest) -> None:
        interval = max(0.2, self.cfg.broker.visibility_timeout / 3)
        while not stop.wait(interval):
            try:
                self.b.queue.keep_alive(claimed, consumer)
                self.b.live.renew_slot(req.username, req.job_id, self._slot_lease)
            except Exception as e:  # a blip must not kill the job; the next beat retries
                log.warning("keep-alive of %s failed: %s", claimed.message_id, e)

    def _save(self, record: JobRecord) -> None:
        self.b.live.put_job(record, ttl=self.cfg.pubsub.record_ttl)
        self.b.db.save_job(record)

    def _cancel_reason(self, job_id: str) -> str | None:
        if self.stopping_hard.is_set():
            return "handback"
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

    def _run(self, req: JobRequest, record: JobRecord, claimed: ClaimedJob, writer: LogWriter):
        max_attempts = self.cfg.broker.max_attempts
        if claimed.attempts > max_attempts:
            last = self.b.live.get_job(req.job_id)
            where = f" (last on node {last.node})" if last is not None and last.node else ""
            raise GiveUp(
                f"dead-lettered: gave up after {max_attempts} attempts, the node running this job stopped "
                f"each time{where}; ask your course staff"
            )
        if claimed.attempts > 1:
            writer.status(f"attempt {claimed.attempts} of {max_attempts} (the previous node stopped)")
        account = verify_request(req, self.b.accounts, self.cfg.raid.max_request_age)
        spec = parse_spec(req.spec, "the job's rai_build.yml")
        ranked = self.submissions.open(req, record) if self.submissions is not None else None
        if ranked is not None:
            spec = ranked.spec  # the project's build spec replaces the submitter's
        limits = role_limits(self.cfg, account, spec, req.queue)
        if spec.resources.limits.time and spec.resources.limits.time > limits.time:
            writer.status(f"time limit capped to {format_duration(limits.time)} by the server")
        if spec.resources.limits.memory and spec.resources.limits.memory > limits.memory:
            writer.status(f"memory limit capped to {format_size(limits.memory)} by the server")
        reason = self._cancel_reason(req.job_id)
        if reason == "handback":
            raise HandBack()
        if reason:
            return spec, JobEnd(state=JobState.cancelled, message=f"{reason} before it started")
        self._check_gpus(req, limits.gpus)
        with self._starting:
            self._check_jobs_at_once(account, req)
            record.state = JobState.running
            record.started_at = utcnow()
            record.team = account.team
            self._save(record)
        writer.status(f"running on {self.node} (image {spec.rai.image}, time limit {format_duration(limits.time)}, "
                      f"memory {format_size(limits.memory)})")
        with tempfile.TemporaryDirectory(prefix=f"rai-{req.job_id}-", dir=self._work_dir()) as tmp:
            tmpdir = Path(tmp)
            upload = tmpdir / "upload.tar.zst"
            try:
                self.b.store.get_file(req.upload_key, upload)
            except NotFound:
                raise UserError("the project upload is missing from the store; submit again") from None
            if file_sha256(upload) != req.upload_sha256:
                raise Refused("refused: the uploaded archive does not match the signed request")
            source_tar = tmpdir / "src.tar"
            docker = self.cfg.docker
            try:  # caps checked as it decompresses: a few KiB of zstd can unpack to terabytes
                unpack_checked(upload, source_tar, ArchiveLimits(docker.upload_limit, docker.max_files,
                                                                 docker.max_depth))
            except ArchiveRefused as e:
                log.info("job %s: upload refused: %s %s", req.job_id, e.reason, e.detail)
                source_tar.unlink(missing_ok=True)  # the TemporaryDirectory goes too; no need to wait for it
                raise Refused(upload_refusal(e)) from None
            if ranked is not None:
                ranked.check_source(source_tar)
            image_started = time.monotonic()
            try:
                image = self._image(req, account, spec, limits, source_tar, writer)
            except BuildFailed as e:
                state = JobState.timeout if e.timed_out else JobState.cancelled if e.cancelled else JobState.failed
                return spec, JobEnd(state=state, message=e.message)
            build_tar = tmpdir / "build.tar"
            run_spec = RunSpec(
                job_id=req.job_id, image=image, commands=spec.commands.build, env=thread_env(limits.cpus),
                source_tar=source_tar, network=limits.network, memory_limit=limits.memory,
                pids_limit=self.cfg.docker.pids_limit, gpus=limits.gpus,
                time_limit=max(1.0, limits.time - (time.monotonic() - image_started)) if spec.commands.build_image
                else limits.time,  # a build's time counts against the job's limit; a pull's does not
                labels={"rai.node": self.node, "rai.user": req.username},
                output_limit=self.cfg.docker.output_limit, nofile=self.cfg.docker.nofile, nproc=self.cfg.docker.nproc,
                cpus=limits.cpus,
            )
            sink = ranked.watch(writer) if ranked is not None else writer
            result = self.executor.run(run_spec, sink, lambda: self._cancel_reason(req.job_id), build_tar)
            if result.message == "handback" or (result.state == JobState.cancelled and self.stopping_hard.is_set()):
                raise HandBack()
            end = JobEnd(state=result.state, exit_code=result.exit_code, duration=round(result.duration, 3),
                         message=result.message)
            if build_tar.exists() and build_tar.stat().st_size > 0:
                key = output_key(req.username, req.job_id)
                packed = tmpdir / "build.tar.zst"
                tar_to_zstd(build_tar, packed)
                self.b.store.put_file(key, packed)
                end.output_key = key
                end.output_url = self.b.store.url(key)
                if result.output_truncated:
                    end.message += f" (outputs truncated at {format_size(self.cfg.docker.output_limit)})"
            if ranked is not None:
                end.message += "; " + ranked.finish(result.state, build_tar, self.executor, run_spec, writer,
                                                    lambda: self._cancel_reason(req.job_id))
            return spec, end

    def _image(self, req: JobRequest, account, spec: JobSpec, limits, source_tar: Path, writer: LogWriter) -> str:
        """The image the job runs in: the project's own, built (or found built) from its Dockerfile, else
        rai.image, pulled when missing. Noted as used, so the node's prune keeps it."""
        wanted = spec.commands.build_image
        if wanted is None:
            self.executor.ensure_image(spec.rai.image, writer)
            image = spec.rai.image
        else:
            build = BuildRequest(
                username=req.username, image_name=wanted.image_name, dockerfile=wanted.dockerfile or "Dockerfile",
                no_cache=wanted.no_cache, context_tar=source_tar, memory_limit=self.cfg.docker.build_memory_limit,
                network=limits.network, allowed=allowed_patterns(self.cfg, account.role))
            try:
                image = build_image(self.executor.client, build, writer, limits.time,
                                    lambda: self._cancel_reason(req.job_id))
            except ImageRefused as e:
                raise Refused(e.message) from None
        self.images_in_use[req.job_id] = image
        self.image_uses.touch(image)
        return image

    def _work_dir(self) -> str:
        path = node_work_dir(self.cfg, self.node)
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def _finish(self, req: JobRequest, record: JobRecord, end: JobEnd, writer: LogWriter,
                spec: JobSpec | None) -> None:
        record.state = end.state
        record.exit_code = end.exit_code
        record.duration = end.duration
        record.output_key = end.output_key
        record.message = end.message
        record.finished_at = utcnow()
        # Record first, publish the end entry last: whoever sees the end (rai get, rai ranking) finds the record.
        try:
            self._save(record)
            if self.on_result is not None:
                try:
                    self.on_result(record, spec)
                except Exception:
                    log.exception("recording the result of %s failed", req.job_id)
        finally:
            try:
                writer.end(end)
            finally:
                writer.close()
                self.b.logs.expire(req.job_id, self.cfg.pubsub.retention)
        log.info("job %s %s exit=%s %.2fs", req.job_id, end.state.value, end.exit_code, end.duration)


def thread_env(cpus: float | None) -> dict[str, str]:
    """OMP_NUM_THREADS and MKL_NUM_THREADS matching the job's CPU quota (none without one)."""
    if not cpus:
        return {}
    threads = str(max(1, math.ceil(cpus)))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def node_work_dir(cfg, node: str) -> Path:
    """This node's own scratch folder under raid.work_dir (nodes may share work_dir; each cleans only its own)."""
    return cfg.raid.work_path() / node


def remove_left_work(cfg, node: str) -> int:
    """Remove the work folders a killed run of this node left (kill -9 mid-job); returns how many."""
    import shutil

    folder = node_work_dir(cfg, node)
    removed = 0
    for left in folder.glob("rai-*") if folder.is_dir() else []:
        shutil.rmtree(left, ignore_errors=True)
        removed += 1
    return removed


def _asked_gpus(spec: dict) -> int:
    """resources.gpu.count of a job's spec as sent, 0 when absent or unreadable (the spec is checked later)."""
    try:
        return max(0, int(((spec.get("resources") or {}).get("gpu") or {}).get("count") or 0))
    except (TypeError, ValueError, AttributeError):
        return 0
