"""Accounts port: who may submit, with which key, in which role.

Embedded backend: accounts in the database (`DatabaseAccounts`). Production: Auth0
(`rai.backends.auth0_accounts.Auth0Accounts`), role, team and keys in app metadata.
"""

from __future__ import annotations

from typing import Protocol

from rai.domain.models import Account
from rai.domain.signing import verify
from rai.errors import AuthError


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


def authenticate(accounts: Accounts, message, what: str = "request") -> Account:
    """The account that signed `message` (a job request, query, credential request...).

    Raises AuthError when its key is unknown or revoked, the signature does not match, or it names
    a user other than the key's owner. Freshness is the caller's to check: each kind has its own window.
    """
    account = accounts.by_access_key(message.access_key)
    if account is None:
        raise AuthError("the access key is unknown (ask your course staff for a new profile)")
    if account.revoked:
        raise AuthError("this key has been revoked (ask your course staff for a new profile)")
    if not verify(message, account.secret_key):
        raise AuthError(f"the {what}'s signature does not match your key (was your profile changed?)")
    if account.username != message.username:
        raise AuthError(f"the {what} names a user other than the key's owner")
    return account
