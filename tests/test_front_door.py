"""The front door, tried as a hostile student would: with their own valid profile and the students'
config (the server's URL, nothing else), against a real rai-server (uvicorn on a free port), a real
raid and a real Redis that wants a password only the servers hold.

Each attack the issue lists: reading the job index and another student's log, running another
student's upload, forging log lines and ends, replaying a job, faking nodes and drains, deleting the
queue — and the door's own limits: rate, size, replays, TLS, the log's resume.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import time

import httpx
import pytest
import redis
import yaml

from keygen.accounts import create_account
from rai.client.profile import Profile, load_profile, write_profile
from rai.config import load_config
from rai.domain.models import JobEnd, JobRecord, JobRequest, JobState, LogEntry, LogKind, utcnow
from rai.domain.object_keys import upload_key
from rai.domain.signing import EMPTY_SHA256, UNSIGNED_PAYLOAD, authorization_headers, sign
from tests.fixtures.e2e import TEST_IMAGE, RaiEnv, wait_for
from tests.fixtures.redis import RedisServer
from tests.fixtures.server import client_of, self_signed

MAX_UPLOAD = 2 * 1024**2


@pytest.fixture(scope="module")
def door(tmp_path_factory, engine, test_image):
    """One installation whose Redis wants a password; ada (the victim), mal (the attacker), rl (rate-limited)."""
    tmp = tmp_path_factory.mktemp("door")
    server = RedisServer(tmp / "redis", password=secrets.token_urlsafe(16)).start()
    env = RaiEnv(tmp, server.url, engine.url)
    env.settings["server"].update({"max_upload": MAX_UPLOAD, "rate_limits": {"student": None, "limited": 2}})
    env.settings["roles"] = {"student": {}, "limited": {}, "admin": {"network": True}}
    env.write_config()
    env.profiles = {}
    for name, role in (("ada", "student"), ("mal", "student"), ("rl", "limited")):
        account = create_account(env.backends.accounts, list(env.backends.config.roles), name,
                                 f"{name}@example.edu", team=f"team-{name}", role=role)
        env.profiles[name] = write_profile(Profile.from_account(account), tmp / f"{name}.profile")
    env.start_raid(workers=2)
    env.start_server()
    env.redis_port = server.port
    yield env
    env.cleanup()
    server.stop()


def signed(env: RaiEnv, user: str, method: str, path: str, body: str | None = None, content: bytes | None = None,
           params: dict | None = None, headers: dict | None = None) -> httpx.Response:
    """One request as `user` signs it, sent as it is (what a modified client could send)."""
    p = load_profile(env.profiles[user])
    data = body.encode() if body is not None else None
    digest = hashlib.sha256(data).hexdigest() if data is not None else (UNSIGNED_PAYLOAD if content else EMPTY_SHA256)
    query = [(k, str(v)) for k, v in (params or {}).items()]
    h = headers or authorization_headers(p.access_key, p.secret_key, method, path, query, digest)
    if data is not None:
        h = {**h, "Content-Type": "application/json"}
    return httpx.request(method, env.server_url + path, params=params, content=data if data is not None else content,
                         headers=h, timeout=30)


def submit_ok(env: RaiEnv, user: str, commands: list[str], name: str) -> str:
    proj = env.project(commands, name=name)
    r = env.rai(env.profiles[user], "submit", "--no-follow", "-p", str(proj))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def ended(env: RaiEnv, job_id: str) -> JobRecord:
    return wait_for(lambda: (rec := env.backends.db.get_job(job_id)) is not None and rec.state.finished and rec,
                    60, what=f"job {job_id} to end")


def test_the_students_config_is_a_url_and_redis_refuses_anyone_without_the_servers_password(door):
    env = door
    assert set(yaml.safe_load(env.student_config.read_text())) == {"server"}
    job_id = submit_ok(env, "ada", ["echo ada-was-here"], "plain")
    assert ended(env, job_id).state == JobState.succeeded
    # what mal tried with redis-cli and the old students' config, now without the password
    attacker = redis.Redis(port=env.redis_port, socket_connect_timeout=2)
    attempts = [
        lambda: attacker.zrange("rai:jobs", 0, -1),  # list every job
        lambda: attacker.xrange(f"rai:log:{job_id}"),  # read another's log
        lambda: attacker.xadd(f"rai:log:{job_id}", {"e": "forged"}),  # forge a line or an end
        lambda: attacker.set(f"rai:job:{job_id}", "{}"),  # make `rai status` lie
        lambda: attacker.set("rai:node:fake", "{}"),  # a GPU node that does not exist
        lambda: attacker.set(f"rai:drain:{env.node}", "1"),  # stop a node
        lambda: attacker.delete(f"rai:queue:{env.queue}"),  # lose every waiting job
    ]
    for attempt in attempts:
        with pytest.raises(redis.exceptions.RedisError, match="(?i)auth"):
            attempt()
    assert not env.backends.live.is_draining(env.node)
    assert "ada-was-here" in "".join(e.body for _, e in env.backends.logs.read(job_id))


def test_someone_elses_job_answers_exactly_like_an_unknown_one(door):
    env = door
    job_id = submit_ok(env, "ada", ["echo secret-of-ada > /build/answer.txt", "cat /build/answer.txt"], "victim")
    ended(env, job_id)
    unknown = "20990101000000-0123456789ab"
    for method, suffix in (("GET", ""), ("GET", "/log"), ("GET", "/outputs"), ("POST", "/cancel")):
        body = None
        if method == "POST":  # a cancel request mal signs for the job (raid would honour only ada's or an admin's)
            body = json.dumps({"job_id": job_id, "access_key": load_profile(env.profiles["mal"]).access_key,
                               "requested_at": utcnow().isoformat(), "signature": "x"})
        theirs = signed(env, "mal", method, f"/v1/jobs/{job_id}{suffix}", body=body)
        nobody = signed(env, "mal", method, f"/v1/jobs/{unknown}{suffix}",
                        body=body.replace(job_id, unknown) if body else None)
        assert theirs.status_code == nobody.status_code == 404, (suffix, theirs.text)
        assert theirs.text.replace(job_id, "ID") == nobody.text.replace(unknown, "ID")
        assert "secret-of-ada" not in theirs.text
    r = env.rai(env.profiles["mal"], "logs", job_id)
    assert r.returncode == 4 and "no job" in r.stderr and "secret-of-ada" not in r.stdout
    # nothing a student sends writes into a log: there is no such door
    assert signed(env, "mal", "POST", f"/v1/jobs/{job_id}/log", body="{}").status_code == 405
    # ada herself sees all of it
    r = env.rai(env.profiles["ada"], "logs", job_id)
    assert r.returncode == 0 and "secret-of-ada" in r.stdout


def test_a_job_naming_someone_elses_upload_runs_nothing(door):
    env = door
    victim = submit_ok(env, "ada", ["echo ADA-SOURCE-RAN-FOR-$RAI_JOB_ID"], "source")
    ended(env, victim)
    ada_upload = upload_key("ada", victim)
    digest = hashlib.sha256((env.tmp / "store" / ada_upload).read_bytes()).hexdigest()
    mal = load_profile(env.profiles["mal"])
    job_id = f"{utcnow():%Y%m%d%H%M%S}-{secrets.token_hex(6)}"
    req = JobRequest(job_id=job_id, access_key=mal.access_key, username="mal", queue=env.queue,
                     spec={"rai": {"image": TEST_IMAGE}, "commands": {"build": ["sh -c 'echo stolen'"]}},
                     upload_key=ada_upload, upload_sha256=digest)
    sign(req, mal.secret_key)
    r = signed(env, "mal", "POST", "/v1/jobs", body=req.to_json())
    assert r.status_code == 403 and "not its own" in r.json()["error"]
    assert env.backends.live.get_job(job_id) is None
    # and were the server bypassed, raid itself runs only an upload under the signer's prefix
    env.backends.live.put_job(JobRecord(job_id=job_id, username="mal", queue=env.queue, submitted_at=utcnow()))
    env.backends.queue.enqueue(env.queue, req.to_json())
    record = ended(env, job_id)
    assert record.state == JobState.refused and "not yours" in record.message
    assert not any(e.kind == LogKind.stdout for _, e in env.backends.logs.read(job_id))


def test_a_replayed_or_copied_submission_is_refused_and_the_job_runs_once(door):
    env = door
    ada = load_profile(env.profiles["ada"])
    proj = env.project(["echo ran-once"], name="replayed")
    from rai.client.packing import pack_directory

    archive = env.tmp / "replayed.tar.zst"
    packed = pack_directory(proj, archive)
    job_id = f"{utcnow():%Y%m%d%H%M%S}-{secrets.token_hex(6)}"
    assert signed(env, "ada", "PUT", f"/v1/uploads/{job_id}", content=archive.read_bytes()).status_code == 201
    req = JobRequest(job_id=job_id, access_key=ada.access_key, username="ada", queue=env.queue,
                     spec=yaml.safe_load((proj / "rai_build.yml").read_text()),
                     upload_key=upload_key("ada", job_id), upload_sha256=packed.sha256)
    sign(req, ada.secret_key)
    body = req.to_json()
    headers = authorization_headers(ada.access_key, ada.secret_key, "POST", "/v1/jobs", [],
                                    hashlib.sha256(body.encode()).hexdigest())
    headers["Content-Type"] = "application/json"
    assert signed(env, "ada", "POST", "/v1/jobs", body=body, headers=headers).status_code == 201
    again = signed(env, "ada", "POST", "/v1/jobs", body=body, headers=headers)  # the very same request
    assert again.status_code == 401 and "replay" in again.json()["error"]
    copied = signed(env, "ada", "POST", "/v1/jobs", body=body)  # the same job, freshly signed
    assert copied.status_code == 409 and "exists already" in copied.json()["error"]
    assert ended(env, job_id).state == JobState.succeeded
    out = "".join(e.body for _, e in env.backends.logs.read(job_id) if e.kind == LogKind.stdout)
    assert out.count("ran-once") == 1


def test_the_submitter_sees_the_jobs_true_end(door):
    env = door
    proj = env.project(["echo about to fail", "exit 3"], name="fails")
    r = env.rai(env.profiles["ada"], "submit", "-p", str(proj))
    assert r.returncode == 1 and "about to fail" in r.stdout
    assert "failed" in r.stderr and "exit 3" in r.stderr
    job_id = r.stderr.split("job ", 1)[1].split()[0]
    status = json.loads(env.rai(env.profiles["ada"], "status", job_id, "--json").stdout)
    assert status["state"] == "failed" and status["exit_code"] == 3


def test_too_many_submissions_get_429_with_when_to_retry(door):
    env = door
    proj = env.project(["true"], name="rapid")
    for _ in range(2):
        assert env.rai(env.profiles["rl"], "submit", "--no-follow", "-p", str(proj)).returncode == 0
    r = env.rai(env.profiles["rl"], "submit", "--no-follow", "-p", str(proj))
    assert r.returncode == 3 and "too many submissions" in r.stderr and "2 a minute" in r.stderr
    assert "try again in" in r.stderr and "Traceback" not in r.stderr
    raw = signed(env, "rl", "PUT", f"/v1/uploads/{utcnow():%Y%m%d%H%M%S}-{secrets.token_hex(6)}", content=b"x")
    assert raw.status_code == 429 and 1 <= int(raw.headers["retry-after"]) <= 60


def test_an_upload_over_the_cap_is_refused_with_the_limit_named(door):
    env = door
    big = env.project(["true"], name="big", files={"data.txt": "x"})
    (big / "data.bin").write_bytes(secrets.token_bytes(MAX_UPLOAD + 4096))
    r = env.rai(env.profiles["ada"], "submit", "--no-follow", "-p", str(big))
    assert r.returncode == 2 and "over the server's limit of 2.0MiB" in r.stderr and ".raiignore" in r.stderr
    # a client that does not check first: the server stops reading at the cap (413), with or without a length
    job = f"{utcnow():%Y%m%d%H%M%S}-{secrets.token_hex(6)}"
    blob = secrets.token_bytes(MAX_UPLOAD + 1)
    declared = signed(env, "ada", "PUT", f"/v1/uploads/{job}", content=blob)
    streamed = signed(env, "ada", "PUT", f"/v1/uploads/{job}", content=iter([blob[:MAX_UPLOAD], blob[MAX_UPLOAD:]]))
    for response in (declared, streamed):
        assert response.status_code == 413 and "limit of 2.0MiB" in response.json()["error"]
    assert not (env.tmp / "store" / upload_key("ada", job)).exists()


def test_the_log_resumes_after_last_event_id_with_nothing_lost_and_nothing_twice(door):
    env = door
    job_id = f"{utcnow():%Y%m%d%H%M%S}-{secrets.token_hex(6)}"
    env.backends.live.put_job(JobRecord(job_id=job_id, username="ada", queue="nowhere", state=JobState.running,
                                        submitted_at=utcnow()))
    lines = [f"line {i}\n" for i in range(50)]
    env.backends.logs.append(job_id, [LogEntry(kind=LogKind.stdout, body=x) for x in lines[:30]])
    client = client_of(type("S", (), {"url": env.server_url})(), load_profile(env.profiles["ada"]))
    got, last = [], None
    for _event, entry_id, data in client.api.follow_log(f"/v1/jobs/{job_id}/log"):
        got.append(LogEntry.model_validate_json(data).body)
        last = entry_id
        if len(got) == 12:
            break  # the connection drops here
    env.backends.logs.append(job_id, [LogEntry(kind=LogKind.stdout, body=x) for x in lines[30:]]
                             + [LogEntry(kind=LogKind.end, end=JobEnd(state=JobState.succeeded, exit_code=0))])
    events = list(client.api.follow_log(f"/v1/jobs/{job_id}/log", after=last))
    got += [LogEntry.model_validate_json(d).body for e, _i, d in events if e == "stdout"]
    assert got == lines
    assert events[-1][0] == "end"
    ids = [i for _e, i, _d in events]
    def order(i):
        return tuple(int(part) for part in i.split("-"))

    assert len(ids) == len(set(ids)) and all(order(i) > order(last) for i in ids)  # stream ids, increasing


def test_a_follower_that_joins_late_gets_the_log_from_its_first_line(door):
    env = door
    job_id = submit_ok(env, "ada", ["echo first-line", "echo second-line"], "late")
    ended(env, job_id)
    r = env.rai(env.profiles["ada"], "logs", job_id, "-f")
    assert r.returncode == 0 and r.stdout.splitlines() == ["first-line", "second-line"]


def test_https_with_a_private_ca(door, tmp_path, serve):
    env = door
    cert, key = self_signed(tmp_path)
    config = load_config(env.config_path)
    https = serve(config, tls=(cert, key))
    ada = load_profile(env.profiles["ada"])
    assert client_of(https, ada, ca_bundle=cert).whoami()["username"] == "ada"
    from rai.errors import ServiceUnavailable

    with pytest.raises(ServiceUnavailable, match="certificate") as refused:
        client_of(https, ada).whoami()  # without the course's CA: refused, saying what to set
    assert "server.ca_bundle" in refused.value.hint


def test_rai_server_refuses_half_a_tls_setup(door):
    env = door
    r = env.run(sys.executable, "-m", "raiserver", "--tls-cert", str(env.tmp / "nope.pem"), "--listen", "127.0.0.1:1")
    assert r.returncode == 2 and "both a certificate and its key" in r.stderr and "Traceback" not in r.stderr


def test_time_moves_on(door):
    """A request signed six minutes ago (a clock off, or a captured request) is refused."""
    env = door
    p = load_profile(env.profiles["ada"])
    h = authorization_headers(p.access_key, p.secret_key, "GET", "/v1/whoami", [], now=time.time() - 360)
    r = httpx.get(env.server_url + "/v1/whoami", headers=h)
    assert r.status_code == 401 and "clock" in r.json()["hint"]
