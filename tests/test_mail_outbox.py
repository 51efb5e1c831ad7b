"""The embedded mailer: .eml files a mail client (and the email package) can read back."""

from __future__ import annotations

import email
import os
import stat
from email import policy

import pytest
import yaml

from keygen.mailing import credentials_mail, load_template
from rai.backends.mail import Mail, MailError
from rai.backends.outbox_mail import OutboxMailer
from rai.config import Config
from rai.domain.models import Account


def ada() -> Account:
    return Account(username="ada", email="ada@example.edu", firstname="Ada", lastname="Lovelace", team="t1",
                   access_key="AKTEST", secret_key="s3cr3t-value")


def read(path):
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def test_eml_is_parsable_and_carries_the_profile(tmp_path):
    mailer = OutboxMailer(tmp_path / "outbox", sender="Course staff <staff@example.edu>")
    mailer.send(credentials_mail(ada(), load_template(), Config()))
    [path] = list((tmp_path / "outbox").iterdir())
    assert path.suffix == ".eml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds a secret key
    assert stat.S_IMODE((tmp_path / "outbox").stat().st_mode) == 0o700
    msg = read(path)
    assert msg["To"] == "ada@example.edu"
    assert msg["From"] == "Course staff <staff@example.edu>"
    assert msg["Subject"] == "Your rai account: ada"
    body = msg.get_body(("plain",)).get_content()
    assert "Hello Ada" in body and "pip install rai" in body and "chmod 600 ~/.rai_profile" in body
    assert "rai submit" in body
    assert "s3cr3t-value" not in body  # the secret travels in the attachment only
    [att] = list(msg.iter_attachments())
    assert att.get_filename() == ".rai_profile"
    profile = yaml.safe_load(att.get_content())["profile"]
    assert profile["username"] == "ada" and profile["access_key"] == "AKTEST"
    assert profile["secret_key"] == "s3cr3t-value"
    assert profile["team"] == {"name": "t1"}


def test_attachment_bytes_are_kept_exactly(tmp_path):
    content = bytes(range(256)) * 3
    OutboxMailer(tmp_path).send(Mail("x@example.edu", "s", "t", [("blob.bin", content), ("notes.txt", b"hi\n")]))
    [path] = list(tmp_path.glob("*.eml"))
    atts = {a.get_filename(): a.get_payload(decode=True) for a in read(path).iter_attachments()}
    assert atts == {"blob.bin": content, "notes.txt": b"hi\n"}


def test_no_partial_files_are_left(tmp_path):
    mailer = OutboxMailer(tmp_path)
    for i in range(5):
        mailer.send(Mail(f"u{i}@example.edu", "s", "t"))
    names = os.listdir(tmp_path)
    assert len(names) == 5 and all(n.endswith(".eml") and not n.startswith(".") for n in names)


def test_unwritable_outbox_is_a_mail_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MailError, match="cannot write to the outbox"):
        OutboxMailer(blocker / "outbox").send(Mail("x@example.edu", "s", "t"))


def test_a_bad_address_writes_no_mail(tmp_path):
    outbox = tmp_path / "outbox"
    with pytest.raises(MailError, match="invalid email 'ada@example..edu'"):
        OutboxMailer(outbox).send(Mail("ada@example..edu", "Your account", "Hello"))
    assert not outbox.exists() or list(outbox.iterdir()) == []
