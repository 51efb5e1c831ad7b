"""The Accounts port: accounts in the database (embedded) and in Auth0 (auth0-python's Management API client
against a local server speaking the paths used) pass the same tests."""

from __future__ import annotations

import pytest

from rai.backends.auth import DatabaseAccounts
from rai.backends.auth0_accounts import RATE_LIMIT_ATTEMPTS, Auth0Accounts
from rai.backends.db import SQLiteDatabase
from rai.config import AuthConfig
from rai.domain.models import Account, utcnow
from rai.errors import AuthError, ServiceUnavailable, UserError
from tests.fixtures.auth0_fake import CLIENT_ID, CLIENT_SECRET


@pytest.fixture(params=["database", "auth0"])
def accounts(request, tmp_path):
    if request.param == "database":
        return DatabaseAccounts(SQLiteDatabase(tmp_path / "rai.db"))
    return Auth0Accounts(request.getfixturevalue("auth0_config"))


def account(username="ada", **kw) -> Account:
    base = dict(username=username, email=f"{username.capitalize()}@Example.edu", access_key=f"AK{username.upper()}",
                secret_key=f"secret-{username}", team="t1", role="student", firstname="Ada", lastname="Lovelace",
                affiliation="UIUC")
    return Account(**{**base, **kw})


def test_an_account_is_found_by_username_access_key_and_email(accounts):
    a = account()
    accounts.add(a)
    assert accounts.get("ada") == a
    assert accounts.by_access_key("AKADA") == a
    assert accounts.by_email("ada@example.edu") == a
    assert accounts.get("bob") is None
    assert accounts.by_access_key("AKBOB") is None
    assert accounts.by_email("bob@example.edu") is None


@pytest.mark.parametrize("clash", [{"email": "other@example.edu", "access_key": "AKX"},
                                   {"username": "bob", "email": "bob@example.edu", "access_key": "AKADA"},
                                   {"username": "bob", "access_key": "AKBOB", "email": "ADA@example.edu"}])
def test_a_taken_username_email_or_access_key_is_refused(accounts, clash):
    accounts.add(account())
    with pytest.raises(UserError, match="already exists"):
        accounts.add(account(**clash))
    assert [a.username for a in accounts.list()] == ["ada"]


def test_revocation_is_effective_at_once_and_rotation_restores(accounts):
    accounts.add(account())
    a = accounts.get("ada")
    a.revoked, a.revoked_at = True, utcnow()
    accounts.update(a)
    assert accounts.by_access_key("AKADA").revoked
    a.revoked, a.revoked_at, a.secret_key = False, None, "rotated"
    accounts.update(a)
    fresh = accounts.by_access_key("AKADA")
    assert not fresh.revoked and fresh.secret_key == "rotated"


def test_update_changes_role_team_and_email(accounts):
    accounts.add(account())
    accounts.update(account(role="ta", team="t9", email="ada.l@example.edu"))
    a = accounts.by_access_key("AKADA")
    assert (a.role, a.team, a.email) == ("ta", "t9", "ada.l@example.edu")
    assert accounts.by_email("ada.l@example.edu").username == "ada"


def test_list_by_role_and_team_and_delete(accounts):
    for name, role, team in [("zoe", "student", "t1"), ("bob", "ta", "t2"), ("ada", "student", "t2")]:
        accounts.add(account(name, role=role, team=team))
    assert [a.username for a in accounts.list()] == ["ada", "bob", "zoe"]
    assert [a.username for a in accounts.list(role="student")] == ["ada", "zoe"]
    assert [a.username for a in accounts.list(team="t2")] == ["ada", "bob"]
    assert [a.username for a in accounts.list(role="student", team="t2")] == ["ada"]
    accounts.delete("bob")
    assert accounts.get("bob") is None and accounts.by_access_key("AKBOB") is None
    accounts.delete("bob")  # twice is fine
    assert [a.username for a in accounts.list()] == ["ada", "zoe"]


# --- Auth0 only


def test_auth0_keeps_rai_fields_in_app_metadata_and_revokes_by_blocking(auth0_server, auth0_config):
    accounts = Auth0Accounts(auth0_config, app_secret="app-secret")
    accounts.add(account())
    user = auth0_server.users["auth0|AKADA"]
    assert user["email"] == "ada@example.edu" and user["nickname"] == "ada" and user["blocked"] is False
    meta = user["app_metadata"]["rai"]
    assert (meta["role"], meta["team"], meta["username"]) == ("student", "t1", "ada")
    assert meta["secret_key"].startswith("==AESGCM==")  # readable by Management API holders: encrypted
    assert accounts.by_access_key("AKADA").secret_key == "secret-ada"
    user["blocked"] = True  # an operator blocks the user in the Auth0 dashboard
    assert accounts.by_access_key("AKADA").revoked


def test_auth0_key_checks_never_depend_on_the_lagging_search(auth0_server, auth0_config):
    auth0_server.reset(search_lag=60)  # Auth0's user search is eventually consistent
    accounts = Auth0Accounts(auth0_config)
    accounts.add(account())
    assert accounts.by_access_key("AKADA") is not None  # GET /users/{id}: consistent
    assert accounts.by_email("ada@example.edu") is not None  # GET /users-by-email: consistent
    assert accounts.get("ada") is None  # the search has not caught up (documented)
    auth0_server.users["auth0|AKADA"]["blocked"] = True
    assert accounts.by_access_key("AKADA").revoked
    assert auth0_server.calls["GET users/{id}"] >= 2  # every check asks Auth0, nothing cached


def test_auth0_gets_its_token_by_client_credentials(auth0_server, auth0_config):
    cfg = auth0_config.model_copy(update={"token": None, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    accounts = Auth0Accounts(cfg)
    accounts.add(account())
    assert accounts.get("ada").username == "ada"
    bad = Auth0Accounts(cfg.model_copy(update={"client_secret": "wrong"}))
    with pytest.raises(AuthError, match="client credentials"):
        bad.get("ada")
    with pytest.raises(AuthError, match="refused the Management API token"):
        Auth0Accounts(auth0_config.model_copy(update={"token": "forged"})).get("ada")


def test_auth0_rate_limits_are_waited_out_and_conflicts_are_not_retried(auth0_server, auth0_config):
    accounts = Auth0Accounts(auth0_config)
    waits: list[float] = []
    accounts.sleep = waits.append
    accounts.add(account())
    auth0_server.fail_next["PATCH users/{id}"] = [429, 429, 429]  # the SDK does not retry; rai (tenacity) does
    accounts.update(account(role="ta"))
    assert accounts.by_access_key("AKADA").role == "ta"
    assert auth0_server.calls["PATCH users/{id}"] == 4
    assert waits == [1.0, 2.0, 4.0]  # exponential (the fake's Retry-After is 0)
    before = auth0_server.calls["POST users"]
    with pytest.raises(UserError, match="already exists"):
        Auth0Accounts(auth0_config).add(account("bob", email="ada@example.edu"))
    assert auth0_server.calls["POST users"] == before + 1


def test_a_rate_limited_token_fetch_is_retried(auth0_server, auth0_config):
    cfg = auth0_config.model_copy(update={"token": None, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    accounts = Auth0Accounts(cfg)
    waits: list[float] = []
    accounts.sleep = waits.append
    auth0_server.fail_next["POST oauth/token"] = [429, 429]
    assert accounts.by_access_key("AKNOBODY") is None
    assert auth0_server.calls["POST oauth/token"] == 3 and waits == [1.0, 2.0]


def test_auth0_retry_after_is_honoured_and_the_retries_are_bounded(auth0_server, auth0_config):
    accounts = Auth0Accounts(auth0_config)
    waits: list[float] = []
    accounts.sleep = waits.append
    accounts.add(account())
    auth0_server.retry_after = "7"
    auth0_server.fail_next["GET users/{id}"] = [429]
    assert accounts.by_access_key("AKADA") is not None and waits == [7.0]  # longer than the 1 s backoff
    auth0_server.retry_after = "0"
    waits.clear()
    before = auth0_server.calls["GET users/{id}"]
    auth0_server.fail_next["GET users/{id}"] = [429] * 10
    with pytest.raises(ServiceUnavailable, match="rate limit"):
        accounts.by_access_key("AKADA")
    assert auth0_server.calls["GET users/{id}"] - before == RATE_LIMIT_ATTEMPTS
    assert len(waits) == RATE_LIMIT_ATTEMPTS - 1


def test_auth0_config_errors_say_what_to_set():
    with pytest.raises(UserError, match="auth.domain"):
        Auth0Accounts(AuthConfig(provider="auth0"))
    with pytest.raises(UserError, match="client_id"):
        Auth0Accounts(AuthConfig(provider="auth0", domain="x.auth0.com"))
