"""Everything a user signs with their secret key (HMAC-SHA256): job and cancel requests (canonical JSON),
and every HTTP request to rai-server (method, path, query, body digest, time, nonce)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol


class Signable(Protocol):
    signature: str

    def signing_payload(self) -> bytes: ...


def sign(message: Signable, secret_key: str) -> None:
    message.signature = hmac.new(secret_key.encode(), message.signing_payload(), hashlib.sha256).hexdigest()


def verify(message: Signable, secret_key: str) -> bool:
    expected = hmac.new(secret_key.encode(), message.signing_payload(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, message.signature or "")


# --- HTTP requests to rai-server ---------------------------------------------------------------
# Every request carries `Authorization: RAI-HMAC-SHA256 key=<access key>, ts=<unix s>, nonce=<hex>, sig=<hex>`
# and `X-Rai-Content-SHA256: <hex digest of the body>`; the signature is an HMAC-SHA256 with the user's
# secret key over the canonical request below. A streamed upload, whose digest is not known before it
# is sent, says UNSIGNED-PAYLOAD there; its digest is pinned by the signed job request that follows it.

SCHEME = "RAI-HMAC-SHA256"
CONTENT_HEADER = "X-Rai-Content-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def canonical_query(params: list[tuple[str, str]]) -> str:
    from urllib.parse import quote

    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params))


def canonical_request(method: str, path: str, query: list[tuple[str, str]], content_sha256: str, ts: str,
                      nonce: str) -> bytes:
    return "\n".join([SCHEME, method.upper(), path, canonical_query(query), content_sha256, ts, nonce]).encode()


def request_signature(secret_key: str, method: str, path: str, query: list[tuple[str, str]], content_sha256: str,
                      ts: str, nonce: str) -> str:
    payload = canonical_request(method, path, query, content_sha256, ts, nonce)
    return hmac.new(secret_key.encode(), payload, hashlib.sha256).hexdigest()


def authorization_headers(access_key: str, secret_key: str, method: str, path: str,
                          query: list[tuple[str, str]], content_sha256: str = EMPTY_SHA256,
                          now: float | None = None) -> dict[str, str]:
    """The headers that sign one request."""
    import secrets
    import time

    ts = str(int(now if now is not None else time.time()))
    nonce = secrets.token_hex(16)
    sig = request_signature(secret_key, method, path, query, content_sha256, ts, nonce)
    return {"Authorization": f"{SCHEME} key={access_key}, ts={ts}, nonce={nonce}, sig={sig}",
            CONTENT_HEADER: content_sha256}


def parse_authorization(header: str | None) -> dict[str, str] | None:
    """The fields of an `Authorization` header in this scheme; None when it is not one."""
    if not header or not header.startswith(SCHEME + " "):
        return None
    fields = {}
    for part in header[len(SCHEME) + 1:].split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name] = value
    return fields if {"key", "ts", "nonce", "sig"} <= fields.keys() else None


def verify_request_signature(secret_key: str, fields: dict[str, str], method: str, path: str,
                             query: list[tuple[str, str]], content_sha256: str) -> bool:
    expected = request_signature(secret_key, method, path, query, content_sha256, fields["ts"], fields["nonce"])
    return hmac.compare_digest(expected, fields["sig"])
