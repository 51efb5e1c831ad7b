"""A node that stops while a job runs (or its image builds) hands the job back: it goes back to the queue,
says so in its log, does not end, and runs again from the start on the next node that takes it."""

from __future__ import annotations

import secrets
import signal

from rai.domain.models import JobState, LogKind
from tests.fixtures.docker import TEST_IMAGE
from tests.fixtures.e2e import wait_for
from tests.test_images import build_project, can_build, remove_built  # noqa: F401 - can_build is a fixture


def statuses(env, job_id: str) -> list[str]:
    return [e.body for _, e in env.backends.logs.read(job_id) if e.kind == LogKind.status]


def output(env, job_id: str) -> str:
    return "".join(e.body for _, e in env.backends.logs.read(job_id) if e.kind == LogKind.stdout)


def handed_back(env, job_id: str) -> None:
    """Stop raid past its grace while the job is in hand: the job waits in the queue again, not ended."""
    assert env.stop_raid(signal.SIGTERM) == 0
    record = env.backends.db.get_job(job_id)
    assert record.state == JobState.queued, record
    said = statuses(env, job_id)
    assert any("is shutting down: the job goes back to the queue and will run again" in s for s in said), said
    assert not any(e.kind == LogKind.end for _, e in env.backends.logs.read(job_id))
    assert not any("handback" in s for s in said)


def test_a_running_job_handed_back_at_shutdown_runs_again_on_the_next_start(rai_env):
    env = rai_env
    ada = env.account("ada")
    env.start_raid(workers=1, grace=0.5)
    proj = env.project(["echo started", "sleep 4", "echo finished"])
    job_id = env.rai(ada, "submit", "--no-follow", "-p", str(proj)).stdout.strip()
    wait_for(lambda: "started" in output(env, job_id), 30, what="the job to start")
    handed_back(env, job_id)

    env.start_raid(workers=1)
    r = env.rai(ada, "logs", job_id, "--follow")
    assert r.stdout.count("started") == 2 and r.stdout.count("finished") == 1, r.stdout
    assert env.backends.db.get_job(job_id).state == JobState.succeeded


def test_a_job_whose_image_builds_at_shutdown_is_handed_back_not_cancelled(rai_env, docker_client, can_build):  # noqa: F811
    env = rai_env
    ada = env.account("ada")
    env.start_raid(workers=1, grace=0.5)
    name = f"slow-{secrets.token_hex(4)}"
    proj = build_project(env, "slow", f"FROM {TEST_IMAGE}\nENV T={name}\nRUN sleep 5\n",
                         ["echo built-and-ran"], {}, {"image_name": name})
    try:
        job_id = env.rai(ada, "submit", "--no-follow", "-p", str(proj)).stdout.strip()
        wait_for(lambda: any(s.startswith(f"building image {name}") for s in statuses(env, job_id)), 30,
                 what="the image to build")
        handed_back(env, job_id)

        env.start_raid(workers=1)
        r = env.rai(ada, "logs", job_id, "--follow")
        assert "built-and-ran" in r.stdout, r.stdout + r.stderr
        assert env.backends.db.get_job(job_id).state == JobState.succeeded
    finally:
        remove_built(docker_client, name)
