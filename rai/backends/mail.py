"""Mail port: credentials to students.

Embedded backend: `.eml` files in an outbox folder (`OutboxMailer`). Production: Mailgun
(`rai.backends.mailgun_mail.MailgunMailer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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
