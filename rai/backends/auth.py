"""Accounts port: who may submit, with which key, in which role.

Embedded backend: accounts in the database (`DatabaseAccounts`). Production: Auth0
(`rai.backends.auth0_accounts.Auth0Accounts`), role, team and keys in app metadata.
"""

from __future__ import annotations

from typing import Protocol

from rai.models import Account


class Accounts(Protocol):
    def add(self, account: Account) -> None:
        """Create; raises UserError when the username, email or access key is taken."""

    def get(self, username: str) -> Account | None: ...

    def by_access_key(self, access_key: str) -> Account | None: ...

    def by_email(self, email: str) -> Account | None: ...

    def update(self, account: Account) -> None: ...

    def delete(self, username: str) -> None: ...

    def list(self, role: str | None = None, team: str | None = None) -> list[Account]: ...


class DatabaseAccounts:
    """Accounts kept in the rai database itself."""

    def __init__(self, db):
        self.db = db

    def add(self, account: Account) -> None:
        self.db.add_account(account)

    def get(self, username: str) -> Account | None:
        return self.db.get_account(username=username)

    def by_access_key(self, access_key: str) -> Account | None:
        return self.db.get_account(access_key=access_key)

    def by_email(self, email: str) -> Account | None:
        return self.db.get_account(email=email)

    def update(self, account: Account) -> None:
        self.db.update_account(account)

    def delete(self, username: str) -> None:
        self.db.delete_account(username)

    def list(self, role: str | None = None, team: str | None = None) -> list[Account]:
        return self.db.list_accounts(role=role, team=team)
