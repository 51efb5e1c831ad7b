"""`rai-aws`: bucket and queue set-up against moto_server, and IAM policies that allow what each holder does
and nothing else (checked with moto's IAM policy evaluator, and against the calls the S3 and SQS backends
really make on moto_server for rai-server and for raid)."""

from __future__ import annotations

import json
import os
import types

import pytest
import yaml
from click.testing import CliRunner
from moto.iam.access_control import IAMPolicy, PermissionResult

from rai.admin.aws_cli import cli, iam_policies
from rai.backends.s3_store import S3Store
from rai.backends.sqs_queue import SQSJobQueue
from rai.config import Config
from rai.errors import UserError
from tests.fixtures.aws import broker_config, store_config, unique

ACCOUNT = "123456789012"
REGION = "eu-west-1"
Q = f"arn:aws:sqs:{REGION}:{ACCOUNT}:rai_amd64"
UPLOAD = "arn:aws:s3:::course-rai/uploads/ada/20261122023319-756eb8271ec0.tar.zst"
OUTPUT = "arn:aws:s3:::course-rai/outputs/ada/20261122023319-756eb8271ec0.tar.zst"


def allowed(policy: dict, action: str, resource: str) -> bool:
    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


@pytest.fixture
def config() -> Config:
    return Config.model_validate({
        "broker": {"provider": "sqs", "region": REGION, "queue_prefix": "rai_"},
        "store": {"provider": "s3", "bucket": "course-rai", "region": REGION},
    })


def test_raid_may_work_the_queues_read_uploads_write_outputs_and_nothing_more(config):
    p = iam_policies(config, ACCOUNT)["raid-node"]
    for action in ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "SendMessage", "GetQueueAttributes"):
        assert allowed(p, f"sqs:{action}", Q)
    assert allowed(p, "sqs:SendMessage", f"{Q}_dead")
    assert not allowed(p, "sqs:DeleteQueue", Q) and not allowed(p, "sqs:PurgeQueue", Q)
    assert not allowed(p, "sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:payroll")
    assert allowed(p, "s3:GetObject", UPLOAD)
    assert allowed(p, "s3:PutObject", OUTPUT)
    assert not allowed(p, "s3:PutObject", UPLOAD)
    assert not allowed(p, "s3:DeleteObject", OUTPUT)
    assert not allowed(p, "s3:ListBucket", "arn:aws:s3:::course-rai")
    # no credential vending any more: raid assumes no role
    assert not allowed(p, "sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/rai-upload")
    assert not any("sts:" in json.dumps(s) for s in p["Statement"])
    strict = config.model_copy(update={"broker": config.broker.model_copy(update={"create_queues": False})})
    assert not allowed(iam_policies(strict, ACCOUNT)["raid-node"], "sqs:CreateQueue", Q)


def test_rai_server_may_store_uploads_enqueue_and_serve_outputs_only(config):
    p = iam_policies(config, ACCOUNT)["rai-server"]
    assert allowed(p, "s3:PutObject", UPLOAD) and allowed(p, "s3:AbortMultipartUpload", UPLOAD)
    assert allowed(p, "s3:GetObject", OUTPUT)
    assert allowed(p, "s3:ListBucket", "arn:aws:s3:::course-rai")  # a deleted output reads as 404, not 403
    assert allowed(p, "sqs:SendMessage", Q) and allowed(p, "sqs:GetQueueUrl", Q)
    # it reads no upload, writes no output, deletes nothing
    assert not allowed(p, "s3:GetObject", UPLOAD)
    assert not allowed(p, "s3:PutObject", OUTPUT)
    for key in (UPLOAD, OUTPUT):
        assert not allowed(p, "s3:DeleteObject", key)
    assert not allowed(p, "s3:PutObject", "arn:aws:s3:::course-rai/elsewhere/x")
    assert not allowed(p, "s3:PutObject", "arn:aws:s3:::another-bucket/uploads/ada/x.tar.zst")
    # it takes no job, makes no queue, writes no dead letter, and reaches no other queue
    for action in ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "PurgeQueue", "DeleteQueue",
                   "CreateQueue", "SetQueueAttributes"):
        assert not allowed(p, f"sqs:{action}", Q), action
    assert not allowed(p, "sqs:SendMessage", f"{Q}_dead")
    assert not allowed(p, "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:payroll")
    assert not allowed(p, "sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/rai-node")
    # queue creation stays with `rai-aws setup` even when the config lets raid create queues
    assert config.broker.create_queues
    assert not allowed(p, "sqs:CreateQueue", f"arn:aws:sqs:{REGION}:{ACCOUNT}:rai_anything")


def test_a_named_dead_letter_queue_is_raids_to_write_and_never_rai_servers(config):
    broker = config.broker.model_copy(update={"dead_letter_queue": "rai_graveyard"})
    named = config.model_copy(update={"broker": broker})
    docs = iam_policies(named, ACCOUNT)
    graveyard = f"arn:aws:sqs:{REGION}:{ACCOUNT}:rai_graveyard"
    assert allowed(docs["raid-node"], "sqs:SendMessage", graveyard)
    assert not allowed(docs["rai-server"], "sqs:SendMessage", graveyard)
    assert allowed(docs["rai-server"], "sqs:SendMessage", Q)


def test_without_sqs_there_is_no_queue_statement(config):
    redis = config.model_copy(update={"broker": config.broker.model_copy(update={"provider": "redis"})})
    for doc in (iam_policies(redis, ACCOUNT)[name] for name in ("raid-node", "rai-server")):
        assert doc["Statement"] and not any("sqs:" in json.dumps(s) for s in doc["Statement"])


# --- the calls the backends make, on moto_server, against the policy of their holder

def record_calls(client, calls: list) -> None:
    """Append (IAM action, resource ARN) for every API call `client` makes."""
    service = client.meta.service_model.service_name

    def before(params, model, **_):
        calls.append((service, model.name, dict(params)))

    client.meta.events.register(f"before-parameter-build.{service}", before)


def as_iam(calls: list, account: str, region: str) -> set[tuple[str, str]]:
    s3_actions = {"PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject",
                  "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
                  "AbortMultipartUpload": "s3:AbortMultipartUpload", "GetObject": "s3:GetObject",
                  "HeadObject": "s3:GetObject", "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket"}
    out = set()
    for service, op, params in calls:
        if service == "s3":
            resource = f"arn:aws:s3:::{params['Bucket']}" + (f"/{params['Key']}" if "Key" in params else "")
            out.add((s3_actions[op], resource))
        else:
            name = params.get("QueueName") or params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
            out.add((f"sqs:{op}", f"arn:aws:sqs:{region}:{account}:{name}"))
    return out


def fail_second_part(**_):
    """What S3 answers to a part it refuses; the transfer manager then aborts the multipart upload."""
    fail_second_part.parts += 1
    if fail_second_part.parts == 2:
        error = {"Error": {"Code": "BadDigest", "Message": "The checksum did not match."},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        return types.SimpleNamespace(status_code=400, headers={}), error
    return None


def test_what_rai_server_and_raid_call_on_s3_and_sqs_is_what_their_policies_allow(moto_url, tmp_path):
    store_cfg = store_config(moto_url, unique("rai-iam"), multipart_chunk=5 * 1024**2)
    broker_cfg = broker_config(moto_url)
    S3Store(store_cfg).setup()
    SQSJobQueue(broker_cfg).ensure_queue(f"{broker_cfg.queue_prefix}amd64")
    config = Config(store=store_cfg, broker=broker_cfg)
    account = "123456789012"  # moto's
    docs = iam_policies(config, account)
    queue = f"{broker_cfg.queue_prefix}amd64"
    upload = "uploads/ada/20261122023319-756eb8271ec0.tar.zst"
    output = "outputs/ada/20261122023319-756eb8271ec0.tar.zst"
    archive = tmp_path / "project.tar.zst"
    archive.write_bytes(os.urandom(12 * 1024**2))  # three parts: the multipart path

    # rai-server (raiserver/jobs.py): put_file the upload, enqueue the job, get_file the outputs
    server_calls: list = []
    server_store, server_queue = S3Store(store_cfg), SQSJobQueue(broker_cfg)
    record_calls(server_store.s3, server_calls)
    record_calls(server_queue.sqs, server_calls)
    server_store.put_file(upload, archive)
    fail_second_part.parts = 0
    server_store.transfer.max_concurrency, server_store.transfer.use_threads = 1, False
    server_store.s3.meta.events.register("before-call.s3.UploadPart", fail_second_part)
    with pytest.raises(UserError):
        server_store.put_file("uploads/ada/20261122023320-000000000000.tar.zst", archive)
    server_store.s3.meta.events.unregister("before-call.s3.UploadPart", fail_second_part)
    server_queue.enqueue(queue, json.dumps({"job_id": "j1"}))

    # raid (raid/job_runner.py, raid/heartbeat.py): take the job, read the upload, write and link the outputs,
    # keep the job claimed, put one back at the end of the queue, dead-letter one, read the depth
    raid_calls: list = []
    raid_store, raid_queue = S3Store(store_cfg), SQSJobQueue(broker_cfg)
    record_calls(raid_store.s3, raid_calls)
    record_calls(raid_queue.sqs, raid_calls)
    claimed = raid_queue.claim(queue, "gpu-07", block=1)
    assert claimed is not None
    assert raid_queue.keep_alive(claimed, "gpu-07")
    raid_store.get_file(upload, tmp_path / "fetched.tar.zst")
    raid_store.put_file(output, archive)
    raid_store.url(output)
    raid_queue.enqueue(queue, claimed.body)
    raid_queue.ack(claimed)
    again = raid_queue.claim(queue, "gpu-07", block=1)
    raid_queue.release(again)
    again = raid_queue.claim(queue, "gpu-07", block=1)
    raid_queue.dead_letter(again, "gave up after 3 attempts")
    raid_queue.depth(queue)

    # and rai-server hands the outputs back
    server_store.get_file(output, tmp_path / "outputs.tar.zst")

    server = as_iam(server_calls, account, broker_cfg.region)
    raid = as_iam(raid_calls, account, broker_cfg.region)
    assert {a for a, _ in server} == {"s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject",
                                      "sqs:GetQueueUrl", "sqs:SendMessage"}
    for action, resource in server:
        assert allowed(docs["rai-server"], action, resource), (action, resource)
    assert {a for a, _ in raid} >= {"s3:GetObject", "s3:PutObject", "sqs:ReceiveMessage", "sqs:SendMessage",
                                    "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    for action, resource in raid:
        assert allowed(docs["raid-node"], action, resource), (action, resource)
    # each did something the other's policy refuses
    assert not allowed(docs["rai-server"], "s3:GetObject", f"arn:aws:s3:::{store_cfg.bucket}/{upload}")
    assert not allowed(docs["raid-node"], "s3:PutObject", f"arn:aws:s3:::{store_cfg.bucket}/{upload}")


def test_rai_aws_setup_creates_a_private_self_cleaning_bucket_and_queues(moto_url, tmp_path):
    store = store_config(moto_url, unique("rai-setup"), uploads_retention="7d")
    broker = broker_config(moto_url)
    path = tmp_path / "cfg.yml"
    path.write_text(yaml.safe_dump({"store": store.model_dump(mode="json"), "broker": broker.model_dump(mode="json")}))
    r = CliRunner().invoke(cli, ["--config", str(path), "setup", "--arch", "amd64", "--arch", "ppc64le"],
                           standalone_mode=False)
    assert r.exception is None, r.output
    assert "created bucket" in r.output and "uploads/ kept 7 days" in r.output
    assert f"{broker.queue_prefix}ppc64le_dead" in r.output
    assert f"fair-share bands {broker.queue_prefix}amd64_p1 .. {broker.queue_prefix}amd64_p3" in r.output
    names = [u.rsplit("/", 1)[-1] for u in SQSJobQueue(broker).sqs.list_queues(
        QueueNamePrefix=broker.queue_prefix)["QueueUrls"]]
    assert f"{broker.queue_prefix}ppc64le_p3" in names and f"{broker.queue_prefix}ppc64le_p3_dead" not in names
    assert SQSJobQueue(broker).queues() == [broker.queue_prefix + "amd64", broker.queue_prefix + "ppc64le"]
    rules = S3Store(store).s3.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"]
    assert {r["ID"] for r in rules} == {"rai-uploads", "rai-outputs", "rai-unfinished-uploads"}
    r = CliRunner().invoke(cli, ["--config", str(path), "policies", "--account", ACCOUNT, "--name", "raid-node"],
                           standalone_mode=False)
    assert json.loads(r.output)["Statement"][0]["Sid"] == "WorkTheQueues"
    r = CliRunner().invoke(cli, ["--config", str(path), "policies", "--account", ACCOUNT], standalone_mode=False)
    assert set(json.loads(r.output)) == {"raid-node", "rai-server", "operator"}
    r = CliRunner().invoke(cli, ["--config", str(path), "policies", "--account", ACCOUNT, "--name", "rai-server"],
                           standalone_mode=False)
    assert [s["Sid"] for s in json.loads(r.output)["Statement"]][0] == "StoreUploads"
