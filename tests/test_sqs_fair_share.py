"""Fair share on SQS (moto_server over HTTP) with the usage ledger on the real Redis: priority bands, one SQS
queue each (rai.backends.sqs_fair_queue)."""

from __future__ import annotations

import json
import secrets

import pytest

from rai.backends.sqs_fair_queue import FairSQSJobQueue
from rai.live.usage import UsageLedger
from tests.fixtures.aws import broker_config


@pytest.fixture
def fair(moto_url, redis_client):
    def make(**kw):
        cfg = broker_config(moto_url, visibility_timeout=2, max_attempts=1)
        return FairSQSJobQueue(cfg, UsageLedger(redis_client), redis_client, **kw), cfg.queue_prefix + "amd64"
    return make


def job(user: str) -> str:
    return json.dumps({"job_id": secrets.token_hex(6), "username": user, "submitted_at": "2026-12-02T20:00:00Z"})


def user(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"  # the usage ledger is shared by every test on this Redis


def take_all(q, name: str) -> list[str]:
    out = []
    while (claimed := q.claim(name, "w1", block=0)) is not None:
        out.append(json.loads(claimed.body)["username"])
        q.ack(claimed)
    return out


def test_five_first_jobs_are_taken_before_the_greedy_users_second(fair):
    q, name = fair()
    greedy, others = user("greedy"), [user(f"s{i}") for i in range(5)]
    for _ in range(30):
        q.enqueue(name, job(greedy))
    for o in others:
        q.enqueue(name, job(o))
    order = take_all(q, name)
    assert len(order) == 35, order
    firsts = [order.index(o) for o in others]
    greedy_at = [i for i, who in enumerate(order) if who == greedy]
    assert max(firsts) < greedy_at[1], f"a first job waited behind the greedy user's second: {order}"


def test_recent_usage_puts_a_first_job_behind_a_newcomers(fair, redis_client):
    q, name = fair()
    heavy, fresh = user("heavy"), user("fresh")
    UsageLedger(redis_client).charge(heavy, 10 * 60.0)  # ten typical jobs ran lately
    q.enqueue(name, job(heavy))
    q.enqueue(name, job(fresh))
    assert take_all(q, name) == [fresh, heavy]


def test_a_band_left_waiting_long_enough_goes_first(fair):
    """Nothing starves: with waiting worth a lot (age_weight), the greedy user's late jobs are taken although
    first jobs keep arriving."""
    q, name = fair(age_weight=1e9)
    greedy = user("greedy")
    for _ in range(8):
        q.enqueue(name, job(greedy))  # bands 0, 1, 1, 2, 2, 2, 2, 3
    taken = []
    for i in range(4):
        q.enqueue(name, job(user(f"new{i}")))  # a steady supply of band-0 jobs
        claimed = q.claim(name, "w1", block=0)
        taken.append(json.loads(claimed.body)["username"])
        q.ack(claimed)
    assert taken.count(greedy) >= 3, taken


def test_a_queue_of_instant_jobs_keeps_the_fair_order(fair, redis_client):
    """Jobs that end at once (a compile error each, on deadline night) make the queue's typical duration ~0:
    a claim still charges a typical job and the starvation guard still waits, so a classmate's first job is
    taken before the greedy user's late ones."""
    q, name = fair()
    for _ in range(3):
        UsageLedger(redis_client).record_duration(name, 0.0)
    greedy, late = user("greedy"), user("late")
    for _ in range(5):
        q.enqueue(name, job(greedy))  # bands 0, 1, 1, 2, 2
    for _ in range(3):
        q.ack(q.claim(name, "w1", block=0))  # its first three run; the 4th and 5th wait in band 2
    q.enqueue(name, job(late))
    claimed = q.claim(name, "w1", block=0)
    assert json.loads(claimed.body)["username"] == late


def test_bands_are_one_queue_to_the_operator(fair):
    q, name = fair()
    greedy = user("greedy")
    for _ in range(4):
        q.enqueue(name, job(greedy))
    assert q.queues() == [name]  # the band queues are not listed as queues of their own
    assert q.depth(name).waiting == 4
    first = q.claim(name, "w1", block=0)
    second = q.claim(name, "w1", block=0)  # from band 1
    assert second.band_queue == f"{name}_p1" and second.queue == name
    assert q.keep_alive(second, "w1") is True
    d = q.depth(name)
    assert (d.waiting, d.running) == (2, 2)
    q.dead_letter(second, "dead-lettered: gave up after 1 attempts")
    q.ack(first)
    [dead] = q.dead_letters(name)  # the bands share the queue's dead-letter queue
    assert dead.queue == name and "gave up" in dead.reason
    assert q.depth(name).running == 0


def test_the_fair_order_is_the_claim_order(fair, redis_client):
    q, name = fair()
    greedy, late = user("greedy"), user("late")
    bodies = [job(greedy) for _ in range(3)] + [job(late)]
    for i, b in enumerate(bodies):  # what the live board keeps for each waiting job: its submission time
        redis_client.zadd(f"rai:waiting:{name}", {json.loads(b)["job_id"]: 1000 + i})
        q.enqueue(name, b)
    ids = [json.loads(b)["job_id"] for b in bodies]
    assert q.fair_order(name) == [ids[0], ids[3], ids[1], ids[2]]
    redis_client.delete(f"rai:waiting:{name}")
