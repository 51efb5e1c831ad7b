"""SQS beyond the queue contract: dead letters with their reason, redrive, listing, long polling, missing queues."""

from __future__ import annotations

import json
import time

import pytest

from rai.backends.sqs_queue import SQSJobQueue
from rai.errors import NotFound
from tests.fixtures.aws import broker_config


@pytest.fixture
def sqs(moto_url):
    cfg = broker_config(moto_url, visibility_timeout=1, max_attempts=1)
    return SQSJobQueue(cfg), cfg.queue_prefix + "amd64"


def test_a_job_given_up_goes_to_the_dead_letter_queue_with_its_reason(sqs):
    q, name = sqs
    q.enqueue(name, '{"job_id": "j1"}')
    job = q.claim(name, "w1", block=1)
    q.dead_letter(job, "dead-lettered: gave up after 1 attempts (last on node n1)")
    assert q.claim(name, "w2", block=0) is None
    d = q.depth(name)
    assert (d.waiting, d.running, d.dead_lettered) == (0, 0, 1)
    [dead] = q.dead_letters(name)
    assert dead.body == '{"job_id": "j1"}' and "last on node n1" in dead.reason and dead.queue == name
    assert q.dead_letters(name)  # looking does not take it away


def test_sqs_redrive_catches_a_job_no_node_could_end(sqs):
    q, name = sqs  # max_attempts 1: raid gives up at delivery 2, SQS itself after 3
    attrs = q.sqs.get_queue_attributes(QueueUrl=q._url(name), AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] in (3, "3")
    q.enqueue(name, '{"job_id": "j2"}')
    for attempt in (1, 2, 3):
        job = q.claim(name, "w1", block=1)
        assert job is not None and job.attempts == attempt
        q.release(job)
    assert q.claim(name, "w1", block=0) is None
    [dead] = q.dead_letters(name)
    assert dead.body == '{"job_id": "j2"}' and "too many deliveries" in dead.reason


def test_queues_lists_this_deployments_queues_without_dead_letter_queues(moto_url):
    cfg = broker_config(moto_url)
    q = SQSJobQueue(cfg)
    for arch in ("amd64", "ppc64le"):
        q.ensure_queue(cfg.queue_prefix + arch)
    SQSJobQueue(broker_config(moto_url)).ensure_queue("elsewhere_amd64")
    assert q.queues() == [cfg.queue_prefix + "amd64", cfg.queue_prefix + "ppc64le"]


def test_claim_long_polls_instead_of_spinning(sqs):
    q, name = sqs
    t0 = time.monotonic()
    assert q.claim(name, "w1", block=1) is None
    assert time.monotonic() - t0 >= 0.9


def test_keep_alive_says_when_the_delivery_is_no_longer_ours(sqs):
    q, name = sqs
    q.enqueue(name, "{}")
    job = q.claim(name, "w1", block=1)
    assert q.keep_alive(job, "w1") is True
    q.ack(job)
    assert q.keep_alive(job, "w1") is False


def test_a_missing_queue_is_created_by_raid_or_named_with_what_to_do(moto_url):
    cfg = broker_config(moto_url, create_queues=False)
    with pytest.raises(NotFound, match="no SQS queue") as e:
        SQSJobQueue(cfg).enqueue(cfg.queue_prefix + "amd64", "{}")
    assert "rai-aws setup" in e.value.hint
    q = SQSJobQueue(broker_config(moto_url, queue_prefix=cfg.queue_prefix))
    q.enqueue(cfg.queue_prefix + "amd64", "{}")  # create_queues (the default): made at first use
    assert q.depth(cfg.queue_prefix + "amd64").waiting == 1
