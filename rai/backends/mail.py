"""Mail port: credentials to students.

Embedded backend: `.eml` files in an outbox folder (`OutboxMailer`). Production: Mailgun
(`rai.backends.mailgun_mail.MailgunMailer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from email_validator import EmailNotValidError, validate_email


@dataclass
class Mail:
    to: str
    subject: str
    text: str
    attachments: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, content)


class Mailer(Protocol):
    def send(self, mail: Mail) -> None:
        """Send one mail; raises MailError with the reason when it could not be sent."""


class MailError(Exception):
    pass


def address_problem(address: str) -> str | None:
    """Why `address` cannot receive mail (email-validator's syntax and domain-name rules), or None.

    The domain's DNS is not asked: a roster is checked offline, and Mailgun reports bounces itself."""
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as e:
        return f"invalid email {address!r}: {e}"
    return None


def check_recipient(mail: Mail) -> None:
    """Raises MailError before anything is sent when the mail's address is not one."""
    problem = address_problem(mail.to)
    if problem:
        raise MailError(problem)
