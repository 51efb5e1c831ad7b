"""Secrets in configs and signed requests."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rai import crypto
from rai.domain.models import JobRequest
from rai.domain.signing import sign, verify
from rai.errors import UserError


def test_encrypt_round_trips_any_length_and_differs_each_time():
    secret = "s" * 100  # the original crashed past 32 bytes
    a, b = crypto.encrypt("app-secret", secret), crypto.encrypt("app-secret", secret)
    assert a.startswith(crypto.PREFIX) and a != b
    assert crypto.decrypt("app-secret", a) == secret


def test_wrong_secret_or_tampering_is_refused():
    value = crypto.encrypt("app-secret", "hunter2")
    with pytest.raises(UserError, match="could not be decrypted"):
        crypto.decrypt("other-secret", value)
    tampered = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    with pytest.raises(UserError):
        crypto.decrypt("app-secret", tampered)


def test_rai_crypto_command_line_round_trip():
    enc = subprocess.run([sys.executable, "-m", "rai.admin.crypto_cli", "encrypt", "-s", "k", "pw"],
                         capture_output=True, text=True, check=True).stdout.strip()
    dec = subprocess.run([sys.executable, "-m", "rai.admin.crypto_cli", "decrypt", "-s", "k", enc],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert dec == "pw"
    bad = subprocess.run([sys.executable, "-m", "rai.admin.crypto_cli", "decrypt", "-s", "wrong", enc],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "could not be decrypted" in bad.stderr and "Traceback" not in bad.stderr


def _request(**kw) -> JobRequest:
    base = dict(job_id="j1", access_key="AK1", username="ada", queue="rai_amd64", spec={"rai": {"image": "x"}},
                upload_key="uploads/ada/j1.tar.zst", upload_sha256="00")
    base.update(kw)
    return JobRequest(**base)


def test_a_signed_request_verifies_and_any_change_breaks_it():
    req = _request()
    sign(req, "secret")
    assert verify(req, "secret")
    assert not verify(req, "other")
    forged = req.model_copy(update={"spec": {"rai": {"image": "evil"}}})
    assert not verify(forged, "secret")
    roundtrip = JobRequest.from_json(req.to_json())
    assert verify(roundtrip, "secret")


def test_unsigned_request_does_not_verify():
    assert not verify(_request(), "secret")
