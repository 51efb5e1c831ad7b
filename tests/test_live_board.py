"""The live board's job index: the console reads the newest records without scanning Redis's keyspace."""

from __future__ import annotations

from datetime import timedelta

from rai.domain.models import JobRecord, JobState, utcnow
from rai.live.board import LiveBoard


def record(n: int, minutes_ago: float, state: JobState = JobState.succeeded) -> JobRecord:
    at = utcnow() - timedelta(minutes=minutes_ago)
    return JobRecord(job_id=at.strftime("%Y%m%d%H%M%S") + f"-{n:012x}", username=f"u{n}", state=state,
                     submitted_at=at)


def test_recent_jobs_are_the_newest_first_and_updates_do_not_duplicate(redis_client):
    live = LiveBoard(redis_client)
    jobs = [record(n, minutes_ago=10 * (5 - n)) for n in range(5)]  # job 4 is the newest
    for job in jobs:
        live.put_job(job, ttl=3600)
    # a job's record is written again as it runs and ends: still one row, its latest state
    jobs[3].state = JobState.running
    live.put_job(jobs[3], ttl=3600)
    # other keys in Redis (log streams, heartbeats) are not jobs
    redis_client.set("rai:node:gpu-01", "{}")
    redis_client.xadd("rai:log:" + jobs[4].job_id, {"x": "y"})

    newest = live.recent_jobs(3)
    assert [r.job_id for r in newest] == [jobs[4].job_id, jobs[3].job_id, jobs[2].job_id]
    assert newest[1].state == JobState.running
    assert len(live.recent_jobs(100)) == 5
    assert live.recent_jobs(0) == []


def test_expired_records_leave_the_index(redis_client):
    live = LiveBoard(redis_client)
    kept, expired = record(1, minutes_ago=5), record(2, minutes_ago=1)
    live.put_job(kept, ttl=3600)
    live.put_job(expired, ttl=3600)
    redis_client.delete(f"rai:job:{expired.job_id}")  # what its TTL does when the retention ends

    assert [r.job_id for r in live.recent_jobs(10)] == [kept.job_id]
    assert redis_client.zcard("rai:jobs") == 1


def test_writes_prune_the_oldest_expired_ids_so_the_index_does_not_grow(redis_client):
    live = LiveBoard(redis_client)
    old = [record(n, minutes_ago=600 - n) for n in range(30)]
    for job in old:
        live.put_job(job, ttl=3600)
        redis_client.delete(f"rai:job:{job.job_id}")  # each expires, and no console reads the index
    new = record(99, minutes_ago=1)
    live.put_job(new, ttl=3600)
    live.put_job(new, ttl=3600)  # each write checks a batch of the oldest ids
    assert [m.decode() for m in redis_client.zrange("rai:jobs", 0, -1)] == [new.job_id]


def test_waiting_position_follows_each_jobs_state(redis_client):
    live = LiveBoard(redis_client)
    a, b, c = (record(n, minutes_ago=3 - n, state=JobState.queued) for n in range(3))
    other = record(9, minutes_ago=10, state=JobState.queued)
    for job in (a, b, c):
        job.queue = "rai_amd64"
        live.put_job(job)
    other.queue = "rai_arm64"  # another queue's jobs are not ahead
    live.put_job(other)
    assert [live.waiting_position("rai_amd64", j.job_id) for j in (a, b, c)] == [(0, 3), (1, 3), (2, 3)]
    a.state = JobState.running
    live.put_job(a)
    assert live.waiting_position("rai_amd64", c.job_id) == (1, 2)
    b.state = JobState.cancelled
    live.put_job(b)
    assert live.waiting_position("rai_amd64", c.job_id) == (0, 1)
    assert live.waiting_position("rai_amd64", a.job_id) is None
    c.state = JobState.running
    live.put_job(c)
    assert live.waiting_position("rai_amd64", c.job_id) is None
