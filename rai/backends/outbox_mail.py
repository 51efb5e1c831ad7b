"""The embedded mailer: each mail becomes an RFC 5322 `.eml` file in an outbox folder.

Nothing leaves the machine; an operator forwards the files, or a test reads them back with the
`email` package. The files carry secrets (the profile attachment), so the folder is 0700 and each
file 0600, and a file appears whole or not at all (written aside, then renamed).
"""

from __future__ import annotations

import mimetypes
import os
import re
import secrets
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from rai.backends.mail import Mail, MailError, check_recipient
from rai.domain.models import utcnow


def build_message(mail: Mail, sender: str) -> EmailMessage:
    """The mail as an RFC 5322 message: a text part, then each attachment as its exact bytes."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip("> ") or "localhost")
    msg.set_content(mail.text)
    for filename, content in mail.attachments:
        maintype, subtype = content_type(filename).split("/", 1)
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def content_type(filename: str) -> str:
    # A profile (.rai_profile) is unknown to mimetypes: octet-stream makes mail clients save it as a file.
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class OutboxMailer:
    """Writes `<time>-<recipient>-<random>.eml` files into `folder`."""

    def __init__(self, folder: str | os.PathLike, sender: str = "rai <rai@localhost>"):
        self.folder = Path(folder).expanduser()
        self.sender = sender

    def send(self, mail: Mail) -> None:
        check_recipient(mail)
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = build_message(mail, self.sender).as_bytes()
            local = re.sub(r"[^A-Za-z0-9._-]+", "_", mail.to.split("@", 1)[0])[:40] or "mail"
            name = f"{utcnow():%Y%m%dT%H%M%S}-{local}-{secrets.token_hex(4)}.eml"
            final = self.folder / name
            tmp = self.folder / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        except OSError as e:
            raise MailError(f"cannot write to the outbox {self.folder}: {e.strerror or e}") from None
        except (ValueError, TypeError) as e:  # e.g. a header the email package refuses
            raise MailError(f"cannot build the mail to {mail.to}: {e}") from None

    def __repr__(self) -> str:
        return f"OutboxMailer({str(self.folder)!r})"
