"""`rai-keygen add/list/show/revoke/rotate/send/delete`, and what raid makes of revoked and rotated keys."""

from __future__ import annotations

import json
import stat

import pytest

from keygen import accounts as lifecycle
from rai.client.profile import load_profile
from rai.domain.models import JobRequest
from rai.domain.signing import sign
from rai.errors import UserError
from raid.verify import Refused, verify_request

ROLES = ["student", "ta", "admin"]


def add(env, username, role="student", team="t1", *extra):
    code, out, err = env.keygen("add", "--username", username, "--email", f"{username}@example.edu",
                                "--role", role, "--team", team, *extra)
    assert code == 0, err
    return out


def signed_request(account, secret=None) -> JobRequest:
    req = JobRequest(job_id="j1", access_key=account.access_key, username=account.username, queue="rai_amd64",
                     spec={"rai": {"image": "x"}, "commands": {"build": ["true"]}},
                     upload_key=f"uploads/{account.username}/u",
                     upload_sha256="0" * 64)
    sign(req, secret or account.secret_key)
    return req


def test_add_prints_a_profile_the_client_loads(keygen_env, tmp_path):
    out = add(keygen_env, "ada")
    (tmp_path / "p").write_text(out)
    profile = load_profile(tmp_path / "p")
    assert profile.username == "ada" and profile.team == "t1" and profile.secret_key

    code, _, err = keygen_env.keygen("add", "--username", "bob", "--email", "bob@example.edu",
                                     "-o", str(tmp_path / "bob.profile"))
    assert code == 0 and "mode 0600" in err
    assert stat.S_IMODE((tmp_path / "bob.profile").stat().st_mode) == 0o600


@pytest.mark.parametrize("args, message", [
    (["--username", "Bad Name", "--email", "x@example.edu"], "invalid username"),
    (["--username", "x", "--email", "nope"], "invalid email 'nope'"),
    (["--username", "x", "--email", "x@example.edu", "--role", "wizard"], "unknown role 'wizard'"),
    (["--username", "ada", "--email", "other@example.edu"], "an account named ada already exists"),
    (["--username", "ada2", "--email", "ADA@example.edu"], "already belongs to the account ada"),
])
def test_add_refuses_bad_input_with_a_message(keygen_env, args, message):
    add(keygen_env, "ada")
    code, out, err = keygen_env.keygen("add", *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_add_send_mails_without_printing_the_secret(keygen_env):
    code, out, err = keygen_env.keygen("add", "--username", "ada", "--email", "ada@example.edu", "--send")
    assert code == 0 and out == "" and "sent ada <ada@example.edu>" in err
    assert len(keygen_env.outbox_files()) == 1
    assert keygen_env.backends.accounts.get("ada").credentials_sent_at is not None


def test_list_filters_and_json_leaves_secrets_out(keygen_env):
    add(keygen_env, "ada", "student", "t1")
    add(keygen_env, "bob", "student", "t2")
    add(keygen_env, "tia", "ta", "t1")
    code, out, _ = keygen_env.keygen("list", "--json")
    rows = json.loads(out)
    assert [r["username"] for r in rows] == ["ada", "bob", "tia"]
    assert all("secret_key" not in r and r["access_key"] for r in rows)
    assert [r["username"] for r in json.loads(keygen_env.keygen("list", "--json", "--team", "t1")[1])] == ["ada", "tia"]
    assert [r["username"] for r in json.loads(keygen_env.keygen("list", "--json", "--role", "ta")[1])] == ["tia"]
    code, out, _ = keygen_env.keygen("list", "--role", "student")
    assert code == 0 and "2 accounts" in out and "ada@" in out and "tia@" not in out


def test_show_by_username_email_or_access_key(keygen_env, tmp_path):
    add(keygen_env, "ada")
    ada = keygen_env.backends.accounts.get("ada")
    for args in (["ada"], ["--email", "ADA@example.edu"], ["--access-key", ada.access_key]):
        code, out, _ = keygen_env.keygen("show", *args)
        assert code == 0 and "ada@example.edu" in out and ada.access_key in out and ada.secret_key not in out
    code, out, _ = keygen_env.keygen("show", "--email", "ada@example.edu", "--profile")
    assert ada.secret_key in out  # the original's getkey
    code, _, err = keygen_env.keygen("show", "--email", "nobody@example.edu")
    assert code == 4 and "no account with the email nobody@example.edu" in err
    code, _, err = keygen_env.keygen("show")
    assert code == 2 and "exactly one of" in err


def test_revoke_refuses_the_next_job_even_one_already_queued(keygen_env):
    add(keygen_env, "ada")
    accounts = keygen_env.backends.accounts
    queued = signed_request(accounts.get("ada")).to_json()  # in the queue before the revoke
    assert verify_request(JobRequest.from_json(queued), accounts, 3600).username == "ada"
    code, _, err = keygen_env.keygen("revoke", "ada")
    assert code == 0 and "revoked ada" in err
    # raid verifies at claim time against the accounts as they are then
    with pytest.raises(Refused, match="revoked"):
        verify_request(JobRequest.from_json(queued), keygen_env.backends.accounts, 3600)
    code, out, _ = keygen_env.keygen("list")
    assert "revoked" in out


def test_rotate_refuses_the_old_key_at_once(keygen_env, tmp_path):
    add(keygen_env, "ada")
    accounts = keygen_env.backends.accounts
    old = accounts.get("ada")
    queued = signed_request(old).to_json()
    code, _, err = keygen_env.keygen("rotate", "ada", "-o", str(tmp_path / "new.profile"))
    assert code == 0
    new = load_profile(tmp_path / "new.profile")
    assert new.secret_key != old.secret_key and new.access_key == old.access_key
    with pytest.raises(Refused, match="signature does not match"):
        verify_request(JobRequest.from_json(queued), keygen_env.backends.accounts, 3600)
    with pytest.raises(Refused, match="signature"):
        verify_request(signed_request(old, old.secret_key), keygen_env.backends.accounts, 3600)
    fresh = keygen_env.backends.accounts.get("ada")
    assert verify_request(signed_request(fresh, new.secret_key), keygen_env.backends.accounts, 3600)


def test_add_refuses_to_overwrite_a_profile_and_creates_no_account(keygen_env, tmp_path):
    target = tmp_path / "taken.profile"
    target.write_text("someone's profile\n")
    code, out, err = keygen_env.keygen("add", "--username", "ada", "--email", "ada@example.edu",
                                       "--output", str(target))
    assert code == 2 and "Traceback" not in err
    assert f"{target} exists" in err and "--force" in err and "another --output path" in err
    assert target.read_text() == "someone's profile\n"
    assert keygen_env.backends.accounts.get("ada") is None  # refused before creating the account
    code, _, err = keygen_env.keygen("add", "--username", "ada", "--email", "ada@example.edu",
                                     "--output", str(target), "--force")
    assert code == 0, err
    assert load_profile(target).username == "ada"
    code, _, err = keygen_env.keygen("add", "--username", "bob", "--email", "bob@example.edu",
                                     "-o", str(tmp_path))  # a folder, even with --force
    assert code == 2 and "is a directory" in err
    assert keygen_env.backends.accounts.get("bob") is None


def test_rotate_and_show_refuse_to_overwrite_a_profile(keygen_env, tmp_path):
    add(keygen_env, "ada")
    old = keygen_env.backends.accounts.get("ada")
    target = tmp_path / "taken.profile"
    target.write_text("keep me\n")
    code, _, err = keygen_env.keygen("rotate", "ada", "-o", str(target))
    assert code == 2 and f"{target} exists" in err and "--force" in err
    assert keygen_env.backends.accounts.get("ada").secret_key == old.secret_key  # not rotated
    code, _, err = keygen_env.keygen("show", "ada", "-o", str(target))
    assert code == 2 and f"{target} exists" in err
    assert target.read_text() == "keep me\n"
    code, _, err = keygen_env.keygen("rotate", "ada", "-o", str(target), "--force")
    assert code == 0, err
    rotated = keygen_env.backends.accounts.get("ada")
    assert rotated.secret_key != old.secret_key and load_profile(target).secret_key == rotated.secret_key
    code, _, err = keygen_env.keygen("show", "ada", "-o", str(target), "--force")
    assert code == 0 and load_profile(target).secret_key == rotated.secret_key


def test_rotate_send_mails_the_new_profile_and_reinstates_a_revoked_account(keygen_env):
    import email
    from email import policy

    import yaml

    add(keygen_env, "ada")
    keygen_env.keygen("revoke", "ada")
    code, out, err = keygen_env.keygen("rotate", "ada", "--send")
    assert code == 0 and out == "" and "sent ada" in err
    ada = keygen_env.backends.accounts.get("ada")
    assert not ada.revoked and ada.credentials_sent_at is not None
    [f] = keygen_env.outbox_files()
    [att] = email.message_from_bytes(f.read_bytes(), policy=policy.default).iter_attachments()
    assert yaml.safe_load(att.get_content())["profile"]["secret_key"] == ada.secret_key


def test_rotate_forgets_that_the_old_credentials_were_mailed(keygen_env):
    add(keygen_env, "ada", "student", "t1", "--send")
    assert keygen_env.backends.accounts.get("ada").credentials_sent_at is not None
    keygen_env.keygen("rotate", "ada")
    assert keygen_env.backends.accounts.get("ada").credentials_sent_at is None


def test_send_always_mails_and_refuses_revoked(keygen_env):
    add(keygen_env, "ada", "student", "t1", "--send")
    add(keygen_env, "bob")
    code, _, err = keygen_env.keygen("send", "ada", "bob")
    assert code == 0 and "sent ada" in err and "sent bob" in err
    assert len(keygen_env.outbox_files()) == 3
    keygen_env.keygen("revoke", "bob")
    code, _, err = keygen_env.keygen("send", "bob")
    assert code == 0 and "skipped bob" in err and "revoked" in err
    code, _, err = keygen_env.keygen("send", "ada", "nobody")
    assert code == 4 and "no account named nobody" in err
    assert len(keygen_env.outbox_files()) == 3  # nothing sent when one name is wrong


def test_delete_refuses_the_last_admin(keygen_env):
    add(keygen_env, "root", "admin")
    add(keygen_env, "ada")
    code, _, err = keygen_env.keygen("delete", "root", "--yes")
    assert code == 2 and "root is the last admin" in err
    add(keygen_env, "root2", "admin")
    keygen_env.keygen("revoke", "root2")
    code, _, err = keygen_env.keygen("delete", "root", "--yes")
    assert code == 2 and "last admin" in err  # a revoked admin does not count
    keygen_env.keygen("rotate", "root2")
    assert keygen_env.keygen("delete", "root", "--yes")[0] == 0
    assert keygen_env.backends.accounts.get("root") is None
    code, _, err = keygen_env.keygen("delete", "ada", input="n\n")
    assert code == 130 and keygen_env.backends.accounts.get("ada") is not None
    assert keygen_env.keygen("delete", "ada", input="y\n")[0] == 0
    assert keygen_env.backends.accounts.get("ada") is None
    code, _, err = keygen_env.keygen("delete", "ada", "--yes")
    assert code == 4 and "no account named ada" in err


def test_lifecycle_functions_directly(keygen_env):
    accounts = keygen_env.backends.accounts
    a = lifecycle.create_account(accounts, ROLES, "  Ada ", "ada@example.edu", team=" ", role="Student")
    assert (a.username, a.team, a.role) == ("ada", None, "student")
    with pytest.raises(UserError, match="name the account"):
        lifecycle.find(accounts)
    assert lifecycle.find(accounts, access_key=a.access_key).username == "ada"
    assert lifecycle.revoke(accounts, "ada").revoked_at == lifecycle.revoke(accounts, "ada").revoked_at


def test_bad_config_is_a_message(keygen_env, tmp_path):
    keygen_env.config_path.write_text("email: {provider: mailgun}\n")
    code, _, err = keygen_env.keygen("add", "--username", "ada", "--email", "ada@example.edu", "--send")
    assert code == 2 and "needs email.domain and email.api_key" in err and "Traceback" not in err
    assert keygen_env.backends.accounts.get("ada") is None
    keygen_env.config_path.write_text("roles: [1, 2\n")
    code, _, err = keygen_env.keygen("list")
    assert code == 2 and "not valid YAML" in err
