"""Quotas: a job over the user's quota is refused at submit, saying when it frees up; nothing is queued."""

from __future__ import annotations

import pytest

from rai.live.quotas import DAY, HOUR, QuotaBook


def test_a_submission_over_the_hourly_quota_is_refused_with_when_it_frees_up(rai_env):
    env = rai_env
    env.settings["roles"] = {"student": {"jobs_per_hour": 2}, "admin": {}}
    env.settings["scheduler"] = {"quotas": {"bob": {"jobs_per_hour": None}}}  # bob's override: no limit
    env.write_config()
    for key in env.backends.redis.scan_iter("rai:quota:*"):  # the session's Redis: an earlier run's counts go
        env.backends.redis.delete(key)
    ada, bob = env.account("ada"), env.account("bob")
    proj = env.project(["true"])
    for _ in range(2):
        assert env.rai(ada, "submit", "--no-follow", "-p", str(proj)).returncode == 0
    r = env.rai(ada, "submit", "--no-follow", "-p", str(proj))
    assert r.returncode != 0
    assert "over your quota of 2 jobs an hour" in r.stderr and "frees up in" in r.stderr
    assert "Traceback" not in r.stderr
    assert env.backends.queue.depth(env.queue).waiting == 2  # the refused one was never queued
    for _ in range(3):
        assert env.rai(bob, "submit", "--no-follow", "-p", str(proj)).returncode == 0


def test_gpu_hours_a_day_free_up_as_the_oldest_job_ages_out(redis_client):
    book = QuotaBook(redis_client, prefix="rai:t-quota:")
    now = 1_000_000.0
    book.count_gpu_time("ada", "j1", 3600, now=now - 3 * HOUR)  # 1 GPU-hour three hours ago
    book.count_gpu_time("ada", "j2", 1800, now=now - HOUR)
    assert book.over_quota("ada", None, 2.0, now=now) is None
    book.count_gpu_time("ada", "j3", 1800, now=now)
    over = book.over_quota("ada", None, 2.0, now=now)
    assert over is not None and "2 GPU-hours a day" in over.message
    assert over.retry_after == DAY - 3 * HOUR  # when j1 leaves the last 24 h
    assert book.over_quota("ada", None, 2.0, now=now + over.retry_after + 1) is None


def test_what_is_left_of_each_quota_counts_only_the_last_hour_and_day(redis_client):
    book = QuotaBook(redis_client, prefix="rai:t-left:")
    now = 1_000_000.0
    book.count_submission("ada", "j0", now=now - 2 * HOUR)  # older than an hour: counts no more
    book.count_submission("ada", "j1", now=now - 60)
    book.count_submission("ada", "j2", now=now)
    book.count_gpu_time("ada", "j1", 1800, now=now - 2 * DAY)  # older than a day
    book.count_gpu_time("ada", "j2", 5400, now=now - HOUR)
    assert book.left("ada", 5, 2.0, now=now) == (3, pytest.approx(0.5))
    assert book.left("ada", 2, None, now=now) == (0, None)
    assert book.left("bob", None, 1.0, now=now) == (None, 1.0)
