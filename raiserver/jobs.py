"""Submit (upload, then enqueue), status, cancel and outputs of a user's own jobs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from rai.backends.auth import authenticate
from rai.domain.image_policy import image_refusal
from rai.domain.job_ids import JOB_ID
from rai.domain.models import Account, CancelRequest, JobRecord, JobRequest, JobState
from rai.domain.object_keys import upload_key
from rai.domain.signing import verify
from rai.domain.spec import parse_spec
from rai.errors import AuthError, NotFound, UserError
from rai.live.published_projects import published_projects
from rai.live.redis_keys import KEYS
from rai.units import format_duration, format_size, plural
from raiserver.problems import Refusal, from_user_error, no_job
from raiserver.state import ServerState
from raiserver.wire import JobStatus, Submitted, Uploaded, Waiting

log = logging.getLogger("raiserver.jobs")

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
UPLOAD_TTL = 86400
CHUNK = 1 << 20

JobId = Annotated[str, PathParam(pattern=JOB_ID, description="a job id as `rai submit` prints it")]


def own_job(state: ServerState, account: Account, job_id: str) -> JobRecord:
    """The job's record when `account` may see it (its owner, or an admin); otherwise 404, like an unknown id."""
    record = state.b.live.get_job(job_id) or state.b.db.get_job(job_id)
    if record is None or (record.username != account.username and account.role != "admin"):
        raise no_job(job_id)
    return record


# long: the job routes (upload, submit, status, cancel, outputs) side by side, each a few lines
def router(state: ServerState) -> APIRouter:
    api = APIRouter(prefix="/v1")

    @api.put("/uploads/{job_id}", response_model=Uploaded, status_code=201,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/zstd": {"schema": {"type": "string", "format": "binary", "minLength": 1}}}}},
             summary="Upload a project archive (tar + zstd) for the job about to be submitted")
    async def upload(job_id: JobId, request: Request) -> Uploaded:
        account = await state.auth(request, streamed_body=True)
        limit = state.config.server.max_upload
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_big(limit)
        wait = await run_in_threadpool(state.rate.take, account.username,
                                       state.config.server.submissions_per_minute(account.role), job_id)
        if wait is not None:
            per = state.config.server.submissions_per_minute(account.role)
            raise Refusal(429, f"too many submissions: role {account.role} may submit {per} a minute",
                          hint=f"try again in {wait:.0f}s", headers={"Retry-After": str(int(wait))})
        await run_in_threadpool(_check_quota, state, account)  # before the upload, not after it
        if await run_in_threadpool(state.b.live.get_job, job_id) is not None:
            raise Refusal(409, f"job {job_id} exists already", hint="submit again: rai picks a new id")
        key = upload_key(account.username, job_id)
        digest, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(prefix="rai-upload-", dir=state.spool)
        try:
            with os.fdopen(fd, "wb") as out:  # spooled to disk as it comes: never held whole in memory
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _too_big(limit)
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise Refusal(400, "the upload is empty", hint="rai sends the packed project here")
            claimed = request.headers.get("x-rai-content-sha256", "")
            if len(claimed) == 64 and claimed != digest.hexdigest():
                raise Refusal(400, "the upload does not match its digest (it was changed on the way)",
                              hint="submit again")
            await run_in_threadpool(state.b.store.put_file, key, Path(tmp), consume=True)
        finally:
            Path(tmp).unlink(missing_ok=True)
        meta = {"sha256": digest.hexdigest(), "size": size, "username": account.username}
        await run_in_threadpool(state.b.redis.set, KEYS.upload(job_id), json.dumps(meta), ex=UPLOAD_TTL)
        return Uploaded(upload_key=key, sha256=digest.hexdigest(), size=size)

    @api.post("/jobs", response_model=Submitted, status_code=201, summary="Enqueue a signed job request")
    async def submit(job: JobRequest, request: Request) -> Submitted:
        account = await state.auth(request)
        return await run_in_threadpool(_submit, state, account, job)

    @api.get("/jobs/{job_id}", response_model=JobStatus, summary="A job's state, and its place while it waits")
    async def status(job_id: JobId, request: Request) -> JobStatus:
        account = await state.auth(request)
        return await run_in_threadpool(_status, state, account, job_id)

    @api.post("/jobs/{job_id}/cancel", response_model=JobStatus, summary="Cancel a waiting or running job")
    async def cancel(job_id: JobId, cancel: CancelRequest, request: Request) -> JobStatus:
        account = await state.auth(request)
        return await run_in_threadpool(_cancel, state, account, job_id, cancel)

    @api.get("/jobs/{job_id}/outputs", summary="The job's /build folder as tar + zstd",
             response_class=FileResponse,
             responses={200: {"content": {"application/zstd": {"schema": {"type": "string", "format": "binary"}}}}})
    async def outputs(job_id: JobId, request: Request) -> FileResponse:
        account = await state.auth(request)
        path = await run_in_threadpool(_fetch_outputs, state, account, job_id)
        return FileResponse(path, media_type="application/zstd", filename=f"{job_id}-build.tar.zst",
                            background=BackgroundTask(os.unlink, path))

    return api


def _too_big(limit: int) -> Refusal:
    return Refusal(413, f"the project archive is over the server's limit of {format_size(limit)}",
                   hint="leave large data and build outputs out with .raiignore")


def _submit(state: ServerState, account: Account, job: JobRequest) -> Submitted:
    if job.access_key != account.access_key or job.username != account.username:
        raise Refusal(403, "the job request names another user than the one who sent it")
    try:
        authenticate(state.b.accounts, job, "job request")
    except AuthError as e:
        raise Refusal(401, e.message, e.hint) from None
    if not re.match(JOB_ID, job.job_id):
        raise Refusal(400, f"{job.job_id!r} is not a job id", hint="submit with the rai client")
    if job.upload_key != upload_key(account.username, job.job_id):
        raise Refusal(403, "the job request names an upload that is not its own", hint="submit with the rai client")
    if state.b.live.get_job(job.job_id) is not None:
        raise Refusal(409, f"job {job.job_id} exists already", hint="submit again: rai picks a new id")
    raw = state.b.redis.get(KEYS.upload(job.job_id))
    meta = json.loads(raw) if raw else None
    if meta is None or meta.get("username") != account.username:
        raise Refusal(400, "the project archive of this job was not uploaded (or over a day ago)",
                      hint="submit again")
    if meta["sha256"] != job.upload_sha256:
        raise Refusal(400, "the uploaded archive does not match the signed job request", hint="submit again")
    try:
        spec = parse_spec(job.spec, "the job's rai_build.yml")
    except UserError as e:
        raise from_user_error(e) from None
    if not QUEUE_NAME.match(job.queue):
        raise Refusal(400, f"{job.queue!r} is not a queue name", hint="queue names are letters, digits, _ . -")
    role = state.config.roles.get(account.role)
    if role is not None and role.queues is not None and job.queue not in role.queues:
        raise Refusal(403, f"role {account.role} may not use queue {job.queue}",
                      hint=f"allowed: {', '.join(role.queues)}")
    if spec.commands.build_image is None:  # a built image's FROM lines are checked by raid, which has the Dockerfile
        refusal = image_refusal(spec.rai.image, state.config, account.role)
        if refusal is not None:
            raise Refusal(403, refusal)
    if job.submission:
        try:
            published_projects(state.b.redis, state.config.projects).resolve(job.submission)
        except UserError as e:
            raise from_user_error(e) from None
    _check_quota(state, account)
    record = JobRecord(job_id=job.job_id, username=account.username, team=account.team,
                       access_key=account.access_key, queue=job.queue, submission=job.submission,
                       submitted_at=job.submitted_at, image=spec.rai.image, upload_key=job.upload_key,
                       gpus=spec.gpus)
    if not state.b.live.create_job(record, ttl=state.config.pubsub.record_ttl):
        raise Refusal(409, f"job {job.job_id} exists already", hint="submit again: rai picks a new id")
    state.b.queue.enqueue(job.queue, job.to_json())
    state.quotas.count_submission(account.username, job.job_id)
    state.b.redis.delete(KEYS.upload(job.job_id))
    log.info("job %s of %s queued on %s", job.job_id, account.username, job.queue)
    return Submitted(job_id=job.job_id, queue=job.queue, notice=queue_notice(state, job.queue, spec.gpus))


def _check_quota(state: ServerState, account: Account) -> None:
    """Over the user's quota (role's, or their own override): refused now, saying when it frees up."""
    jobs, gpu = state.config.scheduler.quota(state.config.roles, account.role, account.username)
    if jobs is None and gpu is None:
        return
    over = state.quotas.over_quota(account.username, jobs, gpu)
    if over is not None:
        raise Refusal(429, f"refused: {over.message}",
                      hint=f"it frees up in {format_duration(over.retry_after)}; submit again then",
                      headers={"Retry-After": str(int(over.retry_after))})


def queue_notice(state: ServerState, queue: str, gpus: int = 0) -> str | None:
    """Why a job just queued may not start soon, as the nodes' heartbeats tell it; None when a node that can
    run it is up (or when the heartbeats cannot be read: the job is queued either way)."""
    try:
        nodes = state.b.live.serving(queue)
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


def _status(state: ServerState, account: Account, job_id: str) -> JobStatus:
    record = own_job(state, account, job_id)
    waiting = None
    if record.state == JobState.queued and record.queue:
        waiting = state.places.place(record.queue, record.job_id)
        place = None if waiting is not None else state.b.live.waiting_position(record.queue, record.job_id)
        if place is not None:  # claimed, not started yet: its place by submission time
            waiting = Waiting(ahead=place[0], on_queue=place[1])
    return JobStatus(job=record, waiting=waiting)


def _cancel(state: ServerState, account: Account, job_id: str, cancel: CancelRequest) -> JobStatus:
    record = own_job(state, account, job_id)
    if cancel.job_id != job_id or cancel.access_key != account.access_key or not verify(cancel, account.secret_key):
        raise Refusal(401, "the cancel request is not signed by your key for this job")
    if record.state.finished:
        raise Refusal(409, f"job {job_id} already ended ({record.state.value})")
    state.b.live.request_cancel(cancel)
    log.info("job %s: cancel asked by %s", job_id, account.username)
    return JobStatus(job=record)


def _fetch_outputs(state: ServerState, account: Account, job_id: str) -> str:
    record = own_job(state, account, job_id)
    if not record.output_key:
        if record.state in (JobState.queued, JobState.running):
            raise Refusal(409, f"job {job_id} has not ended yet", hint=f"wait with `rai logs {job_id} -f`")
        raise Refusal(404, f"job {job_id} has no outputs ({record.state.value})")
    fd, tmp = tempfile.mkstemp(prefix="rai-outputs-", dir=state.spool)
    os.close(fd)
    try:
        state.b.store.get_file(record.output_key, Path(tmp))
    except NotFound:
        os.unlink(tmp)
        raise Refusal(404, f"the outputs of job {job_id} are no longer kept") from None
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp
