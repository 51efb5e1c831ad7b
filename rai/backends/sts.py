"""Short-lived, per-user AWS credentials for `rai submit` (STS), vended by raid over Redis.

The client holds no AWS keys. To upload, it asks for credentials with a request signed by its own
secret key, over the Redis it already uses for logs:

1. `rai` LPUSHes a `CredentialRequest` (request id, access key, username, time, HMAC signature) on
   `rai:sts:requests` and waits on `rai:sts:reply:<request id>`.
2. One raid node (each runs a `CredentialVendor` thread when `store.upload_role_arn` is set) pops it,
   checks it as it checks a job (known, unrevoked key of that user; valid signature; under 5 minutes
   old), and calls STS AssumeRole on the upload role with a session policy narrowing it to this user:
   PutObject under `uploads/<username>/`, GetObject under `outputs/<username>/`, and SendMessage on
   the deployment's SQS queues, for `store.upload_credentials` (default and STS minimum: 15 minutes).
3. The reply is sealed with AES-GCM under a key derived from the user's secret key (HKDF, the
   request id as salt and associated data), so anyone else reading Redis learns nothing usable;
   refusals travel in clear and say why. Replies expire after a minute.

raid nodes already hold AWS credentials and verify signatures, so no extra service is deployed; any
node can answer, and the request simply waits in the list while all are restarting.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
from datetime import datetime, timezone

import botocore.exceptions
import redis
from pydantic import Field

from rai.backends.auth import authenticate
from rai.backends.aws import AwsCredentials, make_client, translate
from rai.config import BrokerConfig, StoreConfig
from rai.crypto import seal_for, unseal_for
from rai.errors import AuthError, ServiceUnavailable, UserError
from rai.models import Message, utcnow
from rai.signing import sign

log = logging.getLogger("rai.sts")

REQUESTS = "rai:sts:requests"
REPLY = "rai:sts:reply:"
REPLY_TTL = 60  # seconds a reply waits for its client
MAX_REQUEST_AGE = 300.0
STS_MIN_DURATION = 900  # AssumeRole's shortest session
_INFO = b"rai upload credentials v1"


class CredentialRequest(Message):
    """What `rai` sends to get upload credentials; signed with the user's secret key."""

    request_id: str = Field(default_factory=lambda: secrets.token_hex(16))
    access_key: str
    username: str
    requested_at: datetime = Field(default_factory=utcnow)
    signature: str = ""

    def signing_payload(self) -> bytes:
        data = self.model_dump(mode="json", exclude={"signature"})
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def seal(secret_key: str, request_id: str, creds: AwsCredentials) -> str:
    plain = json.dumps({"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key,
                        "session_token": creds.session_token,
                        "expiration": creds.expiration.isoformat() if creds.expiration else None}).encode()
    return seal_for(secret_key, request_id, plain, _INFO)


def unseal(secret_key: str, request_id: str, box: str) -> AwsCredentials:
    plain = unseal_for(secret_key, request_id, box, _INFO)
    if plain is None:
        raise AuthError("the upload credentials could not be opened with your key",
                        hint="is your profile current? ask your course staff")
    data = json.loads(plain)
    exp = data.get("expiration")
    return AwsCredentials(data["access_key_id"], data["secret_access_key"], data.get("session_token"),
                          datetime.fromisoformat(exp) if exp else None)


def upload_policy(bucket: str, username: str, queue_prefix: str | None) -> dict:
    """The session policy: the upload role's rights, narrowed to this user's prefixes and the rai queues."""
    statements = [
        {"Sid": "UploadOwnProjects", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
         "Resource": f"arn:aws:s3:::{bucket}/uploads/{username}/*"},
        {"Sid": "ReadOwnOutputs", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": f"arn:aws:s3:::{bucket}/outputs/{username}/*"},
    ]
    if queue_prefix:
        statements.append({"Sid": "QueueJobs", "Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
                           "Resource": f"arn:aws:sqs:*:*:{queue_prefix}*"})
    return {"Version": "2012-10-17", "Statement": statements}


class CredentialVendor:
    """Answers CredentialRequests from Redis with scoped STS credentials; run by raid in a thread."""

    def __init__(self, r: redis.Redis, accounts, store: StoreConfig, broker: BrokerConfig, sts_client=None,
                 poll: float = 1):
        if not (store.upload_role_arn and store.bucket):
            raise UserError("vending upload credentials needs store.upload_role_arn and store.bucket")
        self.r = r
        self.accounts = accounts
        self.store = store
        self.broker = broker
        self.sts = sts_client or make_client("sts", region=store.region, endpoint_url=store.sts_endpoint_url,
                                             access_key_id=store.access_key_id,
                                             secret_access_key=store.secret_access_key)
        self.duration = max(STS_MIN_DURATION, math.ceil(store.upload_credentials))
        if store.upload_credentials < STS_MIN_DURATION:
            log.warning("store.upload_credentials %.0fs is below STS's minimum; vending %ds credentials",
                        store.upload_credentials, STS_MIN_DURATION)
        self.poll = poll  # seconds of each BLPOP: how soon `stop` takes effect (fractions need Redis 6)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve, name="sts-vendor", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop taking requests (the thread ends within one poll)."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=5)

    def serve(self) -> None:
        while not self._stop.is_set():
            try:
                popped = self.r.blpop([REQUESTS], timeout=self.poll)
            except redis.exceptions.RedisError as e:
                log.warning("reading credential requests failed: %s", e)
                self._stop.wait(2)
                continue
            if popped:
                try:
                    self.handle(popped[1])
                except redis.exceptions.RedisError as e:  # the reply could not be written; the client will say so
                    log.warning("answering a credential request failed: %s", e)

    def handle(self, raw: bytes | str) -> None:
        """Answer one request (never raises: a bad request gets a refusal, a failure gets an error reply)."""
        try:
            req = CredentialRequest.from_json(raw)
        except ValueError:
            log.warning("dropping a malformed credential request")
            return
        try:
            account = self._check(req)
            creds = self.assume(req.username)
            reply = {"ok": True, "box": seal(account.secret_key, req.request_id, creds)}
            log.info("vended upload credentials to %s until %s", req.username, creds.expiration)
        except UserError as e:
            reply = {"ok": False, "error": e.message}
            log.warning("credential request of %s refused: %s", req.username, e.message)
        except Exception as e:  # the client must hear something, whatever broke
            log.exception("vending credentials to %s failed", req.username)
            reply = {"ok": False, "error": f"the server could not issue credentials ({type(e).__name__})"}
        key = REPLY + req.request_id
        pipe = self.r.pipeline()
        pipe.rpush(key, json.dumps(reply))
        pipe.expire(key, REPLY_TTL)
        pipe.execute()

    def _check(self, req: CredentialRequest):
        account = authenticate(self.accounts, req, "request")
        age = (utcnow() - req.requested_at).total_seconds()
        if abs(age) > MAX_REQUEST_AGE:
            raise AuthError("the credential request is stale; check your computer's clock")
        return account

    def assume(self, username: str) -> AwsCredentials:
        prefix = self.broker.queue_prefix if self.broker.provider == "sqs" else None
        try:
            c = self.sts.assume_role(RoleArn=self.store.upload_role_arn, RoleSessionName=f"rai-{username}"[:64],
                                     DurationSeconds=self.duration,
                                     Policy=json.dumps(upload_policy(self.store.bucket, username, prefix)))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, "assuming the upload role", "STS") from e
        c = c["Credentials"]
        exp = c["Expiration"]
        if exp.tzinfo is None:
            exp = exp.replace(tzinfo=timezone.utc)
        return AwsCredentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], exp)


def request_upload_credentials(r: redis.Redis, access_key: str, username: str, secret_key: str,
                               timeout: float = 15.0) -> AwsCredentials:
    """Ask the raid nodes for upload credentials; raises a UserError saying why when none come."""
    req = CredentialRequest(access_key=access_key, username=username)
    sign(req, secret_key)
    key = REPLY + req.request_id
    try:
        r.lpush(REQUESTS, req.to_json())
        popped = r.blpop([key], timeout=max(1, math.ceil(timeout)))
    except redis.exceptions.RedisError as e:
        raise ServiceUnavailable(f"asking for upload credentials failed: Redis does not answer ({e})",
                                 hint="check pubsub.url in the config") from None
    if not popped:
        try:
            r.lrem(REQUESTS, 1, req.to_json())  # nobody took it: don't leave it for a node that starts later
        except redis.exceptions.RedisError:
            pass
        raise ServiceUnavailable(f"no rai server answered the request for upload credentials within {timeout:.0f}s",
                                 hint="no raid node may be running; try again later or ask your course staff")
    reply = json.loads(popped[1])
    if not reply.get("ok"):
        raise AuthError(f"upload credentials refused: {reply.get('error')}")
    return unseal(secret_key, req.request_id, reply["box"])
