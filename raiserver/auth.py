"""Who sent a request: the signature of `rai.domain.signing`, a fresh timestamp, a nonce never seen before, a
known and unrevoked key. Every refusal is a 401 that says why, the same for every endpoint."""

from __future__ import annotations

import hashlib
import time

import redis
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from rai.backends import Backends
from rai.domain.models import Account
from rai.domain.signing import CONTENT_HEADER, UNSIGNED_PAYLOAD, parse_authorization, verify_request_signature
from rai.live.redis_keys import KEYS
from raiserver.problems import Refusal


class Authenticator:
    def __init__(self, backends: Backends, window: float):
        self.b = backends
        self.window = window

    async def __call__(self, request: Request, streamed_body: bool = False) -> Account:
        fields = parse_authorization(request.headers.get("authorization"))
        if fields is None:
            raise Refusal(401, "this request is not signed", hint="use the rai client with your .rai_profile")
        digest = request.headers.get(CONTENT_HEADER, "")
        if streamed_body:
            if digest != UNSIGNED_PAYLOAD and len(digest) != 64:
                raise Refusal(401, f"the {CONTENT_HEADER} header is missing")
        else:
            body = await request.body()
            if hashlib.sha256(body).hexdigest() != digest:
                raise Refusal(401, "the request body does not match its signed digest (was it changed on the way?)")
        try:
            ts = int(fields["ts"])
        except ValueError:
            raise Refusal(401, "the request's timestamp is not a number") from None
        off = time.time() - ts
        if abs(off) > self.window:
            when = "old" if off > 0 else "ahead of the server's clock"
            raise Refusal(401, f"the request is {abs(off):.0f}s {when}",
                          hint="check your computer's clock (it must be within 5 minutes of the server's)")
        account = await run_in_threadpool(self._check, fields, request.method, request.url.path,
                                          request.query_params.multi_items(), digest)
        return account

    def _check(self, fields: dict[str, str], method: str, path: str, query: list[tuple[str, str]],
               digest: str) -> Account:
        account = self.b.accounts.by_access_key(fields["key"])
        if account is None:
            raise Refusal(401, "the access key is unknown", hint="ask your course staff for a new profile")
        if account.revoked:
            raise Refusal(401, "this key has been revoked", hint="ask your course staff for a new profile")
        if not verify_request_signature(account.secret_key, fields, method, path, query, digest):
            raise Refusal(401, "the request's signature does not match your key",
                          hint="is your profile current? a rotated key is refused at once; ask your course staff")
        nonce = fields["nonce"]
        if not (8 <= len(nonce) <= 64) or not nonce.isalnum():
            raise Refusal(401, "the request's nonce is malformed")
        try:
            fresh = self.b.redis.set(KEYS.nonce(account.access_key, nonce), 1, nx=True,
                                     ex=int(2 * self.window) + 1)
        except redis.exceptions.RedisError:
            raise Refusal(503, "the server cannot check the request right now", hint="try again in a minute") from None
        if not fresh:
            raise Refusal(401, "this request was already received once (a replay)", hint="send it again with rai")
        return account
