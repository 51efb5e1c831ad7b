"""Requests signed with the submitter's secret key (HMAC-SHA256 over canonical JSON)."""

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
