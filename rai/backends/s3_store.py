"""Object store on Amazon S3: private objects, streaming multipart uploads, presigned links that expire.

- put_file streams the file in `store.multipart_chunk` parts (boto3's transfer manager) with a
  SHA-256 checksum per part that S3 verifies on arrival, calling `progress` with the bytes sent.
- Objects are private: the bucket blocks public access; links are presigned GET URLs valid for
  `store.url_expiry` (at most 7 days; a URL signed with temporary credentials dies with them).
- Retention by prefix: `setup()` (run by `rai-aws setup`) installs lifecycle rules deleting
  `uploads/` after `store.uploads_retention` and `outputs/` after `store.outputs_retention`, and
  aborting multipart uploads left unfinished for a day.
- Integrity end to end: the archive's SHA-256 is in the signed job request; raid checks it after download.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path, PurePosixPath

import boto3.exceptions
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from rai.backends.aws import AwsCredentials, error_code, is_expired, make_client, translate
from rai.backends.store import Progress
from rai.config import StoreConfig
from rai.errors import AuthError, NotFound, UserError
from rai.units import format_duration, format_size

MAX_PRESIGN = 7 * 86400  # SigV4 presigned URLs live at most a week
AWS_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, boto3.exceptions.Boto3Error)


class _Counter:
    """Counts bytes sent (the transfer manager calls back from its threads) and passes them on."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.sent = 0
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            self.sent += n
        if self.progress:
            self.progress(n)


class S3Store:
    """The ObjectStore port on one S3 bucket."""

    def __init__(self, cfg: StoreConfig, credentials: AwsCredentials | None = None, client=None):
        if not cfg.bucket:
            raise UserError("store.provider is s3 but store.bucket is not set", hint="name the bucket in the config")
        self.cfg = cfg
        self.bucket = cfg.bucket
        self.credentials = credentials
        self.s3 = client or make_client("s3", region=cfg.region, endpoint_url=cfg.endpoint_url,
                                        access_key_id=cfg.access_key_id, secret_access_key=cfg.secret_access_key,
                                        credentials=credentials, max_pool_connections=32,
                                        signature_version="s3v4")
        chunk = max(5 * 1024**2, cfg.multipart_chunk)  # S3's smallest part is 5 MiB
        self.transfer = TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=4)

    @staticmethod
    def _key(key: str) -> str:
        if not key or key.startswith("/") or ".." in PurePosixPath(key).parts:
            raise UserError(f"invalid object key {key!r}")
        return key

    # --- the port
    def put_file(self, key: str, path: Path, progress: Progress | None = None, consume: bool = False) -> None:
        counter = _Counter(progress)
        size = Path(path).stat().st_size
        try:
            self.s3.upload_file(str(path), self.bucket, self._key(key), Callback=counter, Config=self.transfer,
                                ExtraArgs={"ChecksumAlgorithm": "SHA256", "ContentType": "application/zstd"})
        except AWS_ERRORS as e:
            if is_expired(e):
                lifetime = format_duration(self.cfg.upload_credentials)
                raise AuthError(
                    f"the upload stopped after {format_size(counter.sent)} of {format_size(size)}: "
                    f"its temporary AWS credentials expired (they last {lifetime})",
                    hint="submit again, from a faster connection or with fewer files (.raiignore); "
                         "staff can raise store.upload_credentials",
                ) from None
            raise translate(e, f"uploading {key}", "S3") from None

    def get_file(self, key: str, path: Path, progress: Progress | None = None) -> None:
        try:
            self.s3.download_file(self.bucket, self._key(key), str(path), Callback=progress, Config=self.transfer)
        except AWS_ERRORS as e:
            Path(path).unlink(missing_ok=True)
            if error_code(e) in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"no stored object {key}") from None
            raise translate(e, f"downloading {key}", "S3") from None

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except AWS_ERRORS as e:
            if error_code(e) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise translate(e, f"looking up {key}", "S3") from None

    def delete(self, key: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        except AWS_ERRORS as e:
            raise translate(e, f"deleting {key}", "S3") from None

    def url(self, key: str) -> str:
        expiry = int(max(1, min(MAX_PRESIGN, self.cfg.url_expiry)))
        return self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self._key(key)},
                                              ExpiresIn=expiry)

    # --- operator side
    def lifecycle_rules(self) -> list[dict]:
        def days(seconds: float) -> int:
            return max(1, math.ceil(seconds / 86400))

        return [
            {"ID": "rai-uploads", "Status": "Enabled", "Filter": {"Prefix": "uploads/"},
             "Expiration": {"Days": days(self.cfg.uploads_retention)}},
            {"ID": "rai-outputs", "Status": "Enabled", "Filter": {"Prefix": "outputs/"},
             "Expiration": {"Days": days(self.cfg.outputs_retention)}},
            {"ID": "rai-unfinished-uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        ]

    def setup(self, create: bool = True) -> list[str]:
        """Make the bucket private, encrypted and self-cleaning (idempotent); returns what was done."""
        done = []
        try:
            try:
                self.s3.head_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError as e:
                if error_code(e) not in ("404", "NoSuchBucket", "NotFound") or not create:
                    raise
                region = self.s3.meta.region_name
                kwargs = {} if region == "us-east-1" else {
                    "CreateBucketConfiguration": {"LocationConstraint": region}}
                self.s3.create_bucket(Bucket=self.bucket, **kwargs)
                done.append(f"created bucket {self.bucket}")
            self.s3.put_public_access_block(Bucket=self.bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})
            done.append("public access blocked")
            self.s3.put_bucket_encryption(Bucket=self.bucket, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
            done.append("default encryption SSE-S3")
            rules = self.lifecycle_rules()
            self.s3.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                       LifecycleConfiguration={"Rules": rules})
            done.append(f"lifecycle: uploads/ kept {rules[0]['Expiration']['Days']} days, "
                        f"outputs/ {rules[1]['Expiration']['Days']} days, unfinished uploads 1 day")
        except AWS_ERRORS as e:
            raise translate(e, f"setting up the bucket {self.bucket}", "S3") from None
        return done
