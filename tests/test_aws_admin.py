"""`rai-aws`: bucket and queue set-up against moto_server, and IAM policies that allow what each holder does
and nothing else (checked with moto's IAM policy evaluator)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from moto.iam.access_control import IAMPolicy, PermissionResult

from rai.aws_admin import cli, iam_policies
from rai.backends.s3_store import S3Store
from rai.backends.sqs_queue import SQSJobQueue
from rai.config import Config
from tests.fixtures.aws import broker_config, store_config, unique

ACCOUNT = "123456789012"
RAID = f"arn:aws:iam::{ACCOUNT}:role/rai-node"


def allowed(policy: dict, action: str, resource: str) -> bool:
    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


@pytest.fixture
def config() -> Config:
    return Config.model_validate({
        "broker": {"provider": "sqs", "region": "eu-west-1", "queue_prefix": "rai_"},
        "store": {"provider": "s3", "bucket": "course-rai", "region": "eu-west-1",
                  "upload_role_arn": f"arn:aws:iam::{ACCOUNT}:role/rai-upload"},
    })


def test_raid_may_work_the_queues_read_uploads_write_outputs_and_vend_nothing_more(config):
    p = iam_policies(config, ACCOUNT, RAID)["raid-node"]
    q = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:rai_amd64"
    for action in ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "SendMessage", "GetQueueAttributes"):
        assert allowed(p, f"sqs:{action}", q)
    assert allowed(p, "sqs:SendMessage", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:rai_amd64_dead")
    assert not allowed(p, "sqs:DeleteQueue", q) and not allowed(p, "sqs:PurgeQueue", q)
    assert not allowed(p, "sqs:ReceiveMessage", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:payroll")
    assert allowed(p, "s3:GetObject", "arn:aws:s3:::course-rai/uploads/ada/j1.tar.zst")
    assert allowed(p, "s3:PutObject", "arn:aws:s3:::course-rai/outputs/ada/j1.tar.zst")
    assert not allowed(p, "s3:PutObject", "arn:aws:s3:::course-rai/uploads/ada/j1.tar.zst")
    assert not allowed(p, "s3:DeleteObject", "arn:aws:s3:::course-rai/outputs/ada/j1.tar.zst")
    assert not allowed(p, "s3:ListBucket", "arn:aws:s3:::course-rai")
    assert allowed(p, "sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/rai-upload")
    assert not allowed(p, "sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/admin")
    strict = config.model_copy(update={"broker": config.broker.model_copy(update={"create_queues": False})})
    assert not allowed(iam_policies(strict, ACCOUNT, RAID)["raid-node"], "sqs:CreateQueue", q)


def test_the_upload_role_trusts_raid_only_and_reaches_uploads_outputs_and_sending(config):
    docs = iam_policies(config, ACCOUNT, RAID)
    assert docs["upload-role-trust"]["Statement"][0]["Principal"] == {"AWS": RAID}
    p = docs["upload-role-permissions"]
    assert allowed(p, "s3:PutObject", "arn:aws:s3:::course-rai/uploads/ada/j1.tar.zst")
    assert allowed(p, "s3:GetObject", "arn:aws:s3:::course-rai/outputs/ada/j1.tar.zst")
    assert allowed(p, "sqs:SendMessage", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:rai_amd64")
    assert not allowed(p, "sqs:ReceiveMessage", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:rai_amd64")
    assert not allowed(p, "s3:GetObject", "arn:aws:s3:::course-rai/uploads/ada/j1.tar.zst")


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
    assert SQSJobQueue(broker).queues() == [broker.queue_prefix + "amd64", broker.queue_prefix + "ppc64le"]
    rules = S3Store(store).s3.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"]
    assert {r["ID"] for r in rules} == {"rai-uploads", "rai-outputs", "rai-unfinished-uploads"}
    r = CliRunner().invoke(cli, ["--config", str(path), "policies", "--account", ACCOUNT, "--raid-principal", RAID,
                                 "--name", "raid-node"], standalone_mode=False)
    assert json.loads(r.output)["Statement"][0]["Sid"] == "WorkTheQueues"
