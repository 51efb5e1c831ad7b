"""Accounts end to end, with a real raid and containers (tests/fixtures/e2e.py): a rotated key's queued
job is refused, and a student over `jobs_at_once` waits for their running job instead of being refused."""

from __future__ import annotations

from rai.domain.models import JobState
from tests.fixtures.e2e import wait_for


def record(env, job_id):
    return env.backends.db.get_job(job_id)


def test_rotating_refuses_a_job_queued_with_the_old_key(rai_env):
    env = rai_env
    ada = env.account("ada")
    proj = env.project(["echo SHOULD-NOT-RUN"])
    job_id = env.rai(ada, "submit", "--no-follow", "-p", str(proj)).stdout.strip()
    new_profile = env.tmp / "ada-new.profile"
    assert env.keygen("rotate", "ada", "-o", str(new_profile)).returncode == 0
    env.start_raid()
    r = env.rai(new_profile, "logs", job_id, "--follow")
    assert "SHOULD-NOT-RUN" not in r.stdout and "signature does not match" in r.stderr
    assert record(env, job_id).state == JobState.refused
    r = env.rai(new_profile, "submit", "-p", str(proj))  # the new key works
    assert r.returncode == 0 and "SHOULD-NOT-RUN" in r.stdout


def test_a_job_over_jobs_at_once_waits_for_the_running_one(rai_env):
    env = rai_env
    env.settings["roles"] = {"student": {"jobs_at_once": 1}}
    env.write_config()
    ada = env.account("ada")
    slow = env.project(["echo first", "sleep 3"], name="slow")
    quick = env.project(["echo second"], name="quick")
    first = env.rai(ada, "submit", "--no-follow", "-p", str(slow)).stdout.strip()
    env.start_raid(workers=2)
    wait_for(lambda: (r := record(env, first)) is not None and r.state == JobState.running, 30,
             what="the first job to run")
    r = env.rai(ada, "submit", "-p", str(quick), timeout=90)
    assert r.returncode == 0, r.stderr + env.raid_output()[-2000:]
    assert "second" in r.stdout
    assert "waiting: 1 of your jobs are running and role student runs at most 1 at once" in r.stderr
    a, b = record(env, first), env.backends.db.list_jobs(limit=1)[0]
    assert b.job_id != first
    assert a.state == JobState.succeeded and b.state == JobState.succeeded
    assert b.started_at >= a.finished_at  # never both at once
    assert b.attempts == 1  # waiting cost no delivery attempt
