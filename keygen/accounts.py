"""Account lifecycle: create with fresh keys, find, revoke, rotate, delete.

The command line and the console both go through these functions.
"""

from __future__ import annotations

import re
import secrets

from rai.backends.auth import Accounts
from rai.backends.mail import address_problem
from rai.domain.models import Account, Role, utcnow
from rai.errors import NotFound, UserError

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def new_access_key() -> str:
    return "AK" + secrets.token_hex(10).upper()


def new_secret_key() -> str:
    return secrets.token_urlsafe(32)


def normalize_username(username: str) -> str:
    return username.strip().lower()


def check_username(username: str) -> str | None:
    """Why `username` is not acceptable, or None."""
    if not USERNAME.match(username):
        return f"invalid username {username!r}: use lowercase letters, digits, '.', '_' or '-' (at most 64)"
    return None


def check_email(email: str) -> str | None:
    return address_problem(email)


def check_role(role: str, roles: list[str]) -> str | None:
    if role not in roles:
        return f"unknown role {role!r} (roles configured: {', '.join(roles)})"
    return None


def validate(username: str, email: str, role: str, roles: list[str]) -> None:
    problem = check_username(username) or check_email(email) or check_role(role, roles)
    if problem:
        raise UserError(problem)


def create_account(accounts: Accounts, roles: list[str], username: str, email: str, *, team: str | None = None,
                   role: str = "student", firstname: str = "", lastname: str = "",
                   affiliation: str = "") -> Account:
    username, email, role = normalize_username(username), email.strip(), role.strip().lower()
    validate(username, email, role, roles)
    if accounts.get(username) is not None:
        raise UserError(f"an account named {username} already exists")
    other = accounts.by_email(email)
    if other is not None:
        raise UserError(f"the email {email} already belongs to the account {other.username}")
    account = Account(username=username, email=email, team=(team or "").strip() or None, role=role,
                      firstname=firstname.strip(), lastname=lastname.strip(), affiliation=affiliation.strip(),
                      access_key=new_access_key(), secret_key=new_secret_key())
    accounts.add(account)
    return account


def require(accounts: Accounts, username: str) -> Account:
    account = accounts.get(normalize_username(username))
    if account is None:
        raise NotFound(f"no account named {username}", hint="`rai-keygen list` shows the accounts")
    return account


def find(accounts: Accounts, username: str | None = None, email: str | None = None,
         access_key: str | None = None) -> Account:
    """The account with this username, email or access key (the original's `getkey`)."""
    if username:
        return require(accounts, username)
    if email:
        account = accounts.by_email(email.strip())
        what = f"email {email}"
    elif access_key:
        account = accounts.by_access_key(access_key.strip())
        what = f"access key {access_key}"
    else:
        raise UserError("name the account: a username, --email or --access-key")
    if account is None:
        raise NotFound(f"no account with the {what}", hint="`rai-keygen list` shows the accounts")
    return account


def revoke(accounts: Accounts, username: str) -> Account:
    """Refuse the account's key from now on: raid checks at claim time, so queued jobs are refused too."""
    account = require(accounts, username)
    if not account.revoked:
        account.revoked = True
        account.revoked_at = utcnow()
        accounts.update(account)
    return account


def rotate(accounts: Accounts, username: str) -> Account:
    """A new secret key; requests signed with the old one, queued ones included, are refused.

    Rotating a revoked account reinstates it: the new profile is the way back in.
    """
    account = require(accounts, username)
    account.secret_key = new_secret_key()
    account.revoked = False
    account.revoked_at = None
    account.credentials_sent_at = None  # the new secret has not been mailed yet
    accounts.update(account)
    return account


def active_admins(accounts: Accounts) -> list[Account]:
    return [a for a in accounts.list(role=Role.admin.value) if not a.revoked]


def delete(accounts: Accounts, username: str) -> Account:
    """Remove the account; refused for the last admin that is not revoked."""
    account = require(accounts, username)
    if account.role == Role.admin.value and not account.revoked:
        others = [a for a in active_admins(accounts) if a.username != account.username]
        if not others:
            raise UserError(f"{account.username} is the last admin; refusing to delete it",
                            hint="create another admin first (`rai-keygen add --role admin ...`)")
    accounts.delete(account.username)
    return account
