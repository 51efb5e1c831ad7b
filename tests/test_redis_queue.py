"""RedisJobQueue on a real redis-server: at-least-once delivery, reclaim, keep-alive, release, depth."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rai.backends.redis_logs import RedisLogStream
from rai.backends.redis_queue import GROUP, RedisJobQueue
from rai.errors import ServiceUnavailable
from rai.live.redis_server import connect
from tests.fixtures.redis import free_port, shutdown, wait_until

Q = "rai_amd64"


@pytest.fixture
def queue(redis_client):
    return RedisJobQueue(redis_client, visibility_timeout=0.5)


def test_enqueue_claim_ack_removes_the_job(queue, redis_client):
    mid = queue.enqueue(Q, '{"job_id": "a"}')
    job = queue.claim(Q, "w1", block=0)
    assert job is not None
    assert (job.queue, job.message_id, job.body, job.attempts) == (Q, mid, '{"job_id": "a"}', 1)
    queue.ack(job)
    assert redis_client.xlen(queue.key(Q)) == 0  # acked entries are deleted, the stream stays bounded
    assert queue.claim(Q, "w2", block=0) is None
    d = queue.depth(Q)
    assert (d.waiting, d.running, d.oldest_waiting_age) == (0, 0, None)


def test_jobs_come_in_order_and_a_blocking_claim_wakes_on_enqueue(queue):
    ids = [queue.enqueue(Q, f"job {i}") for i in range(3)]
    assert [queue.claim(Q, "w1", block=0).message_id for _ in ids] == ids

    got = []
    t = threading.Thread(target=lambda: got.append(queue.claim(Q, "w2", block=5)))
    t.start()
    wait_until(lambda: any(c.get("cmd") == "xreadgroup" for c in queue.r.client_list()), what="a blocked claim")
    later = queue.enqueue(Q, "late")
    t.join(5)
    assert got and got[0].message_id == later


def test_a_job_enqueued_before_any_worker_existed_is_delivered(redis_client):
    q = RedisJobQueue(redis_client)
    mid = q.enqueue(Q, "early")  # no consumer group yet
    assert q.claim(Q, "w1", block=0).message_id == mid


def test_two_workers_never_hold_the_same_job(redis_client):
    q = RedisJobQueue(redis_client, visibility_timeout=30)
    n = 200
    for i in range(n):
        q.enqueue(Q, f"job {i}")
    held: dict[str, list[str]] = {}
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            job = q.claim(Q, name, block=0.05)
            if job is None:
                return
            with lock:
                held.setdefault(job.body, []).append(name)
            q.ack(job)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(held) == sorted(f"job {i}" for i in range(n))
    assert all(len(names) == 1 for names in held.values())
    assert len({names[0] for names in held.values()}) > 1  # the work was really shared


def test_a_dead_workers_job_is_claimed_again_after_the_visibility_timeout(queue):
    mid = queue.enqueue(Q, "job")
    first = queue.claim(Q, "w1", block=0)
    assert first.attempts == 1
    started = time.monotonic()
    assert queue.claim(Q, "w2", block=0) is None  # still held by w1
    again = wait_until(lambda: queue.claim(Q, "w2", block=0.05), timeout=5, what="the reclaim")
    assert time.monotonic() - started >= 0.4
    assert (again.message_id, again.body, again.attempts) == (mid, "job", 2)
    assert queue.keep_alive(first, "w1") is False  # w1 lost it: it must not take it back
    assert queue.claim(Q, "w3", block=0) is None  # w2 holds it now
    queue.ack(again)
    assert queue.depth(Q).running == 0


def test_keep_alive_prevents_the_reclaim(redis_client):
    queue = RedisJobQueue(redis_client, visibility_timeout=1.0)
    queue.enqueue(Q, "job")
    job = queue.claim(Q, "w1", block=0)
    deadline = time.monotonic() + 2.5  # two and a half visibility timeouts, kept alive every 0.1 s
    while time.monotonic() < deadline:
        assert queue.keep_alive(job, "w1") is True
        assert queue.claim(Q, "w2", block=0.1) is None
    assert queue.depth(Q).running == 1
    again = wait_until(lambda: queue.claim(Q, "w2", block=0.05), timeout=5, what="the reclaim once kept alive no more")
    assert again.message_id == job.message_id


def test_release_makes_the_job_claimable_at_once(redis_client):
    q = RedisJobQueue(redis_client, visibility_timeout=60)
    q.enqueue(Q, "job")
    job = q.claim(Q, "w1", block=0)
    q.release(job)
    d = q.depth(Q)
    assert (d.waiting, d.running) == (1, 0)
    again = q.claim(Q, "w2", block=0)
    assert again is not None and again.message_id == job.message_id
    assert again.attempts == 2
    assert q.keep_alive(again, "w2") is True


def test_depth_counts_waiting_running_and_the_oldest_age(queue, redis_client):
    assert queue.depth(Q).waiting == 0  # no stream yet
    secs, _ = redis_client.time()
    old = redis_client.xadd(queue.key(Q), {"body": "ten seconds old"}, id=f"{(secs - 10) * 1000}-0")
    queue.enqueue(Q, "new 1")
    queue.enqueue(Q, "new 2")
    d = queue.depth(Q)
    assert (d.waiting, d.running) == (3, 0)  # no worker ever claimed: no group yet
    assert 9 <= d.oldest_waiting_age < 20

    job = queue.claim(Q, "w1", block=0)
    assert job.message_id == old.decode()
    d = queue.depth(Q)
    assert (d.waiting, d.running) == (2, 1)
    assert 0 <= d.oldest_waiting_age < 5  # the ten-second-old one runs now

    # once its worker stops keeping it alive, the job waits again (the next claim takes it)
    d = wait_until(lambda: (lambda d: d if d.waiting == 3 else None)(queue.depth(Q)), timeout=5,
                   what="the stale job counted as waiting")
    assert d.running == 0 and d.oldest_waiting_age >= 9


def test_queues_lists_the_queues_that_exist(redis_client):
    q = RedisJobQueue(redis_client)
    assert q.queues() == []
    q.enqueue("rai_amd64", "a")
    q.enqueue("rai_arm64", "b")
    assert q.queues() == ["rai_amd64", "rai_arm64"]
    job = q.claim("rai_arm64", "w", block=0)
    q.ack(job)
    assert q.queues() == ["rai_amd64", "rai_arm64"]  # an empty queue still exists
    # a stream made by something that kept no set of names is found too
    redis_client.delete(q.names_key)
    assert RedisJobQueue(redis_client).queues() == ["rai_amd64", "rai_arm64"]
    assert redis_client.smembers(q.names_key) == {b"rai_amd64", b"rai_arm64"}


def test_claim_recreates_a_group_that_disappeared(queue, redis_client):
    queue.enqueue(Q, "one")
    assert queue.claim(Q, "w1", block=0) is not None
    redis_client.flushdb()  # Redis wiped under a running raid
    mid = queue.enqueue(Q, "two")
    job = queue.claim(Q, "w1", block=0)
    assert job is not None and job.message_id == mid
    groups = redis_client.xinfo_groups(queue.key(Q))
    assert [g["name"] for g in groups] == [GROUP.encode()]


def test_jobs_survive_a_redis_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path))
    url = f"redis://127.0.0.1:{free_port()}/0"
    r = connect(url)  # starts a local redis-server with appendonly
    try:
        q = RedisJobQueue(r, visibility_timeout=60)
        held = q.enqueue(Q, "held")
        q.enqueue(Q, "waiting")
        assert q.claim(Q, "w1", block=0).message_id == held
        shutdown(url)  # writes the append-only file
        r = connect(url)  # starts it again from its files
        q = RedisJobQueue(r, visibility_timeout=60)
        d = q.depth(Q)
        assert (d.waiting, d.running) == (1, 1)  # w1 still holds "held"; it comes back if w1 is gone
        job = q.claim(Q, "w2", block=0)
        assert job is not None and job.body == "waiting"
        pending = r.xpending_range(q.key(Q), GROUP, min="-", max="+", count=10)
        assert [(p["message_id"].decode(), p["consumer"]) for p in pending] == [(held, b"w1"), (job.message_id, b"w2")]
    finally:
        shutdown(url, nosave=True)


def test_redis_down_is_a_service_unavailable_error():
    dead = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5)
    q = RedisJobQueue(dead)
    with pytest.raises(ServiceUnavailable) as e:
        q.enqueue(Q, "job")
    assert "pubsub.url" in e.value.hint
    with pytest.raises(ServiceUnavailable):
        q.claim(Q, "w1", block=0)
    with pytest.raises(ServiceUnavailable):
        RedisLogStream(dead).read("job")
