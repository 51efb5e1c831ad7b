"""What the JSON messages of rai/domain/models.py are on the wire, without pydantic: their schema version, a
UTC time as pydantic writes one, the canonical JSON a signature is made over, and the job request `rai submit`
sends, built field by field so that a submit of a checked spec loads no pydantic at all (rai/client/spec_cache.py).

tests/test_wire.py holds `job_request_json` to what JobRequest(...).to_json() writes: the same fields, the
same values once read back, a signature the model verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

SCHEMA_VERSION = 1


def canonical_json(fields: Mapping[str, Any]) -> bytes:
    """The bytes a signature is made over: the fields' JSON, keys sorted, no spaces."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def signature(fields: Mapping[str, Any], secret_key: str) -> str:
    """HMAC-SHA256 with the user's secret key over `fields` (every field of a message but its signature)."""
    return hmac.new(secret_key.encode(), canonical_json(fields), hashlib.sha256).hexdigest()


def utc_text(moment: datetime) -> str:
    """A UTC time as pydantic's JSON writes it: `2026-12-03T10:57:59.043937Z`, no fraction when it is whole."""
    moment = moment.astimezone(timezone.utc)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def job_request_json(*, job_id: str, access_key: str, username: str, team: str | None, queue: str,
                     spec: Mapping[str, Any], upload_key: str, upload_sha256: str, upload_size: int,
                     submission: str | None, client_version: str, secret_key: str,
                     submitted_at: datetime | None = None) -> bytes:
    """A JobRequest, signed with `secret_key`, as the JSON its model writes (every field, in its order)."""
    fields: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "job_id": job_id,
        "access_key": access_key,
        "username": username,
        "team": team,
        "queue": queue,
        "spec": dict(spec),
        "upload_key": upload_key,
        "upload_sha256": upload_sha256,
        "upload_size": upload_size,
        "submission": submission,
        "submitted_at": utc_text(submitted_at or datetime.now(timezone.utc)),
        "client_version": client_version,
    }
    fields["signature"] = signature(fields, secret_key)
    return json.dumps(fields, separators=(",", ":")).encode()
