"""The console's account work, without any widget: the same `keygen` calls as `rai-keygen`, each one
blocking (the accounts backend may be a remote API, the mailer a remote service), so call them from
worker threads. Each action returns what happened in words, or raises with a message for the operator.
`ConsoleData.accounts` is the one the views use."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from keygen import accounts as lifecycle
from keygen.mailing import CredentialsRun
from keygen.roster import ImportReport, RowOutcome, import_roster, read_roster
from rai.domain.models import Account


class AccountDesk:
    def __init__(self, backends: Any) -> None:
        self.b = backends

    def list(self) -> builtins.list[Account]:
        return self.b.accounts.list()

    def roles(self) -> builtins.list[str]:
        return list(self.b.config.roles)

    def create(self, fields: dict[str, Any], send: bool) -> str:
        """A new account from the form's fields; with `send`, its credentials mailed (a bad mail setup
        stops us before creating)."""
        mailing = CredentialsRun.from_backends(self.b) if send else None
        account = lifecycle.create_account(self.b.accounts, self.roles(), **fields)
        message = f"created {account.username} ({account.role})"
        if mailing is not None:
            outcome = mailing.send(account)
            message += f"; credentials {outcome.status}" + (f": {outcome.message}" if outcome.message else "")
        return message

    def revoke(self, username: str) -> str:
        return f"revoked {lifecycle.revoke(self.b.accounts, username).username}"

    def rotate(self, username: str) -> str:
        mailing = CredentialsRun.from_backends(self.b)
        account = lifecycle.rotate(self.b.accounts, username)
        outcome = mailing.send(account)
        return f"rotated {username}; new credentials {outcome.status}" + (
            f": {outcome.message}" if outcome.message else "")

    def send(self, username: str) -> str:
        outcome = CredentialsRun.from_backends(self.b).send(lifecycle.require(self.b.accounts, username))
        if outcome.status == "failed":
            raise RuntimeError(f"credentials to {username} not sent: {outcome.message}")
        return f"credentials {outcome.status}: {username} <{outcome.email}>" + (
            f" ({outcome.message})" if outcome.message else "")

    def delete(self, username: str) -> str:
        return f"deleted {lifecycle.delete(self.b.accounts, username).username}"

    def import_roster(self, path: str, send: bool, resend: bool, dry_run: bool,
                      started: Callable[[int], None],
                      on_row: Callable[[int, int, RowOutcome], None]) -> ImportReport:
        """`rai-keygen import` of the roster at `path`; `started(rows)` once it is read, `on_row` per row."""
        roles = self.roles()
        roster = read_roster(path, roles)
        mailing = CredentialsRun.from_backends(self.b, dry_run=dry_run) if (send or resend) else None
        started(len(roster.rows) + len(roster.problems))
        return import_roster(roster, self.b.accounts, roles, mailing, resend=resend, dry_run=dry_run, on_row=on_row)
