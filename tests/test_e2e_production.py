"""End to end with every production backend at once: rai submit → rai-server → SQS → raid → container →
outputs on S3 → rai get through rai-server.

- the client holds the server's URL and its profile, nothing else (no AWS keys, and the AWS variables
  are unset); rai-server (a real uvicorn on a free port) holds the queue, store and Auth0 credentials;
- queue: SQS on moto_server (HTTP); store: S3 on moto_server;
- accounts: Auth0 through auth0-python against the local Management API server;
- database: MongoDB through mongomock — in-process only, so raid runs in this process (its daemon
  threads, the real executor and containers through Podman) instead of as a subprocess;
- logs and live state: the real redis-server of the test session.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from keygen.accounts import create_account, revoke
from rai.backends import Backends
from rai.backends.s3_store import S3Store
from rai.backends.sqs_queue import SQSJobQueue
from rai.client.core import Client
from rai.client.profile import Profile
from rai.config import Config
from rai.domain.models import JobState, LogKind
from rai.errors import AuthError
from raid.daemon import Daemon
from tests.fixtures.aws import AWS_TEST_ENV, broker_config, store_config, unique
from tests.fixtures.e2e import wait_for
from tests.fixtures.server import client_of


class ProductionEnv:
    def __init__(self, tmp: Path, redis_url: str, moto_url: str, auth0, role_arn: str, image: str, serve,
                 docker_url: str):
        suffix = secrets.token_hex(4)
        self.tmp = tmp
        self.node = f"node-{suffix}"
        broker = broker_config(moto_url, visibility_timeout=3, max_attempts=1)
        self.queue = broker.queue_prefix + "amd64"
        bucket = unique("rai-e2e")
        store = store_config(moto_url, bucket, upload_role_arn=role_arn, sts_endpoint_url=moto_url)
        self.server = Config.model_validate({
            "pubsub": {"url": redis_url, "start_local": False, "retention": "1h"},
            "broker": {**broker.model_dump(mode="json"), "queue": self.queue},
            "store": store.model_dump(mode="json"),
            "database": {"provider": "mongodb", "url": f"mongomock://{suffix}"},
            "auth": {"provider": "auth0", "domain": "rai-test.auth0.com", "base_url": auth0.api_url,
                     "token": auth0.token},
            "docker": {"base_url": docker_url, "image": image, "time_limit": "60s", "memory_limit": "256m"},
            "raid": {"node": self.node, "heartbeat_interval": 1, "work_dir": str(tmp / "work")},
            "roles": {"student": {"network": False}},
        })
        self.operator = Backends(self.server)
        S3Store(self.server.store).setup()  # what `rai-aws setup` does once per deployment
        self.front = serve(self.server, Backends(self.server))  # rai-server, on the production backends
        self.daemon: Daemon | None = None

    def start_raid(self) -> Daemon:
        self.daemon = Daemon(Backends(self.server), workers=1, grace=5)
        self.daemon.start()
        return self.daemon

    def account(self, username: str) -> Profile:
        roles = list(self.server.roles)
        return Profile.from_account(create_account(self.operator.accounts, roles, username, f"{username}@example.edu",
                                                   team="t1", role="student"))

    def client(self, profile: Profile) -> Client:
        """What a student is given: the server's URL and a profile; no AWS keys, no database, no Auth0."""
        return client_of(self.front, profile)

    def project(self, commands: list[str]) -> Path:
        d = self.tmp / f"proj-{secrets.token_hex(3)}"
        d.mkdir()
        spec = {"rai": {"version": 0.2, "image": self.server.docker.image},
                "resources": {"cpu": {"architecture": "amd64"}}, "commands": {"build": commands}}
        (d / "rai_build.yml").write_text(yaml.safe_dump(spec))
        (d / "main.sh").write_text("echo hello from main\n")
        (d / "data.bin").write_bytes(secrets.token_bytes(9 * 1024**2))  # a multipart upload
        return d


@pytest.fixture
def prod(tmp_path, redis_url, moto_url, auth0_server, upload_role_arn, engine, test_image, monkeypatch, serve):
    auth0_server.reset()
    for var in AWS_TEST_ENV:  # nothing may fall back on ambient AWS credentials
        monkeypatch.delenv(var, raising=False)
    env = ProductionEnv(tmp_path, redis_url, moto_url, auth0_server, upload_role_arn, test_image, serve,
                        engine.url)
    yield env
    if env.daemon is not None:
        env.daemon.stop(hand_back_now=True)


def ended(prod: ProductionEnv, job_id: str):
    """The job's final record (raid saves it just after the end entry)."""
    record = prod.operator.db.get_job(job_id)
    return record if record is not None and record.state.finished else None


def follow(client: Client, job_id: str):
    entries = list(client.follow(job_id))
    return entries, entries[-1].end if entries and entries[-1].kind == LogKind.end else None


def test_submit_runs_and_returns_outputs_with_every_production_backend(prod, auth0_server, tmp_path):
    prod.start_raid()
    ada = prod.account("ada")
    client = prod.client(ada)
    sent: list[int] = []
    commands = ["sh /src/main.sh", "mkdir -p /build/out", "sha256sum /src/data.bin > /build/out/sum",
                "echo result > /build/answer.txt"]
    sub = client.submit(prod.project(commands), upload_progress=lambda n, total: sent.append(n))
    assert sub.queue == prod.queue and sum(sent) > 9 * 1024**2 and len(sent) > 1
    entries, end = follow(client, sub.job_id)
    out = "".join(e.body for e in entries if e.kind == LogKind.stdout)
    assert end is not None and end.state == JobState.succeeded, (end, out)
    assert "hello from main" in out

    # outputs: on S3 under the user's prefix, a presigned link that expires, fetched through the server
    assert end.output_key == f"outputs/ada/{sub.job_id}.tar.zst"
    assert parse_qs(urlsplit(end.output_url).query)["X-Amz-Expires"] == [str(int(prod.server.store.url_expiry))]
    n = client.download_outputs(sub.job_id, tmp_path / "got")
    assert n >= 2 and (tmp_path / "got" / "answer.txt").read_text() == "result\n"
    assert (tmp_path / "got" / "out" / "sum").read_text().split()[0]

    # the record in MongoDB, the key checked against Auth0 by id, the SQS queue empty again
    record = wait_for(lambda: ended(prod, sub.job_id), 10, what="the final job record")
    assert record.state == JobState.succeeded and record.node == prod.node and record.username == "ada"
    assert prod.operator.db.list_jobs(username="ada")[0].job_id == sub.job_id
    assert auth0_server.calls["GET users/{id}"] >= 1  # raid verified the job's key against Auth0
    depth = prod.operator.queue.depth(prod.queue)
    assert (depth.waiting, depth.running, depth.dead_lettered) == (0, 0, 0)

    # revocation in Auth0 is effective at once: the server refuses the next request, so not even an upload
    revoke(prod.operator.accounts, "ada")
    with pytest.raises(AuthError, match="revoked"):
        prod.client(ada).submit(prod.project(["echo SHOULD-NOT-RUN"]))


def test_a_job_whose_nodes_keep_dying_is_dead_lettered_with_the_reason(prod):
    prod.operator.live.set_draining(prod.node, True)  # raid takes no job yet
    prod.start_raid()
    bob = prod.account("bob")
    client = prod.client(bob)
    sub = client.submit(prod.project(["echo SHOULD-NOT-RUN"]))
    # another node takes it and dies without a word: the delivery lapses and SQS delivers it again
    crashed = SQSJobQueue(prod.server.broker).claim(prod.queue, "doomed-node", block=5)
    assert crashed is not None and json.loads(crashed.body)["job_id"] == sub.job_id
    prod.operator.queue.release(crashed)
    prod.operator.live.set_draining(prod.node, False)  # max_attempts 1: raid sees attempt 2 and gives up
    entries, end = follow(client, sub.job_id)
    assert end is not None and end.state == JobState.error and "dead-lettered" in end.message
    assert not any("SHOULD-NOT-RUN" in e.body for e in entries)
    record = wait_for(lambda: ended(prod, sub.job_id), 10, what="the final job record")
    assert record.state == JobState.error and record.message.startswith("dead-lettered")
    wait_for(lambda: prod.operator.queue.depth(prod.queue).dead_lettered == 1, 10, what="the dead letter")
    [dead] = prod.operator.queue.dead_letters(prod.queue)
    assert json.loads(dead.body)["job_id"] == sub.job_id and "gave up after 1 attempts" in dead.reason
