"""Account lifecycle: create with fresh keys, revoke, rotate, delete."""

from __future__ import annotations

import re
import secrets

from rai.backends.auth import Accounts
from rai.errors import NotFound, UserError
from rai.models import Account, utcnow

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def new_access_key() -> str:
    return "AK" + secrets.token_hex(10).upper()


def new_secret_key() -> str:
    return secrets.token_urlsafe(32)


def validate(username: str, email: str, role: str, roles: list[str]) -> None:
    if not USERNAME.match(username):
        raise UserError(f"invalid username {username!r}: use lowercase letters, digits, '.', '_' or '-'")
    if not EMAIL.match(email):
        raise UserError(f"invalid email {email!r}")
    if role not in roles:
        raise UserError(f"unknown role {role!r}", hint=f"roles configured: {', '.join(roles)}")


def create_account(accounts: Accounts, roles: list[str], username: str, email: str, *, team: str | None = None,
                   role: str = "student", firstname: str = "", lastname: str = "",
                   affiliation: str = "") -> Account:
    validate(username, email, role, roles)
    if accounts.get(username) is not None:
        raise UserError(f"an account named {username} already exists")
    account = Account(username=username, email=email, team=team or None, role=role, firstname=firstname,
                      lastname=lastname, affiliation=affiliation, access_key=new_access_key(),
                      secret_key=new_secret_key())
    accounts.add(account)
    return account


def require(accounts: Accounts, username: str) -> Account:
    account = accounts.get(username)
    if account is None:
        raise NotFound(f"no account named {username}", hint="`rai-keygen list` shows the accounts")
    return account


def revoke(accounts: Accounts, username: str) -> Account:
    account = require(accounts, username)
    account.revoked = True
    account.revoked_at = utcnow()
    accounts.update(account)
    return account


def rotate(accounts: Accounts, username: str) -> Account:
    account = require(accounts, username)
    account.secret_key = new_secret_key()
    account.revoked = False
    account.revoked_at = None
    accounts.update(account)
    return account
