"""rai-server against its own OpenAPI document, fuzzed by schemathesis on a real server and a real Redis.

Signed: every generated request carries a valid signature of the account's key (computed over the bytes
actually sent), so the fuzzing reaches past authentication into the handlers; some cases name the
account's own jobs (queued, finished with a log and outputs) instead of random ids. No answer may be a
500, and every answer must be one the document declares (status, content type, JSON body, headers).

Unsigned: the same operations without a signature are refused, 401 (or 422 where the request itself is
malformed, which is checked before who sent it) and never anything else.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis.checks import positive_data_acceptance

from keygen.accounts import create_account
from rai.backends import Backends
from rai.config import Config
from rai.domain.job_ids import JOB_ID, new_job_id
from rai.domain.models import (
    Account,
    CancelRequest,
    JobEnd,
    JobRecord,
    JobRequest,
    JobState,
    LogEntry,
    LogKind,
    utcnow,
)
from rai.domain.object_keys import upload_key
from rai.domain.signing import UNSIGNED_PAYLOAD, authorization_headers, sign
from rai.live.redis_keys import KEYS
from tests.fixtures.server import ServerThread

EXAMPLES = 30  # per operation and test: both tests stay well under a minute
SSE_PATH = "/v1/jobs/{job_id}/log"

schemathesis.serializer.alias("application/zstd", "application/octet-stream")  # an upload is opaque bytes


class Signed(requests.auth.AuthBase):
    """Signs a prepared request as rai/client/api.py does: method, decoded path, query pairs, sha256 of the body."""

    def __init__(self, account: Account):
        self.account = account

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body
        if body is None:
            digest = hashlib.sha256(b"").hexdigest()
        elif isinstance(body, (bytes, bytearray)):
            digest = hashlib.sha256(body).hexdigest()
        elif isinstance(body, str):
            digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
            r.body = body.encode("utf-8")
            r.headers["Content-Length"] = str(len(r.body))
        else:  # a stream: what an upload may say
            digest = UNSIGNED_PAYLOAD
        parts = urlsplit(r.url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        r.headers.update(authorization_headers(self.account.access_key, self.account.secret_key, r.method,
                                               unquote(parts.path), query, digest))
        return r


@dataclass
class Installation:
    server: ServerThread
    config: Config
    backends: Backends
    student: Account
    job_ids: list[str]  # the student's: one waiting, one succeeded with a log and outputs


@pytest.fixture(scope="module")
def installation(tmp_path_factory, redis_url):
    """A real rai-server (uvicorn on a free port) on the test Redis, sqlite and a local store, a ranked
    project, a student, and her jobs in the states the handlers treat differently."""
    tmp = tmp_path_factory.mktemp("api-schema")
    cfg = Config.model_validate({
        "pubsub": {"url": redis_url, "start_local": False},
        "broker": {"queue": f"rai_test_{secrets.token_hex(4)}", "visibility_timeout": 30},
        "store": {"path": str(tmp / "store")},
        "database": {"path": str(tmp / "rai.db")},
        "raid": {"work_dir": str(tmp / "work")},
        "server": {"max_upload": 4096},
        "projects": {"conv": {"title": "Convolution", "spec": {"rai": {"image": "x"}, "commands": {"build": ["true"]}},
                              "result": {"file": "result.json"}, "metric": "time", "kinds": ["m1", "final"]}},
    })
    b = Backends(cfg)
    student = create_account(b.accounts, list(cfg.roles), f"ada{secrets.token_hex(3)}", "ada@example.edu",
                             team="t1")
    now = utcnow()
    queued = JobRecord(job_id=new_job_id(), username=student.username, team=student.team,
                       access_key=student.access_key, queue=cfg.broker.queue, submitted_at=now)
    b.live.put_job(queued, ttl=3600)
    b.logs.append(queued.job_id, [LogEntry(kind=LogKind.status, body="queued")])

    done = JobRecord(job_id=new_job_id(), username=student.username, team=student.team,
                     access_key=student.access_key, queue=cfg.broker.queue, state=JobState.succeeded,
                     submitted_at=now - timedelta(minutes=1), started_at=now, finished_at=now, exit_code=0,
                     duration=1.0, output_key=f"outputs/{student.username}/x.tar.zst")
    out = tmp / "out.tar.zst"
    out.write_bytes(b"(\xb5/\xfd outputs")
    b.store.put_file(done.output_key, out)
    b.live.put_job(done, ttl=3600)
    b.db.save_job(done)
    end = JobEnd(state=JobState.succeeded, exit_code=0, duration=1.0, output_key=done.output_key)
    b.logs.append(done.job_id, [LogEntry(kind=LogKind.stdout, body="hello\n"), LogEntry(kind=LogKind.end, end=end)])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("raiserver.logs.QUIET_MS", 100)  # a waiting job's place comes at once, not after 2 s
        server = ServerThread(cfg, b).start()
        yield Installation(server, cfg, b, student, [queued.job_id, done.job_id])
        server.stop()
    b.db.close()


def signed_job_request(inst: Installation, body: dict) -> dict:
    """A fuzzed job request made one the server can accept: the student's, its upload received, signed."""
    try:
        job = JobRequest.model_validate(body)
    except ValidationError:
        return body
    me = inst.student
    job.job_id = new_job_id()
    job.access_key, job.username, job.team = me.access_key, me.username, me.team
    job.upload_key = upload_key(me.username, job.job_id)
    job.queue, job.submission = inst.config.broker.queue, None
    job.spec = {"rai": {"image": "x"}, "commands": {"build": ["true"]}}
    inst.backends.redis.set(KEYS.upload(job.job_id), json.dumps(
        {"sha256": job.upload_sha256, "size": 1, "username": me.username}), ex=600)
    sign(job, me.secret_key)
    return {**body, **job.model_dump(mode="json")}


def signed_cancel_request(inst: Installation, job_id: str, body: dict) -> dict:
    try:
        cancel = CancelRequest.model_validate(body)
    except ValidationError:
        return body
    cancel.job_id, cancel.access_key = job_id, inst.student.access_key
    sign(cancel, inst.student.secret_key)
    return {**body, **cancel.model_dump(mode="json")}


def _schema(server: ServerThread, job_ids: list[str]):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    schema.config.generation.update(max_examples=EXAMPLES)
    schema.config.update(request_timeout=5)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        """Half the time, one of the account's own jobs instead of a random (unknown) id; an id made invalid
        on purpose (a negative case) stays as it is."""
        if not re.match(JOB_ID, str((path_parameters or {}).get("job_id", ""))):
            return st.just(path_parameters)
        return st.one_of(st.just(path_parameters),
                         st.sampled_from(job_ids).map(lambda j: {**path_parameters, "job_id": j}))

    return schema


@pytest.fixture(scope="module")
def signed_schema(installation):
    return _schema(installation.server, installation.job_ids)


@pytest.fixture(scope="module")
def unsigned_schema(installation):
    return _schema(installation.server, installation.job_ids)


signed = schemathesis.pytest.from_fixture("signed_schema")
unsigned = schemathesis.pytest.from_fixture("unsigned_schema").exclude(path="/healthz")  # open to all


@signed.parametrize()
@signed.given(sign_body=st.booleans())
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_signed_requests_get_documented_answers(case, sign_body, installation):
    method = case.method.upper()
    if sign_body and method == "POST" and isinstance(case.body, dict):
        # half the job and cancel requests carry a valid signature of their own (inside the body), so those
        # handlers are fuzzed past their signature check as well
        if case.operation.path == "/v1/jobs":
            case.body = signed_job_request(installation, case.body)
        elif case.operation.path == "/v1/jobs/{job_id}/cancel":
            case.body = signed_cancel_request(installation, case.path_parameters.get("job_id", ""), case.body)
    excluded = []
    if case.operation.path in ("/v1/ranking", "/v1/submitted"):
        # a project or kind this installation does not rank is a 400 that names the ones it does: which
        # names exist is configuration (and published projects in Redis), not something the document can list
        excluded.append(positive_data_acceptance)
    # a live log of a job that waits never ends: what it sent within the timeout is checked
    timeout = 1 if case.operation.path == SSE_PATH else 5
    response = case.call_and_validate(auth=Signed(installation.student), timeout=timeout,
                                      excluded_checks=excluded)
    if method in ("GET", "PUT") and method == case.operation.method.upper():
        # nothing in these but the request's own signature can be refused: the fuzzing got past it
        assert response.status_code != 401, response.text


@unsigned.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_unsigned_requests_are_refused(case):
    response = case.call(timeout=1 if case.operation.path == SSE_PATH else 5)
    expected = {401, 422}  # 422: the request itself is malformed, which is looked at before who sent it
    if case.method.upper() != case.operation.method.upper():
        expected = {405}  # the coverage phase also sends methods the route does not take
    elif response.status_code == 400:  # and so is a body that is not JSON at all
        assert case.operation.method.upper() == "POST" and "parsing the body" in response.text, response.text
        return
    assert response.status_code in expected, (case.method, case.formatted_path, response.status_code,
                                              response.text[:500])
    assert response.headers["content-type"][0].startswith("application/json")
