"""A class roster (CSV) into accounts: per-row validation with line numbers, idempotent import.

Columns, by header name: lastname, firstname, username, email, role, affiliation, team (the original
RAI's order; role, affiliation and team may be missing or empty, role then means student).
A second import of the same roster creates nothing and mails nothing unless asked to resend.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from keygen.accounts import check_email, check_role, check_username, create_account, normalize_username
from keygen.mailing import CredentialsRun
from rai.backends.auth import Accounts
from rai.domain.models import Account
from rai.errors import UserError

COLUMNS = ("lastname", "firstname", "username", "email", "role", "affiliation", "team")
REQUIRED = ("lastname", "firstname", "username", "email")


@dataclass
class RosterRow:
    line: int
    lastname: str
    firstname: str
    username: str
    email: str
    role: str
    affiliation: str = ""
    team: str | None = None


@dataclass
class RosterProblem:
    line: int
    username: str
    message: str


@dataclass
class Roster:
    source: str
    rows: list[RosterRow] = field(default_factory=list)
    problems: list[RosterProblem] = field(default_factory=list)


def parse_roster(text: str, roles: list[str], source: str = "roster") -> Roster:
    """Valid rows and, for each bad one, its line number and what is wrong with it."""
    roster = Roster(source)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header: list[str] | None = None
    seen_users: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    raise UserError(
                        f"{source}: the header (line {line}) lacks the column(s) {', '.join(missing)}",
                        hint="the first row must name the columns: " + ",".join(COLUMNS),
                    )
                continue
            row, problem = _row(cells, header, line, roles)
            if row is not None and problem is None:
                first = seen_users.get(row.username)
                if first is not None:
                    problem = f"duplicate username {row.username} (first on line {first})"
                elif row.email.lower() in seen_emails:
                    problem = f"duplicate email {row.email} (first on line {seen_emails[row.email.lower()]})"
            if row is None or problem is not None:
                roster.problems.append(RosterProblem(line, row.username if row else "", problem or "unreadable row"))
                continue
            seen_users[row.username] = line
            seen_emails[row.email.lower()] = line
            roster.rows.append(row)
    except csv.Error as e:
        raise UserError(f"{source}: line {reader.line_num} is not valid CSV: {e}") from None
    if header is None:
        raise UserError(f"{source} is empty", hint="the first row must name the columns: " + ",".join(COLUMNS))
    return roster


def _row(cells: list[str], header: list[str], line: int, roles: list[str]) -> tuple[RosterRow | None, str | None]:
    if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
        return None, f"{len(cells)} columns where the header has {len(header)}"
    values = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
    row = RosterRow(
        line=line, lastname=values.get("lastname", ""), firstname=values.get("firstname", ""),
        username=normalize_username(values.get("username", "")), email=values.get("email", ""),
        role=(values.get("role") or "student").lower(), affiliation=values.get("affiliation", ""),
        team=values.get("team") or None,
    )
    if not row.username:
        return row, "the username is empty"
    if not row.email:
        return row, "the email is empty"
    return row, check_username(row.username) or check_email(row.email) or check_role(row.role, roles)


def read_roster(path: str | Path, roles: list[str]) -> Roster:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no roster at {p}") from None
    except IsADirectoryError:
        raise UserError(f"{p} is a folder, not a roster CSV") from None
    except OSError as e:
        raise UserError(f"cannot read the roster {p}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise UserError(f"the roster {p} is not UTF-8 text", hint="export the CSV as UTF-8") from None
    return parse_roster(text, roles, str(p))


@dataclass
class RowOutcome:
    line: int
    username: str
    email: str
    account: str  # created | existing | skipped (| would create, in a dry run)
    mail: str = ""  # sent | failed | skipped | would send | "" (not asked)
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.account == "skipped" or self.mail == "failed"


@dataclass
class ImportReport:
    source: str
    dry_run: bool
    outcomes: list[RowOutcome] = field(default_factory=list)

    def count(self, what: str) -> int:
        if what in ("created", "existing", "skipped"):
            names = {"created": ("created", "would create")}.get(what, (what,))
            return sum(o.account in names for o in self.outcomes)
        names = {"sent": ("sent", "would send")}.get(what, (what,))
        return sum(o.mail in names for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return not any(o.failed for o in self.outcomes)

    def summary(self) -> dict[str, int]:
        return {k: self.count(k) for k in ("created", "existing", "skipped", "sent", "failed")}


def import_roster(roster: Roster, accounts: Accounts, roles: list[str], mailing: CredentialsRun | None = None,
                  *, resend: bool = False, dry_run: bool = False,
                  on_row: Callable[[int, int, RowOutcome], None] | None = None) -> ImportReport:
    """Create the accounts that do not exist; mail new ones (and, with `resend`, existing ones whose
    current credentials were never mailed) when `mailing` is given. Nothing is written in a dry run.
    `on_row(done, total, outcome)` follows the progress.
    """
    report = ImportReport(roster.source, dry_run)
    total = len(roster.problems) + len(roster.rows)
    done = 0

    def record(outcome: RowOutcome) -> None:
        nonlocal done
        done += 1
        report.outcomes.append(outcome)
        if on_row is not None:
            on_row(done, total, outcome)

    for p in roster.problems:
        record(RowOutcome(p.line, p.username, "", "skipped", message=p.message))
    for row in roster.rows:
        out, account = _import_row(row, accounts, roles, dry_run)
        if mailing is not None and account is not None and out.account != "skipped":
            if out.account in ("created", "would create") or (resend and account.credentials_sent_at is None):
                sent = mailing.send(account)
                out.mail = sent.status
                out.message = _join(out.message, sent.message)
            elif resend and account.credentials_sent_at is not None:
                out.message = _join(out.message, "credentials already mailed")
        record(out)
    report.outcomes.sort(key=lambda o: o.line)
    return report


def _import_row(row: RosterRow, accounts: Accounts, roles: list[str],
                dry_run: bool) -> tuple[RowOutcome, Account | None]:
    existing = accounts.get(row.username)
    if existing is not None:
        note = "" if existing.email.lower() == row.email.lower() else f"kept its email {existing.email}"
        return RowOutcome(row.line, row.username, existing.email, "existing", message=note), existing
    owner = accounts.by_email(row.email)
    if owner is not None:
        return RowOutcome(row.line, row.username, row.email, "skipped",
                          message=f"the email {row.email} belongs to the account {owner.username}"
                          ), None
    if dry_run:
        preview = Account(username=row.username, email=row.email, firstname=row.firstname, lastname=row.lastname,
                          team=row.team, role=row.role, affiliation=row.affiliation, access_key="(new)",
                          secret_key="(new)")
        return RowOutcome(row.line, row.username, row.email, "would create"), preview
    try:
        account = create_account(accounts, roles, row.username, row.email, team=row.team, role=row.role,
                                 firstname=row.firstname, lastname=row.lastname, affiliation=row.affiliation)
    except UserError as e:  # e.g. created by someone else a moment ago
        return RowOutcome(row.line, row.username, row.email, "skipped", message=e.message), None
    return RowOutcome(row.line, row.username, row.email, "created"), account


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
