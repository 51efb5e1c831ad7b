"""A newcomer's first run on the embedded defaults: an account and a profile, so `rai submit` works
from a second terminal straight away."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

from rai.backends import Backends
from rai.client.profile import Profile, profile_path, write_profile


def local_username() -> str:
    name = re.sub(r"[^a-z0-9._-]", "", getpass.getuser().lower()) or "me"
    return name if name[0].isalnum() else "u" + name


def ensure_profile(backends: Backends, path: Path | None = None) -> tuple[Path, str] | None:
    """Write a profile for this machine's user unless one exists; returns (path, username) when it did."""
    from keygen.accounts import create_account

    target = path or profile_path()
    if target.exists():
        return None
    username = local_username()
    accounts = backends.accounts
    account = accounts.get(username)
    if account is None or account.revoked:
        if account is not None:
            accounts.delete(username)
        account = create_account(accounts, list(backends.config.roles), username, f"{username}@rai.local",
                                 role="student")
    write_profile(Profile.from_account(account), target)
    return target, username
