"""Per-role limits from the config's `roles:`, as raid enforces them: refusals with a clear message,
and `jobs_at_once`, where a job over the limit waits its turn in the queue instead of being refused."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from keygen.accounts import create_account
from rai.backends import Backends
from rai.client.profile import Profile
from rai.config import Config, RoleLimits
from rai.domain.models import Account, JobRequest, JobState, LogKind
from rai.domain.spec import parse_spec
from raid.executor import RunResult
from raid.job_runner import JobRunner
from raid.verify import MustWait, Refused, check_jobs_at_once, role_limits
from tests.fixtures.redis import wait_until
from tests.fixtures.server import client_of

ROLES = {
    "student": RoleLimits(time_limit="10m", memory_limit="2g", gpus=1, network=False, queues=["rai_amd64"],
                          jobs_at_once=1),
    "ta": RoleLimits(network=True, jobs_at_once=None),
}


def spec(**limits) -> object:
    return parse_spec({"rai": {"image": "x"}, "resources": {"gpu": {"count": limits.pop("gpus", 0)},
                                                           "limits": limits}, "commands": {"build": ["true"]}})


def account(role="student") -> Account:
    return Account(username="ada", email="ada@example.edu", role=role, access_key="AK", secret_key="s")


@pytest.mark.parametrize("job, queue, message", [
    (spec(network=True), "rai_amd64", "network access is not allowed for role student"),
    (spec(gpus=2), "rai_amd64", "2 GPUs asked, role student may use 1"),
    (spec(), "rai_arm64", "role student may not use queue rai_arm64 (allowed: rai_amd64)"),
])
def test_role_refusals_say_why(job, queue, message):
    with pytest.raises(Refused, match=message.replace("(", r"\(").replace(")", r"\)")):
        role_limits(Config(roles=ROLES), account(), job, queue)


def test_role_caps_time_and_memory():
    limits = role_limits(Config(roles=ROLES), account(), spec(time="1h", memory="8g"), "rai_amd64")
    assert limits.time == 600 and limits.memory == 2 * 1024**3
    ta = role_limits(Config(roles=ROLES), account("ta"), spec(network=True), "rai_arm64")
    assert ta.network is True


def test_an_unconfigured_role_is_refused():
    with pytest.raises(Refused, match="role 'guest' is not configured"):
        role_limits(Config(roles=ROLES), account("guest"), spec(), "rai_amd64")


def test_jobs_at_once_is_a_wait_not_a_refusal():
    cfg = Config(roles=ROLES)
    check_jobs_at_once(cfg, account(), 0)
    with pytest.raises(MustWait, match="1 of your jobs are running and role student runs at most 1 at once"):
        check_jobs_at_once(cfg, account(), 1)
    check_jobs_at_once(cfg, account("ta"), 50)  # no limit


class GatedExecutor:
    """Stands in for the container executor: each run waits until the test opens the gate."""

    def __init__(self):
        self.gate = threading.Event()
        self.started: list[str] = []

    def ensure_image(self, image, sink) -> None:
        pass

    def run(self, spec, sink, should_cancel, build_tar) -> RunResult:
        self.started.append(spec.job_id)
        sink.output("stdout", b"ran\n")
        assert self.gate.wait(20), "the test never opened the gate"
        return RunResult(state=JobState.succeeded, exit_code=0, duration=0.1, message="")


def one_student(tmp_path, redis_url, jobs_at_once: int, serve):
    """An installation on its own queue, ada (a student) and a project of hers: (config, backends, her client,
    project folder)."""
    cfg = Config.model_validate({
        "pubsub": {"url": redis_url, "start_local": False},
        "broker": {"queue": f"rai_test_{secrets.token_hex(4)}", "visibility_timeout": 30},
        "store": {"path": str(tmp_path / "store")},
        "database": {"path": str(tmp_path / "rai.db")},
        "raid": {"work_dir": str(tmp_path / "work")},
        "roles": {"student": {"jobs_at_once": jobs_at_once}},
    })
    b = Backends(cfg)
    ada = create_account(b.accounts, ["student"], "ada", "ada@example.edu")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "rai_build.yml").write_text("rai: {image: x}\ncommands: {build: [echo hi]}\n")
    return cfg, b, client_of(serve(cfg, b), Profile.from_account(ada)), project


def test_a_job_over_jobs_at_once_goes_back_to_the_queue_and_runs_later(tmp_path, redis_url, redis_client, monkeypatch,
                                                                       serve):
    monkeypatch.setattr("raid.job_runner.WAIT_RECHECK", 0.1)
    cfg, b, client, project = one_student(tmp_path, redis_url, jobs_at_once=1, serve=serve)
    queue = cfg.broker.queue
    first = client.submit(project).job_id
    second = client.submit(project).job_id

    executor = GatedExecutor()
    runner = JobRunner(b, executor, "node-1", threading.Event())
    claimed = b.queue.claim(queue, "node-1-0", block=1)
    assert JobRequest.from_json(claimed.body).job_id == first
    running = threading.Thread(target=runner.run, args=(claimed, "node-1-0"))
    running.start()
    try:
        deadline = threading.Event()
        while first not in executor.started and not deadline.wait(0.02):
            pass
        claimed2 = b.queue.claim(queue, "node-1-1", block=1)
        assert JobRequest.from_json(claimed2.body).job_id == second
        runner.run(claimed2, "node-1-1")  # returns at once: the job waits its turn
        assert executor.started == [first]
        record = b.db.get_job(second)
        assert record.state == JobState.queued and "runs at most 1 at once" in record.message
        statuses = [e.body for _, e in b.logs.read(second) if e.kind == LogKind.status]
        assert any("waiting: 1 of your jobs are running" in s for s in statuses)
        depth = b.queue.depth(queue)
        assert depth.waiting == 1 and depth.running == 1  # back in the queue, the held copy acked
    finally:
        executor.gate.set()
        running.join(20)
    assert b.db.get_job(first).state == JobState.succeeded

    again = b.queue.claim(queue, "node-1-1", block=1)
    assert JobRequest.from_json(again.body).job_id == second and again.attempts == 1  # waiting cost no attempt
    runner.run(again, "node-1-1")
    assert b.db.get_job(second).state == JobState.succeeded
    assert executor.started == [first, second]
    statuses = [e.body for _, e in b.logs.read(second) if e.kind == LogKind.status]
    assert sum("waiting:" in s for s in statuses) == 1  # told once


class SlowWrites:
    """A database whose writes take a while to land."""

    def __init__(self, db):
        self.db = db

    def save_job(self, record):
        time.sleep(0.3)
        return self.db.save_job(record)

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_jobs_at_once_holds_across_nodes_claiming_at_the_same_moment(tmp_path, redis_url, redis_client, serve):
    cfg, b, client, project = one_student(tmp_path, redis_url, jobs_at_once=2, serve=serve)
    queue = cfg.broker.queue
    jobs = [client.submit(project).job_id for _ in range(6)]

    # three nodes, two worker slots each, every slot holding one of ada's jobs: all decide at once, and
    # their database is slow to take writes (MongoDB across a busy network), so a node that counted
    # running jobs there would not yet see the others' jobs marked running
    executor = GatedExecutor()
    runners = []
    for n in range(3):
        node_backends = Backends(cfg)
        node_backends.__dict__["db"] = SlowWrites(node_backends.db)
        runners.append(JobRunner(node_backends, executor, f"node-{n}", threading.Event()))
    claims = [(runners[i // 2], b.queue.claim(queue, f"node-{i // 2}-{i % 2}", block=1), f"node-{i // 2}-{i % 2}")
              for i in range(6)]
    assert sorted(JobRequest.from_json(c.body).job_id for _, c, _ in claims) == sorted(jobs)
    barrier = threading.Barrier(6)

    def work(runner, claimed, consumer):
        barrier.wait()
        runner.run(claimed, consumer)

    threads = [threading.Thread(target=work, args=c) for c in claims]
    for t in threads:
        t.start()
    try:
        # the four over the limit go back to the queue and return; the two admitted reach their containers
        wait_until(lambda: sum(not t.is_alive() for t in threads) == 4 and len(executor.started) == 2, timeout=20,
                   what="4 jobs sent back and 2 running (more running means the limit did not hold)")
        assert len(executor.started) == 2, f"{len(executor.started)} of ada's jobs run at once; her role allows 2"
        assert b.queue.depth(queue).waiting == 4
        assert {b.db.get_job(j).state for j in jobs} == {JobState.running, JobState.queued}
    finally:
        executor.gate.set()
        for t in threads:
            t.join(20)
    assert redis_client.zcard("rai:slots:ada") == 0  # ended jobs give their slots back


def test_a_slot_held_by_a_node_that_died_frees_when_its_lease_ends(redis_client):
    from rai.live.board import LiveBoard

    live = LiveBoard(redis_client)
    assert live.take_slot("cy", "job-0", limit=1, lease=30) is None
    assert live.take_slot("cy", "job-0", limit=1, lease=30) is None  # delivered again: still its own slot
    live.free_slot("cy", "job-0")
    assert live.take_slot("cy", "job-5", limit=1, lease=30) is None  # freed at its end

    assert live.take_slot("ada", "job-1", limit=1, lease=0.5) is None  # its node dies: nobody renews or frees it
    assert live.take_slot("ada", "job-2", limit=1, lease=30) == 1
    assert live.take_slot("bob", "job-3", limit=1, lease=0.5) is None
    live.renew_slot("bob", "job-3", lease=30)  # a live node renews: the slot stays taken
    started = time.monotonic()
    wait_until(lambda: live.take_slot("ada", "job-2", limit=1, lease=30) is None, timeout=5, what="ada's free slot")
    assert time.monotonic() - started > 0.3  # not before the lease ended
    assert live.take_slot("bob", "job-4", limit=1, lease=30) == 1
