"""The JobQueue port: Redis Streams (embedded) and Amazon SQS (moto_server over HTTP) pass the same tests.

Visibility timeout 1 s so the "comes back" cases take about a second each.
"""

from __future__ import annotations

import json
import secrets
import time

import pytest

from rai.backends.sqs_queue import SQSJobQueue
from tests.fixtures.aws import broker_config

VIS = 1.0


@pytest.fixture(params=["redis", "redis-fair", "sqs", "sqs-fair"])
def queue(request):
    """(queue backend, queue name)."""
    if request.param == "redis-fair":
        from rai.backends.fair_queue import FairRedisJobQueue
        from rai.live.usage import UsageLedger

        r = request.getfixturevalue("redis_client")
        return FairRedisJobQueue(r, UsageLedger(r), visibility_timeout=VIS), "rai_contract"
    if request.param == "redis":
        from rai.backends.redis_queue import RedisJobQueue

        return RedisJobQueue(request.getfixturevalue("redis_client"), visibility_timeout=VIS), "rai_contract"
    cfg = broker_config(request.getfixturevalue("moto_url"), visibility_timeout=VIS)
    if request.param == "sqs-fair":
        from rai.backends.sqs_fair_queue import FairSQSJobQueue
        from rai.live.usage import UsageLedger

        r = request.getfixturevalue("redis_client")
        return FairSQSJobQueue(cfg, UsageLedger(r), r), cfg.queue_prefix + "amd64"
    return SQSJobQueue(cfg), cfg.queue_prefix + "amd64"


def body() -> str:
    return json.dumps({"job_id": secrets.token_hex(4)})


def test_a_job_goes_to_one_worker_with_its_body_and_first_attempt(queue):
    q, name = queue
    b = body()
    msg_id = q.enqueue(name, b)
    job = q.claim(name, "w1", block=2)
    assert job is not None and job.body == b and job.attempts == 1 and job.queue == name
    assert msg_id
    assert q.claim(name, "w2", block=0.5) is None
    q.ack(job)


def test_an_acked_job_never_comes_back(queue):
    q, name = queue
    q.enqueue(name, body())
    job = q.claim(name, "w1", block=2)
    q.ack(job)
    time.sleep(VIS + 0.3)
    assert q.claim(name, "w2", block=0) is None


def test_a_job_its_worker_stopped_keeping_alive_comes_back_counting_attempts(queue):
    q, name = queue
    b = body()
    q.enqueue(name, b)
    first = q.claim(name, "w1", block=2)
    time.sleep(VIS + 0.3)  # w1 "crashed": no keep-alive
    again = q.claim(name, "w2", block=2)
    assert again is not None and again.body == b and again.attempts == 2
    q.ack(again)
    assert first.attempts == 1


def test_a_job_kept_alive_is_never_delivered_twice(queue):
    q, name = queue
    q.enqueue(name, body())
    job = q.claim(name, "w1", block=2)
    deadline = time.monotonic() + 2.5 * VIS
    while time.monotonic() < deadline:
        time.sleep(VIS / 3)
        assert q.keep_alive(job, "w1") is not False
        assert q.claim(name, "w2", block=0) is None
    q.ack(job)


def test_a_released_job_is_claimable_at_once(queue):
    q, name = queue
    b = body()
    q.enqueue(name, b)
    job = q.claim(name, "w1", block=2)
    q.release(job)
    t0 = time.monotonic()
    again = q.claim(name, "w2", block=2)
    assert again is not None and again.body == b and again.attempts == 2
    assert time.monotonic() - t0 < VIS
    q.ack(again)


def test_depth_counts_waiting_and_running_and_the_queue_is_listed(queue):
    q, name = queue
    for _ in range(3):
        q.enqueue(name, body())
    job = q.claim(name, "w1", block=2)
    d = q.depth(name)
    assert (d.queue, d.waiting, d.running) == (name, 2, 1)
    assert name in q.queues()
    q.ack(job)
    assert q.depth(name).running == 0
