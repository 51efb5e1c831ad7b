"""deploy/redis-users.acl, which docs/deploy.md shows verbatim, lets rai-server, raid and raitui do in Redis
what their code does, and refuses them the rest; a connection without a user and password gets nothing.

A real redis-server loads the file (its password hashes filled in) and each program's own code runs against
it as that program's user."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rai.backends import Backends
from rai.backends.fair_queue import FairRedisJobQueue
from rai.backends.redis_logs import RedisLogStream
from rai.backends.redis_queue import RedisJobQueue
from rai.config import Config
from rai.domain.models import CancelRequest, JobRecord, JobState, LogEntry, LogKind, NodeHeartbeat, utcnow
from rai.live.board import LiveBoard
from rai.live.published_projects import PUBLIC_KEY, published_projects
from rai.live.quotas import QuotaBook
from rai.live.redis_server import connect
from rai.live.usage import UsageLedger
from tests.fixtures.redis import free_port

ROOT = Path(__file__).resolve().parent.parent
ACL_FILE = ROOT / "deploy" / "redis-users.acl"
USERS = {"rai-server": "RAI_SERVER", "raid": "RAID", "raitui": "RAITUI", "rai-admin": "RAI_ADMIN"}
Q = "rai_amd64"

denied = pytest.raises(redis.exceptions.NoPermissionError)


class AclRedis:
    def __init__(self, port: int, passwords: dict[str, str]):
        self.port = port
        self.passwords = passwords

    def url(self, user: str) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/0"

    def client(self, user: str) -> redis.Redis:
        """The client the program gets: rai.live.redis_server.connect on its pubsub.url."""
        return connect(self.url(user), start_local=False)


def filled_in(text: str, passwords: dict[str, str]) -> str:
    for user, tag in USERS.items():
        text = text.replace(f"#{tag}_PASSWORD_SHA256", "#" + hashlib.sha256(passwords[user].encode()).hexdigest())
    assert "_PASSWORD_SHA256" not in text
    return text


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    folder = tmp_path_factory.mktemp("redis-acl")
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    (folder / "users.acl").write_text(filled_in(ACL_FILE.read_text(), passwords))
    for _attempt in range(5):
        port = free_port()
        proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--aclfile",
                                 str(folder / "users.acl"), "--dir", str(folder), "--save", "", "--appendonly", "no",
                                 "--logfile", str(folder / "redis.log")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        admin = redis.Redis(port=port, username="rai-admin", password=passwords["rai-admin"],
                            retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                admin.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
        else:
            proc.kill()
            proc.wait(10)
            log = (folder / "redis.log").read_text(errors="replace")
            if "ACL" in log:
                raise AssertionError(f"redis-server refused {ACL_FILE}:\n{log[-2000:]}")
            continue  # the port was taken meanwhile: try another
        try:
            yield AclRedis(port, passwords)
        finally:
            try:
                admin.shutdown(nosave=True)
            except redis.exceptions.RedisError:
                pass
            admin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return
    raise AssertionError("could not start redis-server on a free port")


@pytest.fixture
def admin(acl_redis):
    client = acl_redis.client("rai-admin")
    client.flushall()
    yield client
    client.close()


def job(n: int = 1, state: JobState = JobState.queued) -> JobRecord:
    at = utcnow()
    return JobRecord(job_id=at.strftime("%Y%m%d%H%M%S") + f"-{n:012x}", username="ada", state=state, queue=Q,
                     submitted_at=at)


def heartbeat(node: str = "gpu-01") -> NodeHeartbeat:
    return NodeHeartbeat(node=node, host=node, arch="amd64", version="test", queue=Q, capacity=2)


def test_the_acl_file_is_in_deploy_md_verbatim():
    doc = (ROOT / "docs" / "deploy.md").read_text()
    block = doc.split("<!-- file: deploy/redis-users.acl -->\n```\n", 1)[1].split("```", 1)[0]
    assert block == ACL_FILE.read_text()


def test_the_file_as_shipped_does_not_load(tmp_path):
    """Unfilled password placeholders are not valid hashes: Redis refuses to start rather than run open."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    done = subprocess.run([server, "--port", str(free_port()), "--bind", "127.0.0.1", "--aclfile", str(ACL_FILE),
                           "--dir", str(tmp_path), "--save", "", "--appendonly", "no"],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode != 0 and "ACL" in done.stdout + done.stderr


def test_no_user_and_no_password_gets_nothing(acl_redis, admin):
    anonymous = redis.Redis(port=acl_redis.port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.get("rai:job:x")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=acl_redis.port, password="guess", retry=Retry(NoBackoff(), 0)).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=acl_redis.port, username="raitui", password="guess", retry=Retry(NoBackoff(), 0)).ping()
    with pytest.raises(Exception, match="refused the credentials|wants a password"):
        connect(f"redis://raid:wrong@127.0.0.1:{acl_redis.port}/0", start_local=False)


def test_rai_server_does_what_it_does_and_no_more(acl_redis, admin):
    from rai.live.redis_keys import KEYS
    from raiserver.ratelimit import SubmitRate

    r = acl_redis.client("rai-server")
    admin.sadd("rai:nodes", "gpu-01")
    admin.set("rai:node:gpu-01", heartbeat().to_json())
    admin.set(PUBLIC_KEY, json.dumps({"projects": {}}))
    admin.xadd("rai:log:older", {"e": LogEntry(kind=LogKind.status, body="hi").to_json()})

    # signed requests: a nonce once; submissions a minute
    assert r.set(KEYS.nonce("AK", "abcdef12"), 1, nx=True, ex=601) is True
    assert r.set(KEYS.nonce("AK", "abcdef12"), 1, nx=True, ex=601) is None
    rate = SubmitRate(r)
    assert rate.take("ada", 2, "t1") is None and rate.take("ada", 2, "t2") is None
    assert rate.take("ada", 2, "t3") >= 1
    # an upload on its way, then the job: record, queue, notice
    record = job()
    r.set(KEYS.upload(record.job_id), json.dumps({"size": 1}), ex=86400)
    assert json.loads(r.get(KEYS.upload(record.job_id))) == {"size": 1}
    live = LiveBoard(r)
    assert live.create_job(record, ttl=3600) is True
    assert live.create_job(record, ttl=3600) is False
    RedisJobQueue(r).enqueue(Q, record.to_json())
    # under fair share, on a queue no raid has claimed from yet (no consumer group: rai-server may not make one)
    FairRedisJobQueue(r, UsageLedger(r)).enqueue("rai_fresh_" + secrets.token_hex(3), record.to_json())
    r.delete(KEYS.upload(record.job_id))
    assert [n.name for n in live.serving(Q)] == ["gpu-01"]
    assert live.get_job(record.job_id).job_id == record.job_id
    assert live.waiting_position(Q, record.job_id) == (0, 1)
    live.request_cancel(CancelRequest(job_id=record.job_id, access_key="AK"))
    assert published_projects(r, {}).v == 1
    # logs as Server-Sent Events
    assert [e.body for _, e in RedisLogStream(r).read("older")] == ["hi"]
    assert r.exists("rai:log:older") == 1
    assert admin.xlen("rai:queue:" + Q) == 1 and admin.get("rai:cancel:" + record.job_id)
    # GET /metrics: waiting from the records, Redis memory, without reading the queue
    from raiserver.metrics import Metrics

    backends = Backends(Config.model_validate({"pubsub": {"url": acl_redis.url("rai-server"), "start_local": False},
                                               "broker": {"provider": "redis", "queue": Q}}))
    text = Metrics(backends).scrape().decode()
    assert f'rai_jobs_waiting{{queue="{Q}"}} 1.0' in text and "rai_redis_memory_used_bytes" in text
    assert "rai_nodes_up 1.0" in text

    # refused: wiping, deleting the queue or jobs, taking jobs, writing logs, heartbeats, drains, projects
    with denied:
        r.flushall()
    with denied:
        r.delete("rai:queue:" + Q)
    with denied:
        r.delete("rai:job:" + record.job_id)
    with denied:
        r.xreadgroup("raid", "w1", {"rai:queue:" + Q: ">"}, count=1)
    with denied:
        r.xrange("rai:queue:" + Q)  # the queue is write-only to it
    with denied:
        r.xadd("rai:log:older", {"e": "forged"})
    with denied:
        r.set("rai:node:gpu-01", "{}")
    with denied:
        r.set("rai:drain:gpu-01", "now")
    with denied:
        r.set(PUBLIC_KEY, "{}")
    with denied:
        r.get("rai:cancel:" + record.job_id)  # write-only
    with denied:
        r.keys("*")
    with denied:
        r.config_get("requirepass")
    with denied:
        r.eval("return 1", 0)


def test_raid_does_what_it_does_and_no_more(acl_redis, admin):
    r = acl_redis.client("raid")
    record = job()
    admin.set("rai:cancel:" + record.job_id, CancelRequest(job_id=record.job_id, access_key="AK").to_json())
    admin.set("rai:drain:gpu-02", "now")

    # heartbeats, drains, the queue-depth sparkline, the ranked projects
    live = LiveBoard(r)
    live.beat(heartbeat(), ttl=30)
    assert not live.is_draining("gpu-01") and live.is_draining("gpu-02")
    assert [n.name for n in live.serving(Q)] == ["gpu-01"]
    assert r.set(f"rai:depthlock:{Q}:1", 1, nx=True, ex=5) is True
    queue = RedisJobQueue(r, visibility_timeout=60)
    queue.enqueue(Q, record.to_json())
    live.record_depth(Q, queue.depth(Q).waiting)
    r.set(PUBLIC_KEY, json.dumps({"projects": {}}))
    # a job: claim, admit, run, log, end
    claimed = queue.claim(Q, "gpu-01-0", block=0)
    assert claimed is not None and claimed.body == record.to_json()
    assert queue.keep_alive(claimed, "gpu-01-0") is True
    queue.release(claimed)
    claimed = queue.claim(Q, "gpu-01-1", block=0)
    assert queue.depth(Q).running == 1 and queue.queues() == [Q]
    assert live.take_slot("ada", record.job_id, limit=1, lease=60) is None
    live.renew_slot("ada", record.job_id, lease=60)
    record.state = JobState.running
    live.put_job(record, ttl=3600)
    assert live.get_job(record.job_id).state == JobState.running
    assert live.cancel_request(record.job_id).access_key == "AK"
    logs = RedisLogStream(r)
    logs.append(record.job_id, [LogEntry(kind=LogKind.stdout, body="hello\n")])
    logs.append(record.job_id, [LogEntry(kind=LogKind.end)])
    assert logs.last_entry(record.job_id).kind == LogKind.end and logs.length(record.job_id) == 2
    logs.expire(record.job_id, 3600)
    live.free_slot("ada", record.job_id)
    queue.enqueue(Q, "again")  # a job over its role's jobs_at_once goes back to the end
    queue.ack(claimed)
    live.node_gone("gpu-01")
    admin.delete("rai:queues")
    assert queue.queues() == [Q]  # found by SCAN when the set of names is gone
    assert r.ping() is True

    # refused: wiping, deleting a queue, writing cancels, drains or nonces, reading what is rai-server's
    with denied:
        r.flushall()
    with denied:
        r.delete("rai:queue:" + Q)
    with denied:
        r.delete("rai:job:" + record.job_id)
    with denied:
        r.set("rai:cancel:" + record.job_id, "{}")
    with denied:
        r.set("rai:drain:gpu-01", "now")
    with denied:
        r.get("rai:nonce:AK:abcdef12")
    with denied:
        r.get("rai:upload:" + record.job_id)
    with denied:
        r.get(PUBLIC_KEY)  # write-only
    with denied:
        r.config_set("appendonly", "no")
    with denied:
        r.keys("*")


def test_raitui_does_what_it_does_and_no_more(acl_redis, admin, tmp_path):
    from raitui.data import ConsoleData

    record = job(state=JobState.running)
    worker = acl_redis.client("raid")  # a node with a running job, its log and the depth history
    LiveBoard(worker).beat(heartbeat(), ttl=30)
    LiveBoard(worker).put_job(record, ttl=3600)
    queue = RedisJobQueue(worker)
    queue.enqueue(Q, record.to_json())
    queue.claim(Q, "gpu-01-0", block=0)
    LiveBoard(worker).record_depth(Q, 0)
    RedisLogStream(worker).append(record.job_id, [LogEntry(kind=LogKind.stdout, body="hello\n")])

    config = Config.model_validate({
        "pubsub": {"url": acl_redis.url("raitui"), "start_local": False},
        "broker": {"provider": "redis", "queue": Q},
        "store": {"provider": "local", "path": str(tmp_path / "store")},
        "database": {"provider": "sqlite", "path": str(tmp_path / "rai.db")},
    })
    data = ConsoleData(Backends(config))
    snap = data.snapshot()
    assert snap.redis_error is None, snap.redis_error
    assert [n.name for n in snap.nodes] == ["gpu-01"]
    assert [j.job_id for j in snap.jobs] == [record.job_id]
    assert [(q.name, q.running) for q in snap.queues] == [(Q, 1)]
    assert snap.redis_memory is not None and snap.redis_memory.used > 0
    waiting = job(2)
    FairRedisJobQueue(worker, UsageLedger(worker)).enqueue(Q, waiting.to_json())  # staged for fair share
    assert data.snapshot().places[waiting.job_id].ordinal == "1st"  # its place and ETA, read as raitui
    fifo_job = job(3)
    LiveBoard(acl_redis.client("rai-server")).create_job(fifo_job, ttl=3600)
    queue.enqueue(Q, fifo_job.to_json())
    fifo = ConsoleData(Backends(Config.model_validate({**config.model_dump(include={"pubsub", "broker", "store",
                                                                                     "database"}),
                                                       "scheduler": {"policy": "fifo"}})))
    assert fifo.snapshot().places[fifo_job.job_id].ordinal == "1st"  # submission order: rai:waiting:<queue>
    QuotaBook(acl_redis.client("rai-server")).count_submission("ada", waiting.job_id)
    assert QuotaBook(data.b.redis).left("ada", 5, 1.0) == (4, 1.0)  # the Users view's quota left
    assert data.job(record.job_id).state == JobState.running
    assert [e.body for _, e in data.read_log(record.job_id)] == ["hello\n"]
    assert "cancel requested" in data.cancel(record.job_id)
    data.set_draining("gpu-01", True)
    assert data.snapshot().nodes[0].draining
    data.set_draining("gpu-01", False)
    assert admin.get("rai:cancel:" + record.job_id) and not admin.exists("rai:drain:gpu-01")
    admin.delete("rai:queues")
    assert data.b.queue.queues() == [Q]  # found by SCAN

    r = data.b.redis
    with denied:
        r.flushall()
    with denied:
        r.delete("rai:queue:" + Q)
    with denied:
        r.xadd("rai:queue:" + Q, {"body": "forged"})
    with denied:
        r.xreadgroup("raid", "w1", {"rai:queue:" + Q: ">"}, count=1)
    with denied:
        r.set("rai:job:" + record.job_id, "{}")
    with denied:
        r.xadd("rai:log:" + record.job_id, {"e": "forged"})
    with denied:
        r.set("rai:node:gpu-01", "{}")
    with denied:
        r.get("rai:nonce:AK:abcdef12")
    with denied:
        r.keys("*")


def test_fair_share_on_sqs_keeps_its_counts_as_each_user(acl_redis, admin, moto_url):
    """rai-server queues into a band, raid claims and re-queues, the console reads the fair order: each under
    its own ACL user (the band bookkeeping in rai:fair:<queue>:sqs:*)."""
    from rai.backends.sqs_fair_queue import FairSQSJobQueue
    from rai.live.redis_keys import KEYS
    from tests.fixtures.aws import broker_config

    cfg = broker_config(moto_url)
    name = cfg.queue_prefix + "amd64"
    server, node, console = (acl_redis.client(u) for u in ("rai-server", "raid", "raitui"))
    records = [job(n) for n in (1, 2, 3)]
    queue = FairSQSJobQueue(cfg, UsageLedger(server), server)
    for record in records:
        queue.enqueue(name, record.to_json())
    admin.zadd(KEYS.waiting(name), {r.job_id: i for i, r in enumerate(records)})
    assert FairSQSJobQueue(cfg, UsageLedger(console), console).fair_order(name) == [r.job_id for r in records]
    worker = FairSQSJobQueue(cfg, UsageLedger(node), node)
    claimed = worker.claim(name, "w1", block=0)
    assert claimed is not None
    worker.enqueue(name, claimed.body)  # over its jobs_at_once: back to wait its turn
    worker.ack(claimed)
    assert worker.depth(name).waiting == 3
