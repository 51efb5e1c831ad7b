"""Mailgun through its official SDK (`mailgun`), against the local fake Mailgun server (tests/fixtures/fakes.py)."""

from __future__ import annotations

import logging

import pytest
import requests

from rai.backends.mail import Mail, MailError
from rai.backends.mailgun_mail import MailgunMailer
from rai.config import EmailConfig
from rai.errors import UserError


def mailer_for(fake, api_key=None, **kw) -> MailgunMailer:
    cfg = EmailConfig(provider="mailgun", domain=fake.domain, api_key=api_key or fake.api_key,
                      base_url=fake.base_url, sender="Staff <staff@example.edu>")
    waits: list[float] = []
    m = MailgunMailer(cfg, sleep=waits.append, **kw)
    m.waits = waits
    return m


MAIL = Mail("ada@example.edu", "Your account", "Hello Ada", [(".rai_profile", b"profile:\n  username: ada\n")])


def test_a_mail_reaches_the_messages_api(fake_mailgun):
    mailer_for(fake_mailgun).send(MAIL)
    [req] = fake_mailgun.requests
    assert req.path == f"/v3/{fake_mailgun.domain}/messages"
    assert req.auth == ("api", fake_mailgun.api_key)
    assert req.field("from") == "Staff <staff@example.edu>"
    assert req.field("to") == "ada@example.edu"
    assert req.field("subject") == "Your account" and req.field("text") == "Hello Ada"
    assert "html" not in req.form  # no empty HTML part
    assert req.files == [("attachment", ".rai_profile", "application/octet-stream", b"profile:\n  username: ada\n")]


def test_wrong_key_fails_at_once_without_leaking_it(fake_mailgun, caplog):
    bad_key = "key-WRONG-do-not-print-me"
    mailer = mailer_for(fake_mailgun, api_key=bad_key)
    with caplog.at_level(logging.DEBUG), pytest.raises(MailError) as e:
        mailer.send(MAIL)
    assert "401" in str(e.value) and "api_key" in str(e.value)
    assert len(fake_mailgun.requests) == 1 and mailer.waits == []  # not retried
    assert bad_key not in str(e.value) and bad_key not in caplog.text and bad_key not in repr(mailer)


@pytest.mark.parametrize("statuses", [(429,), (500,), (429, 503, 500)])
def test_rate_limits_and_server_errors_are_retried_with_backoff(fake_mailgun, caplog, statuses):
    fake_mailgun.fail_next(*statuses)
    mailer = mailer_for(fake_mailgun, backoff=0.5)
    with caplog.at_level(logging.DEBUG):
        mailer.send(MAIL)
    assert [r.status for r in fake_mailgun.requests] == [*statuses, 200]
    assert len(fake_mailgun.messages) == 1
    assert mailer.waits == [0.5 * 2**i for i in range(len(statuses))]  # exponential
    assert "retrying" in caplog.text and fake_mailgun.api_key not in caplog.text


def test_gives_up_after_the_last_attempt(fake_mailgun):
    fake_mailgun.fail_next(500, 500, 500)
    mailer = mailer_for(fake_mailgun, attempts=3)
    with pytest.raises(MailError, match=r"Mailgun failed \(500\); gave up after 3 attempts"):
        mailer.send(MAIL)
    assert len(fake_mailgun.requests) == 3 and fake_mailgun.messages == []


def test_a_refused_mail_says_why_and_is_not_retried(fake_mailgun):
    fake_mailgun.fail_next(400)
    mailer = mailer_for(fake_mailgun)
    with pytest.raises(MailError, match=r"refused the mail \(400\): scripted 400"):
        mailer.send(MAIL)
    assert len(fake_mailgun.requests) == 1


def test_unknown_domain(fake_mailgun):
    cfg = EmailConfig(provider="mailgun", domain="nope.example", api_key=fake_mailgun.api_key,
                      base_url=fake_mailgun.base_url)
    with pytest.raises(MailError, match="does not know the domain nope.example"):
        MailgunMailer(cfg, sleep=lambda s: None).send(MAIL)


def test_unreachable_server_is_retried_then_reported(fake_mailgun):
    url = fake_mailgun.base_url
    fake_mailgun.stop()
    cfg = EmailConfig(provider="mailgun", domain="d.example", api_key="key-secret-123", base_url=url)
    waits = []
    with pytest.raises(MailError, match="could not be reached") as e:
        MailgunMailer(cfg, attempts=2, timeout=2, sleep=waits.append).send(MAIL)
    assert len(waits) == 1 and "key-secret-123" not in str(e.value)


def test_missing_settings_are_a_user_error():
    with pytest.raises(UserError, match="email.domain and email.api_key"):
        MailgunMailer(EmailConfig(provider="mailgun", domain="d.example"))


def test_the_fake_speaks_urlencoded_too(fake_mailgun):
    r = requests.post(f"{fake_mailgun.base_url}/{fake_mailgun.domain}/messages", auth=("api", fake_mailgun.api_key),
                      data={"from": "a@example.edu", "to": "b@example.edu", "text": "x"}, timeout=5)
    assert r.status_code == 200 and r.json()["message"] == "Queued. Thank you."
    assert fake_mailgun.messages[0].field("to") == "b@example.edu"


@pytest.mark.parametrize("address", ["ada", "ada@example..edu", "ada@localhost", "two@@example.edu"])
def test_a_bad_address_is_refused_before_anything_is_sent(fake_mailgun, address):
    mailer = mailer_for(fake_mailgun)
    with pytest.raises(MailError, match="invalid email"):
        mailer.send(Mail(address, "Your account", "Hello"))
    assert fake_mailgun.requests == [] and mailer.waits == []


def test_a_rate_limit_then_success_is_one_mail(fake_mailgun):
    fake_mailgun.fail_next(429)
    mailer = mailer_for(fake_mailgun)
    mailer.send(MAIL)
    assert [r.status for r in fake_mailgun.requests] == [429, 200] and mailer.waits == [1.0]
