"""`rai-keygen import`: a roster into accounts, bad rows reported by line, idempotent, mails once."""

from __future__ import annotations

import email
import shutil
from email import policy
from pathlib import Path

import pytest

from keygen.roster import import_roster, parse_roster
from rai.errors import UserError

ROSTER = Path(__file__).parent / "data" / "roster.csv"
ROLES = ["student", "ta", "admin"]


def counts(out: str) -> dict[str, int]:
    """The summary table's one row, by column name."""
    lines = out.splitlines()
    head = next(i for i in range(len(lines) - 1, -1, -1) if "created" in lines[i] and "failed" in lines[i])
    names = [c.strip() for c in lines[head].split("┃")[1:-1]]
    values = [int(c) for c in lines[head + 2].split("│")[1:-1]]
    return dict(zip(names, values, strict=True))


def test_parse_reports_bad_rows_with_line_numbers():
    roster = parse_roster(ROSTER.read_text(), ROLES, "roster.csv")
    assert [r.username for r in roster.rows] == ["ada", "alan", "dmr", "claude"]
    problems = {p.line: p.message for p in roster.problems}
    assert set(problems) == {4, 5, 6, 8}
    assert "invalid email 'not-an-email'" in problems[4]
    assert problems[5] == "duplicate username ada (first on line 2)"
    assert "unknown role 'wizard'" in problems[6]
    assert "duplicate email ADA@example.edu (first on line 2)" in problems[8]
    dmr = next(r for r in roster.rows if r.username == "dmr")
    assert dmr.role == "student" and dmr.team is None  # empty role means student
    claude = next(r for r in roster.rows if r.username == "claude")
    assert claude.lastname == "Shannon, Jr." and claude.affiliation == "MIT, Bell Labs" and claude.role == "admin"


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("name,mail\nada,ada@example.edu\n", "lacks the column(s) lastname, firstname, username, email"),
    ('lastname,firstname,username,email\n"unclosed,x,y,z\n', None),
])
def test_unusable_rosters_are_user_errors(text, message):
    if message is None:  # an unclosed quote swallows the rest: one bad row, not a crash
        roster = parse_roster(text, ROLES)
        assert roster.rows == [] and roster.problems
        return
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_roster(text, ROLES)


def test_columns_by_header_name_and_extra_cells():
    text = ("\ufeffEmail,Username,Firstname,Lastname\n"
            "ada@example.edu,ada,Ada,Lovelace\n"
            "bob@example.edu,bob,Bob,B,surplus\n"
            "\n# a comment line\n")
    roster = parse_roster(text, ROLES)
    assert [(r.username, r.email, r.role) for r in roster.rows] == [("ada", "ada@example.edu", "student")]
    assert roster.problems[0].line == 3 and "5 columns where the header has 4" in roster.problems[0].message


def test_import_creates_sends_and_is_idempotent(keygen_env):
    code, out, err = keygen_env.keygen("import", str(ROSTER), "--send")
    assert code == 1  # rows were skipped
    assert "Traceback" not in err
    assert "created" in out and "line" in out and "duplicate username ada" in out
    b = keygen_env.backends
    assert sorted(a.username for a in b.accounts.list()) == ["ada", "alan", "claude", "dmr"]
    assert b.accounts.get("alan").role == "ta"
    assert all(a.credentials_sent_at is not None for a in b.accounts.list())
    files = keygen_env.outbox_files()
    assert len(files) == 4
    to = sorted(email.message_from_bytes(f.read_bytes(), policy=policy.default)["To"] for f in files)
    assert to == ["ada@example.edu", "alan@example.edu", "claude@example.edu", "dmr@example.edu"]
    keys = {a.username: a.secret_key for a in b.accounts.list()}

    code, out, _ = keygen_env.keygen("import", str(ROSTER), "--send")
    assert code == 1
    assert len(keygen_env.outbox_files()) == 4  # nothing mailed again
    assert {a.username: a.secret_key for a in keygen_env.backends.accounts.list()} == keys  # left alone
    assert counts(out) == {"created": 0, "existing": 4, "skipped": 4, "sent": 0, "failed": 0}


def test_a_clean_roster_exits_zero(keygen_env, tmp_path):
    clean = tmp_path / "clean.csv"
    clean.write_text("lastname,firstname,username,email,role,affiliation,team\nL,A,ada,ada@example.edu,student,U,t1\n")
    assert keygen_env.keygen("import", str(clean))[0] == 0
    assert keygen_env.keygen("import", str(clean))[0] == 0
    assert keygen_env.outbox_files() == []  # not asked to send


def test_dry_run_writes_nothing(keygen_env):
    code, out, err = keygen_env.keygen("import", str(ROSTER), "--send", "--dry-run")
    assert code == 1
    assert "dry run" in out and "would create" in out
    assert keygen_env.backends.accounts.list() == []
    assert keygen_env.outbox_files() == []
    assert not keygen_env.outbox.exists()


def test_failed_sends_are_reported_per_student_and_resent(keygen_env, fake_mailgun, monkeypatch):
    import rai.backends.mailgun_mail as mailgun_mail

    monkeypatch.setattr(mailgun_mail.time, "sleep", lambda s: None)  # no real backoff in tests
    keygen_env.use_mailgun(fake_mailgun)
    fake_mailgun.fail_next(*[500] * 5)  # ada's every attempt fails (5 attempts)
    code, out, err = keygen_env.keygen("import", str(ROSTER), "--send")
    assert code == 1
    assert "Mailgun failed (500); gave up after 5 attempts" in out and "--resend" in err
    assert counts(out) == {"created": 4, "existing": 0, "skipped": 4, "sent": 3, "failed": 1}
    b = keygen_env.backends
    assert b.accounts.get("ada").credentials_sent_at is None
    assert b.accounts.get("alan").credentials_sent_at is not None
    assert sorted(m.field("to") for m in fake_mailgun.messages) == [
        "alan@example.edu", "claude@example.edu", "dmr@example.edu"]

    code, out, err = keygen_env.keygen("import", str(ROSTER), "--send", "--resend")
    assert code == 1  # the roster's bad rows remain
    assert counts(out) == {"created": 0, "existing": 4, "skipped": 4, "sent": 1, "failed": 0}
    assert [m.field("to") for m in fake_mailgun.messages][3:] == ["ada@example.edu"]  # only ada, once
    assert keygen_env.backends.accounts.get("ada").credentials_sent_at is not None
    assert fake_mailgun.api_key not in out + err


def test_wrong_mailgun_key_fails_each_student_without_retry(keygen_env, fake_mailgun):
    keygen_env.use_mailgun(fake_mailgun, api_key="key-not-the-right-one")
    code, out, err = keygen_env.keygen("import", str(ROSTER), "--send")
    assert code == 1
    assert counts(out) == {"created": 4, "existing": 0, "skipped": 4, "sent": 0, "failed": 4}
    assert out.count("Mailgun refused the API key (401)") == 4  # 3 tried, then the 4th not tried for it
    assert "not tried: the last 3 mails failed" in out
    assert len(fake_mailgun.requests) == 3  # one try each, and no more once the mailer is plainly down
    assert "key-not-the-right-one" not in out + err

    keygen_env.use_mailgun(fake_mailgun)  # the key fixed: --resend mails all four, once each
    code, out, err = keygen_env.keygen("import", str(ROSTER), "--resend")
    assert counts(out) == {"created": 0, "existing": 4, "skipped": 4, "sent": 4, "failed": 0}
    assert sorted(m.field("to") for m in fake_mailgun.messages) == [
        "ada@example.edu", "alan@example.edu", "claude@example.edu", "dmr@example.edu"]


def test_no_student_is_mailed_twice_in_one_run(keygen_env):
    from keygen.mailing import CredentialsRun

    b = keygen_env.backends
    from keygen.accounts import create_account

    ada = create_account(b.accounts, ROLES, "ada", "ada@example.edu")
    run = CredentialsRun.from_backends(b)
    assert run.send(ada).status == "sent"
    again = run.send(ada)
    assert again.status == "skipped" and "already mailed in this run" in again.message
    assert len(keygen_env.outbox_files()) == 1


def test_a_roster_that_is_not_a_file(keygen_env, tmp_path):
    code, _, err = keygen_env.keygen("import", str(tmp_path / "missing.csv"))
    assert code == 2 and "no roster at" in err and "Traceback" not in err
    code, _, err = keygen_env.keygen("import", str(tmp_path))
    assert code == 2 and "is a folder" in err
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    code, _, err = keygen_env.keygen("import", str(binary))
    assert code == 2 and "not UTF-8" in err


def test_an_email_taken_by_another_account_skips_the_row(keygen_env, tmp_path):
    assert keygen_env.keygen("add", "--username", "lovelace", "--email", "ada@example.edu")[0] == 0
    b = keygen_env.backends
    from keygen.roster import read_roster

    report = import_roster(read_roster(ROSTER, ROLES), b.accounts, ROLES)
    ada = next(o for o in report.outcomes if o.username == "ada")
    assert ada.account == "skipped" and "belongs to the account lovelace" in ada.message
    assert report.summary()["created"] == 3


def test_import_progress_callback_sees_every_row(keygen_env):
    from keygen.roster import read_roster

    seen = []
    report = import_roster(read_roster(ROSTER, ROLES), keygen_env.backends.accounts, ROLES,
                           on_row=lambda done, total, o: seen.append((done, total)))
    assert seen == [(i, 8) for i in range(1, 9)]
    assert [o.line for o in report.outcomes] == sorted(o.line for o in report.outcomes)


def test_custom_template_from_config(keygen_env, tmp_path):
    template = tmp_path / "mail.txt"
    template.write_text("Subject: [ECE408] $username\n\nDear $firstname, team $team. $$5 fee.\n")
    keygen_env.settings["email"]["template"] = str(template)
    keygen_env.write_config()
    assert keygen_env.keygen("add", "--username", "ada", "--email", "ada@example.edu", "--firstname", "Ada",
                             "--team", "t9", "--send")[0] == 0
    [f] = keygen_env.outbox_files()
    msg = email.message_from_bytes(f.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "[ECE408] ada"
    assert msg.get_body(("plain",)).get_content().strip() == "Dear Ada, team t9. $5 fee."

    template.write_text("Subject: hi\n\nHello $nickname\n")
    code, _, err = keygen_env.keygen("add", "--username", "bob", "--email", "bob@example.edu", "--send")
    assert code == 2 and "unknown placeholder $nickname" in err
    assert keygen_env.backends.accounts.get("bob") is None  # checked before anything is created

    template.write_text("Hello\n")
    code, _, err = keygen_env.keygen("send", "ada")
    assert code == 2 and "must start with a `Subject: ...` line" in err
    shutil.rmtree(tmp_path / "outbox")


@pytest.mark.parametrize("address, why", [
    ("ada@example..edu", "two periods in a row"),
    ("ada@localhost", "should have a period"),
    ("ada@mail.invalid", "special-use or reserved name"),
    ("ada@-example.edu", "invalid"),
])
def test_an_address_that_cannot_receive_mail_names_its_line(address, why):
    text = ("lastname,firstname,username,email\n"
            "Lovelace,Ada,ada,ada@example.edu\n"
            f"Turing,Alan,alan,{address}\n")
    roster = parse_roster(text, ROLES, "roster.csv")
    assert [r.username for r in roster.rows] == ["ada"]
    [problem] = roster.problems
    assert problem.line == 3 and f"invalid email {address!r}" in problem.message and why in problem.message
