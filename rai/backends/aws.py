"""boto3 clients for the SQS, S3 and STS backends, and AWS errors turned into messages that say what to do.

Credentials come, in order, from: short-lived ones handed in (a client's vended upload credentials),
the keys in the config section, or boto3's usual chain (environment, ~/.aws, instance profile).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import boto3
import botocore.config
import botocore.exceptions

from rai.errors import AuthError, NotFound, ServiceUnavailable, UserError

DEFAULT_REGION = "us-east-1"
EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                "InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure",
                "403", "Forbidden"}  # HeadObject's bare status: denied, or missing without s3:ListBucket


_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


@dataclass(frozen=True)
class AwsCredentials:
    """Temporary AWS credentials (STS); `expiration` is when AWS stops accepting them."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expiration: datetime | None = None


def make_client(service: str, *, region: str | None, endpoint_url: str | None, access_key_id: str | None,
                secret_access_key: str | None, credentials: AwsCredentials | None = None, **config):
    """A boto3 client; `credentials` (vended) win over the config's keys, which win over boto3's chain."""
    kwargs: dict = {"region_name": region or DEFAULT_REGION}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if credentials is not None:
        kwargs.update(aws_access_key_id=credentials.access_key_id,
                      aws_secret_access_key=credentials.secret_access_key,
                      aws_session_token=credentials.session_token)
    elif access_key_id and secret_access_key:
        kwargs.update(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
    cfg = botocore.config.Config(retries={"max_attempts": 5, "mode": "standard"}, **config)
    global _session
    with _session_lock:  # one session loads the service models once; sessions are not thread-safe
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(service, config=cfg, **kwargs)


def error_code(e: BaseException | None) -> str:
    """The AWS error code of `e`, or of the ClientError it wraps (boto3's transfer errors do)."""
    while e is not None:
        if isinstance(e, botocore.exceptions.ClientError):
            return str(e.response.get("Error", {}).get("Code", ""))
        e = e.__cause__ or e.__context__
    return ""


def is_expired(e: BaseException) -> bool:
    """True when AWS refused the request because temporary credentials expired."""
    return error_code(e) in EXPIRED_CODES or "ExpiredToken" in str(e)


def translate(e: Exception, what: str, service: str) -> UserError:
    """A UserError for an AWS failure while doing `what` (e.g. "uploading the project")."""
    if is_expired(e):
        return AuthError(f"{what} failed: the temporary AWS credentials expired",
                         hint="run the command again; it asks for fresh credentials")
    if isinstance(e, botocore.exceptions.NoCredentialsError):
        return ServiceUnavailable(f"{what} failed: no AWS credentials found for {service}",
                                  hint="set access_key_id/secret_access_key in the config section, "
                                       "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance profile")
    if isinstance(e, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                      botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError)):
        return ServiceUnavailable(f"{what} failed: {service} does not answer ({e})",
                                  hint="check the network and endpoint_url/region in the config")
    code = error_code(e)
    if code in DENIED_CODES:
        return AuthError(f"{what} failed: AWS refused it ({code})",
                         hint="the credentials lack a permission; see docs/deploy.md for the IAM policies")
    if code in ("NoSuchBucket", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
        return NotFound(f"{what} failed: {code}", hint="create it with `rai-aws setup` (see docs/deploy.md)")
    return ServiceUnavailable(f"{what} failed: {e}")
