"""Job ids: sortable by when they were made, unguessable by anyone else (the standard library only, so that
`rai submit` names its job before the job models load)."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

JOB_ID = r"^[0-9]{14}-[0-9a-f]{12}$"  # what new_job_id makes: UTC time to the second, 48 random bits


def new_job_id() -> str:
    """A sortable, unguessable job id: time prefix for ordering, random suffix for secrecy."""
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(6)
