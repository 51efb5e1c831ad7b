"""Per-role limits from the config's `roles:`, as raid enforces them: refusals with a clear message,
and `jobs_at_once`, where a job over the limit waits its turn in the queue instead of being refused."""

from __future__ import annotations

import secrets
import threading

import pytest

from keygen.accounts import create_account
from rai.backends import Backends
from rai.client import Client
from rai.config import Config, RoleLimits
from rai.models import Account, JobRequest, JobState, LogKind
from rai.profile import Profile
from rai.spec import parse_spec
from raid.executor import RunResult
from raid.job_runner import JobRunner
from raid.verify import MustWait, Refused, check_jobs_at_once, role_limits

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


def test_a_job_over_jobs_at_once_goes_back_to_the_queue_and_runs_later(tmp_path, redis_url, redis_client, monkeypatch):
    monkeypatch.setattr("raid.job_runner.WAIT_RECHECK", 0.1)
    queue = f"rai_test_{secrets.token_hex(4)}"
    cfg = Config.model_validate({
        "pubsub": {"url": redis_url, "start_local": False},
        "broker": {"queue": queue, "visibility_timeout": 30},
        "store": {"path": str(tmp_path / "store")},
        "database": {"path": str(tmp_path / "rai.db")},
        "raid": {"work_dir": str(tmp_path / "work")},
        "roles": {"student": {"jobs_at_once": 1}},
    })
    b = Backends(cfg)
    ada = create_account(b.accounts, ["student"], "ada", "ada@example.edu")
    client = Client(b, Profile.from_account(ada))
    project = tmp_path / "proj"
    project.mkdir()
    (project / "rai_build.yml").write_text("rai: {image: x}\ncommands: {build: [echo hi]}\n")
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
