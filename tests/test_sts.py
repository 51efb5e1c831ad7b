"""Upload credentials: the client asks raid over Redis with a signed request; raid assumes the upload role
(moto_server's STS) with a session policy narrowed to the user's prefixes and seals the answer with the
user's key. No AWS keys on the client."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
import redis
from moto.iam.access_control import IAMPolicy, PermissionResult

from rai.backends.auth import DatabaseAccounts
from rai.backends.aws import AwsCredentials
from rai.backends.db import SQLiteDatabase
from rai.backends.s3_store import S3Store
from rai.backends.sts import REQUESTS, CredentialVendor, request_upload_credentials, seal, unseal, upload_policy
from rai.errors import AuthError, ServiceUnavailable
from rai.models import Account, utcnow
from tests.fixtures.aws import broker_config


@pytest.fixture
def accounts(tmp_path):
    accounts = DatabaseAccounts(SQLiteDatabase(tmp_path / "rai.db"))
    accounts.add(Account(username="ada", email="ada@example.edu", access_key="AKADA", secret_key="ada-secret"))
    return accounts


@pytest.fixture
def vendor(redis_client, redis_url, accounts, s3_config, moto_url, upload_role_arn):
    store = s3_config.model_copy(update={"upload_role_arn": upload_role_arn, "sts_endpoint_url": moto_url})
    r = redis.Redis.from_url(redis_url)  # raid's own connection
    v = CredentialVendor(r, accounts, store, broker_config(moto_url, queue_prefix="rai_"), poll=0.1)
    v.start()
    yield v
    v.stop()
    r.close()


def test_a_user_gets_short_lived_credentials_that_upload(vendor, redis_client, s3_config, tmp_path):
    creds = request_upload_credentials(redis_client, "AKADA", "ada", "ada-secret", timeout=5)
    assert creds.session_token and creds.access_key_id != s3_config.access_key_id
    left = creds.expiration - utcnow()
    assert timedelta(minutes=14) < left <= timedelta(minutes=15, seconds=5)
    (tmp_path / "a").write_bytes(os.urandom(1000))
    store = S3Store(s3_config.model_copy(update={"access_key_id": None, "secret_access_key": None}),
                    credentials=creds)
    store.put_file("uploads/ada/j1.tar.zst", tmp_path / "a")
    assert S3Store(s3_config).exists("uploads/ada/j1.tar.zst")


@pytest.mark.parametrize("access_key,username,secret,why", [
    ("AKNOPE", "ada", "ada-secret", "access key is unknown"),
    ("AKADA", "ada", "forged", "signature does not match"),
    ("AKADA", "bob", "ada-secret", "other than the key's owner"),
])
def test_requests_that_do_not_check_out_are_refused_with_the_reason(vendor, redis_client, access_key, username,
                                                                    secret, why):
    with pytest.raises(AuthError, match=why):
        request_upload_credentials(redis_client, access_key, username, secret, timeout=5)


def test_a_revoked_key_gets_nothing(vendor, redis_client, accounts):
    a = accounts.get("ada")
    a.revoked = True
    accounts.update(a)
    with pytest.raises(AuthError, match="revoked"):
        request_upload_credentials(redis_client, "AKADA", "ada", "ada-secret", timeout=5)


def test_without_a_raid_node_the_client_is_told_and_leaves_no_request_behind(redis_client):
    with pytest.raises(ServiceUnavailable, match="no rai server answered") as e:
        request_upload_credentials(redis_client, "AKADA", "ada", "ada-secret", timeout=1)
    assert "raid" in e.value.hint
    assert redis_client.llen(REQUESTS) == 0


def test_the_reply_opens_only_with_the_users_key():
    creds = AwsCredentials("ASIA1", "s3cr3t", "token", utcnow())
    box = seal("ada-secret", "req1", creds)
    assert unseal("ada-secret", "req1", box) == creds
    assert "s3cr3t" not in box
    with pytest.raises(AuthError):
        unseal("bob-secret", "req1", box)
    with pytest.raises(AuthError):
        unseal("ada-secret", "req2", box)  # bound to its request


def allowed(policy: dict, action: str, resource: str) -> bool:
    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


def test_the_session_policy_reaches_only_the_users_own_prefixes_and_the_rai_queues():
    p = upload_policy("rai-bucket", "ada", "rai_")
    assert allowed(p, "s3:PutObject", "arn:aws:s3:::rai-bucket/uploads/ada/j1.tar.zst")
    assert allowed(p, "s3:AbortMultipartUpload", "arn:aws:s3:::rai-bucket/uploads/ada/j1.tar.zst")
    assert allowed(p, "s3:GetObject", "arn:aws:s3:::rai-bucket/outputs/ada/j1.tar.zst")
    assert not allowed(p, "s3:PutObject", "arn:aws:s3:::rai-bucket/uploads/bob/j1.tar.zst")
    assert not allowed(p, "s3:PutObject", "arn:aws:s3:::rai-bucket/uploads/adam/j1.tar.zst")
    assert not allowed(p, "s3:GetObject", "arn:aws:s3:::rai-bucket/outputs/bob/j1.tar.zst")
    assert not allowed(p, "s3:GetObject", "arn:aws:s3:::rai-bucket/uploads/ada/j1.tar.zst")
    assert not allowed(p, "s3:PutObject", "arn:aws:s3:::rai-bucket/outputs/ada/j1.tar.zst")
    assert not allowed(p, "s3:DeleteObject", "arn:aws:s3:::rai-bucket/uploads/ada/j1.tar.zst")
    assert not allowed(p, "s3:ListBucket", "arn:aws:s3:::rai-bucket")
    assert allowed(p, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:rai_amd64")
    assert not allowed(p, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:other")
    assert not allowed(p, "sqs:ReceiveMessage", "arn:aws:sqs:us-east-1:123456789012:rai_amd64")
    assert not allowed(p, "sqs:DeleteMessage", "arn:aws:sqs:us-east-1:123456789012:rai_amd64")
    assert not any("sqs" in str(s) for s in upload_policy("b", "ada", None)["Statement"])  # Redis queue
