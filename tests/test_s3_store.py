"""S3 beyond the store contract: private objects, expiring links, lifecycle retention, checksums, and a clear
message when temporary credentials expire in the middle of an upload."""

from __future__ import annotations

import os
import types
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from rai.backends.s3_store import S3Store
from rai.errors import AuthError


def test_objects_are_private_and_links_expire_when_configured(s3_config, tmp_path):
    (tmp_path / "f").write_bytes(b"secret output")
    store = S3Store(s3_config.model_copy(update={"url_expiry": 3600}))
    store.put_file("outputs/ada/j1.tar.zst", tmp_path / "f")
    plain = f"{s3_config.endpoint_url}/{s3_config.bucket}/outputs/ada/j1.tar.zst"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(plain, timeout=10)
    assert e.value.code == 403
    query = parse_qs(urlsplit(store.url("outputs/ada/j1.tar.zst")).query)
    assert query["X-Amz-Expires"] == ["3600"]
    long = S3Store(s3_config.model_copy(update={"url_expiry": 30 * 86400}))
    assert parse_qs(urlsplit(long.url("k")).query)["X-Amz-Expires"] == ["604800"]  # SigV4's week at most


def test_setup_blocks_public_access_encrypts_and_expires_by_prefix(s3_config):
    cfg = s3_config.model_copy(update={"uploads_retention": 14 * 86400, "outputs_retention": 90 * 86400})
    store = S3Store(cfg)
    done = store.setup()
    assert any("14 days" in d for d in done)
    rules = {r["ID"]: r for r in store.s3.get_bucket_lifecycle_configuration(Bucket=cfg.bucket)["Rules"]}
    assert rules["rai-uploads"]["Filter"]["Prefix"] == "uploads/" and rules["rai-uploads"]["Expiration"]["Days"] == 14
    assert rules["rai-outputs"]["Expiration"]["Days"] == 90
    assert rules["rai-unfinished-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    block = store.s3.get_public_access_block(Bucket=cfg.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    enc = store.s3.get_bucket_encryption(Bucket=cfg.bucket)["ServerSideEncryptionConfiguration"]
    assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert store.setup() == done  # idempotent


def test_uploads_carry_a_sha256_checksum_s3_verifies(s3_config, tmp_path):
    (tmp_path / "f").write_bytes(os.urandom(12 * 1024**2))
    store = S3Store(s3_config.model_copy(update={"multipart_chunk": 5 * 1024**2}))
    sent = []
    store.s3.meta.events.register("before-send.s3.UploadPart", lambda request, **_: sent.append(request.headers))
    store.put_file("uploads/ada/j2.tar.zst", tmp_path / "f")
    assert len(sent) == 3
    assert all("x-amz-checksum-sha256" in {k.lower() for k in h} or
               h.get("x-amz-trailer", b"").lower() in ("x-amz-checksum-sha256", b"x-amz-checksum-sha256")
               for h in sent), sent[0]


def test_credentials_expiring_mid_upload_say_so_clearly(s3_config, tmp_path):
    (tmp_path / "f").write_bytes(os.urandom(16 * 1024**2))
    store = S3Store(s3_config.model_copy(update={"multipart_chunk": 5 * 1024**2}))
    store.transfer.max_concurrency = 1
    store.transfer.use_threads = False
    parts = []

    def expire_after_two_parts(**_):
        parts.append(1)
        if len(parts) > 2:  # what S3 answers once the STS session is over
            error = {"Error": {"Code": "ExpiredToken", "Message": "The provided token has expired."},
                     "ResponseMetadata": {"HTTPStatusCode": 400}}
            return types.SimpleNamespace(status_code=400, headers={}), error
        return None

    store.s3.meta.events.register("before-call.s3.UploadPart", expire_after_two_parts)
    with pytest.raises(AuthError) as e:
        store.put_file("uploads/ada/j3.tar.zst", tmp_path / "f")
    msg = str(e.value)
    assert "credentials expired" in msg and "10.0MiB of 16.0MiB" in msg and "15m" in msg
    assert "submit again" in e.value.hint
