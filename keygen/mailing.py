"""Credentials by mail: the template, the mail with its `.rai_profile` attachment, and one sending run.

The template is a text file whose first line is `Subject: ...`, then a blank line, then the body;
`$name` placeholders are filled from the account (see `PLACEHOLDERS`). The default ships in
`keygen/templates/credentials.txt`; `email.template` in the config names a replacement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from rai.backends.auth import Accounts
from rai.backends.mail import Mail, Mailer, MailError
from rai.client.profile import Profile
from rai.config import Config
from rai.domain.models import Account, utcnow
from rai.errors import UserError

PROFILE_NAME = ".rai_profile"
PLACEHOLDERS = ("app", "username", "firstname", "lastname", "email", "team", "role", "affiliation",
                "access_key", "client_install", "profile_name")


@dataclass
class CredentialsTemplate:
    subject: str
    body: str
    source: str

    @classmethod
    def parse(cls, text: str, source: str) -> CredentialsTemplate:
        head, sep, body = text.partition("\n")
        if not head.lower().startswith("subject:") or not sep:
            raise UserError(f"mail template {source} must start with a `Subject: ...` line, then a blank line")
        template = cls(head.split(":", 1)[1].strip(), body.lstrip("\n"), source)
        template.render(_SAMPLE)  # unknown placeholders are reported now, not at the first student
        return template

    def render(self, values: dict[str, str]) -> tuple[str, str]:
        try:
            return Template(self.subject).substitute(values), Template(self.body).substitute(values)
        except KeyError as e:
            raise UserError(f"mail template {self.source} uses the unknown placeholder ${e.args[0]}",
                            hint="known: " + ", ".join("$" + p for p in PLACEHOLDERS)) from None
        except ValueError as e:
            raise UserError(f"mail template {self.source}: {e} (write $$ for a literal $)") from None


_SAMPLE = dict.fromkeys(PLACEHOLDERS, "x")


def load_template(path: str | None = None) -> CredentialsTemplate:
    """The operator's template at `path`, or the default one."""
    if path is None:
        text = resources.files("keygen.templates").joinpath("credentials.txt").read_text(encoding="utf-8")
        return CredentialsTemplate.parse(text, "(default)")
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read the mail template {p}: {e.strerror or e}", hint="check email.template") from None
    except UnicodeDecodeError:
        raise UserError(f"the mail template {p} is not UTF-8 text") from None
    return CredentialsTemplate.parse(text, str(p))


def credentials_mail(account: Account, template: CredentialsTemplate, config: Config) -> Mail:
    """The mail that brings `account` its profile, ready to save as ~/.rai_profile."""
    profile = Profile.from_account(account)
    values = {
        "app": config.app.name,
        "username": account.username,
        "firstname": account.firstname or account.username,
        "lastname": account.lastname,
        "email": account.email,
        "team": account.team or "-",
        "role": account.role,
        "affiliation": account.affiliation,
        "access_key": account.access_key,
        "client_install": config.email.client_url,
        "profile_name": PROFILE_NAME,
    }
    subject, text = template.render(values)
    return Mail(to=account.email, subject=subject, text=text,
                attachments=[(PROFILE_NAME, profile.to_yaml().encode())])


@dataclass
class SendOutcome:
    username: str
    email: str
    status: str  # sent | failed | skipped | would send
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("sent", "would send")


@dataclass
class CredentialsRun:
    """One run of mailing credentials: never mails an address twice, records each send on the account."""

    accounts: Accounts
    mailer: Mailer
    template: CredentialsTemplate
    config: Config
    dry_run: bool = False
    mailed: set[str] = field(default_factory=set)
    give_up_after: int = 3  # failures in a row: the mailer itself is down, stop trying the rest of the class
    failures_in_a_row: int = 0
    last_error: str = ""

    @classmethod
    def from_backends(cls, backends, dry_run: bool = False) -> CredentialsRun:
        template = load_template(backends.config.email.template)
        mailer = backends.mailer  # opened in a dry run too: a misconfigured mailer shows before the real run
        return cls(backends.accounts, mailer, template, backends.config, dry_run=dry_run)

    def send(self, account: Account) -> SendOutcome:
        key = account.email.lower()
        if key in self.mailed:
            return SendOutcome(account.username, account.email, "skipped", "already mailed in this run")
        if account.revoked:
            return SendOutcome(account.username, account.email, "skipped",
                               "the account is revoked (rotate it first to issue working credentials)")
        mail = credentials_mail(account, self.template, self.config)
        self.mailed.add(key)
        if self.dry_run:
            return SendOutcome(account.username, account.email, "would send")
        if self.failures_in_a_row >= self.give_up_after:
            return SendOutcome(account.username, account.email, "failed",
                               f"not tried: the last {self.failures_in_a_row} mails failed ({self.last_error})")
        try:
            self.mailer.send(mail)
        except MailError as e:
            self.failures_in_a_row += 1
            self.last_error = str(e)
            return SendOutcome(account.username, account.email, "failed", str(e))
        self.failures_in_a_row = 0
        # Re-read: the account may have been revoked or rotated while the mail was going out.
        fresh = self.accounts.get(account.username)
        if fresh is not None and fresh.secret_key == account.secret_key:
            fresh.credentials_sent_at = utcnow()
            self.accounts.update(fresh)
            account.credentials_sent_at = fresh.credentials_sent_at
        return SendOutcome(account.username, account.email, "sent")
