"""The console's Accounts view, driven by the pilot: list and filter, the new-account form, a roster
import with live progress, revoke, rotate, mail credentials, delete — all through keygen's code."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from keygen.accounts import create_account
from rai.domain.models import Account, JobRequest
from rai.domain.signing import sign
from raid.verify import Refused, verify_request
from raitui.components.account_form import NewAccountScreen
from raitui.components.confirm import ConfirmScreen
from raitui.components.roster_import import RosterImportScreen
from raitui.views import load_views
from raitui.views.accounts import AccountFilter, AccountsView
from tests.fixtures.tui import core_views, settle, wait_for

pytestmark = pytest.mark.anyio
SIZE = (130, 34)
ROSTER = Path(__file__).parent / "data" / "roster.csv"
SENT = datetime(2026, 3, 14, 18, 30, tzinfo=timezone.utc)


@pytest.fixture
def anyio_backend():
    return "asyncio"  # Textual runs on asyncio


def views():
    """The core views and this one: the pictures do not change when other views are added."""
    return [*core_views(), AccountsView]


def test_the_view_is_registered():
    assert AccountsView in load_views()


def rows(app) -> list[str]:
    return [r.key.value for r in app.views["accounts"].table.ordered_rows]


def outbox(env) -> list[Path]:
    folder = env.config.email.outbox_path()
    return sorted(folder.glob("*.eml")) if folder.exists() else []


@pytest.fixture
def accounts_env(tui_env, tmp_path):
    tui_env.config.email.outbox = str(tmp_path / "outbox")
    b = tui_env.backends
    for username, role, team, first, last in (("root", "admin", None, "Rai", "Admin"),
                                              ("tia", "ta", "staff", "Tia", "Assistant"),
                                              ("ada", "student", "t1", "Ada", "Lovelace"),
                                              ("bob", "student", "t2", "Bob", "Builder")):
        create_account(b.accounts, list(b.config.roles), username, f"{username}@example.edu", role=role, team=team,
                       firstname=first, lastname=last)
    return tui_env


async def open_accounts(pilot, app) -> AccountsView:
    await settle(pilot, app)
    await pilot.press(str([c.view_name for c in app.view_classes].index("accounts") + 1))  # its number key
    assert app.current_view == "accounts"
    view = app.views["accounts"]
    await wait_for(pilot, lambda: view.table.row_count > 0, what="the accounts")
    return view


async def select(pilot, view, username: str) -> None:
    view.table.move_cursor(row=rows(view.app).index(username))
    await pilot.pause()
    assert view.table.selected_key() == username


async def notified(pilot, app, text: str) -> str:
    def found():
        return next((n.message for n in app._notifications if text in n.message), None)

    return await wait_for(pilot, found, what=f"a notification with {text!r}")


def test_filter_words_and_fields():
    a = Account(username="ada", email="ada@example.edu", firstname="Ada", lastname="Lovelace", team="t1",
                access_key="AK1", secret_key="s")
    assert AccountFilter("love").matches(a) and AccountFilter("role:student team:t1").matches(a)
    assert not AccountFilter("role:ta").matches(a) and not AccountFilter("state:revoked").matches(a)
    a.revoked = True
    assert AccountFilter("state:revoked ada").matches(a)


async def test_list_and_filter(accounts_env):
    app = accounts_env.app(views=views())
    async with app.run_test(size=SIZE) as pilot:
        view = await open_accounts(pilot, app)
        assert rows(app) == ["ada", "bob", "root", "tia"]
        assert view.table.border_title == "accounts (4)"
        await pilot.press("slash")
        app.screen.query_one("#accounts-filter").value = "role:student"  # typing key by key is slow in the pilot
        await pilot.pause()
        assert rows(app) == ["ada", "bob"]
        assert view.table.border_title == "accounts (2 of 4)"
        await pilot.press("escape")
        assert rows(app) == ["ada", "bob", "root", "tia"]


async def test_new_account_form_validates_then_creates_and_mails(accounts_env):
    app = accounts_env.app(views=views())
    async with app.run_test(size=SIZE) as pilot:
        await open_accounts(pilot, app)
        await pilot.press("n")
        assert isinstance(app.screen, NewAccountScreen)
        await pilot.press(*"Eve")
        assert app.screen.focused.id == "field-username"
        app.screen.query_one("#field-email").value = "not-an-email"
        await pilot.press("ctrl+s")
        error = app.screen.query_one("#form-error")
        assert "invalid email 'not-an-email'" in str(error.render())
        assert accounts_env.backends.accounts.get("eve") is None
        app.screen.query_one("#field-email").value = "ada@example.edu"  # taken: the backend says so
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "already belongs to the account ada" in str(error.render()),
                       what="the duplicate email error")
        assert isinstance(app.screen, NewAccountScreen)  # the form stays open with what was typed
        app.screen.query_one("#field-email").value = "eve@example.edu"
        app.screen.query_one("#field-team").value = "t3"
        await pilot.press("ctrl+s")
        await notified(pilot, app, "created eve (student); credentials sent")
        assert not isinstance(app.screen, NewAccountScreen)
        await wait_for(pilot, lambda: "eve" in rows(app), what="eve in the table")
        eve = accounts_env.backends.accounts.get("eve")
        assert eve.team == "t3" and eve.credentials_sent_at is not None
        assert len(outbox(accounts_env)) == 1


async def test_import_a_roster_with_live_progress(accounts_env):
    app = accounts_env.app(views=views())
    async with app.run_test(size=SIZE) as pilot:
        await open_accounts(pilot, app)
        await pilot.press("i")
        screen = app.screen
        assert isinstance(screen, RosterImportScreen)
        screen.query_one("#roster-path").value = str(ROSTER)
        await pilot.click("#roster-start")
        await wait_for(pilot, lambda: screen.result is not None, what="the import to end")
        # ada exists already (the fixture made her): 3 created, ada existing
        assert "3 created, 1 existing, 4 skipped, 3 mailed, 0 failed" in screen.result
        progress = screen.query_one("#roster-progress")
        assert progress.progress == progress.total == 8
        table = screen.query_one("#roster-rows")
        lines = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert lines == ["4", "5", "6", "8"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: {"alan", "dmr", "claude"} <= set(rows(app)), what="the new accounts")
        assert len(outbox(accounts_env)) == 3


async def test_import_errors_stay_in_the_modal(accounts_env, tmp_path):
    app = accounts_env.app(views=views())
    async with app.run_test(size=SIZE) as pilot:
        await open_accounts(pilot, app)
        await pilot.press("i")
        screen = app.screen
        screen.query_one("#roster-path").value = str(tmp_path / "missing.csv")
        await pilot.click("#roster-start")
        status = screen.query_one("#roster-status")
        await wait_for(pilot, lambda: "no roster at" in str(status.render()), what="the error")
        assert status.has_class("error") and isinstance(app.screen, RosterImportScreen)


async def test_revoke_then_rotate_then_mail(accounts_env):
    b = accounts_env.backends
    old = b.accounts.get("ada")
    queued = JobRequest(job_id="j1", access_key=old.access_key, username="ada", queue="q", spec={},
                        upload_key="u", upload_sha256="0" * 64)
    sign(queued, old.secret_key)
    app = accounts_env.app(views=views())
    async with app.run_test(size=SIZE) as pilot:
        view = await open_accounts(pilot, app)
        await select(pilot, view, "ada")
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await notified(pilot, app, "revoked ada")
        with pytest.raises(Refused, match="revoked"):
            verify_request(queued, b.accounts, 3600)
        await wait_for(pilot, lambda: str(view.table.get_cell("ada", "state")) == "revoked", what="revoked shown")

        await pilot.press("k", "y")
        await notified(pilot, app, "rotated ada; new credentials sent")
        new = b.accounts.get("ada")
        assert not new.revoked and new.secret_key != old.secret_key
        with pytest.raises(Refused, match="signature"):
            verify_request(queued, b.accounts, 3600)
        assert len(outbox(accounts_env)) == 1

        await pilot.press("m")
        await notified(pilot, app, "credentials sent: ada <ada@example.edu>")
        assert len(outbox(accounts_env)) == 2


async def test_delete_refuses_the_last_admin(accounts_env):
    app = accounts_env.app(views=views())
    async with app.run_test(size=SIZE) as pilot:
        view = await open_accounts(pilot, app)
        await select(pilot, view, "root")
        await pilot.press("ctrl+d", "y")
        message = await notified(pilot, app, "last admin")
        assert "root is the last admin" in message
        assert accounts_env.backends.accounts.get("root") is not None
        await select(pilot, view, "bob")
        await pilot.press("ctrl+d", "n")
        assert accounts_env.backends.accounts.get("bob") is not None
        await pilot.press("ctrl+d", "y")
        await notified(pilot, app, "deleted bob")
        await wait_for(pilot, lambda: "bob" not in rows(app), what="bob gone from the table")


def seed_picture(env) -> None:
    """The demo evening's accounts plus staff, names, a revoked one and mailed dates: fixed for the picture."""
    b = env.backends
    people = [("root", "admin", "staff", "Rai", "Admin"), ("tia", "ta", "staff", "Tia", "Assistant")]
    for username, role, team, first, last in people:
        b.accounts.add(Account(username=username, email=f"{username}@example.edu", role=role, team=team,
                               firstname=first, lastname=last, access_key=f"AKDEMO{username.upper():0<14}"[:22],
                               secret_key=f"demo-{username}", credentials_sent_at=SENT))
    names = {"ada": "Ada Lovelace", "grace": "Grace Hopper", "linus": "Linus Torvalds", "barbara": "Barbara Liskov",
             "alan": "Alan Turing", "margaret": "Margaret Hamilton", "ken": "Ken Thompson",
             "dennis": "Dennis Ritchie"}
    for i, a in enumerate(b.accounts.list()):
        if a.username in names:
            a.firstname, a.lastname = names[a.username].split()
            a.affiliation = "ECE 408"
            if i % 3 != 2:
                a.credentials_sent_at = SENT
        if a.username == "ken":
            a.revoked = True
        b.accounts.update(a)


def test_accounts_snapshot(demo_env, demo_app, snap_compare):
    seed_picture(demo_env)
    app = demo_app(views=views())

    async def run_before(pilot) -> None:
        view = await open_accounts(pilot, app)
        await wait_for(pilot, lambda: view.table.row_count == len(demo_env.backends.accounts.list()),
                       what="every account")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_roster_import_snapshot(demo_env, demo_app, snap_compare, tmp_path):
    demo_env.config.email.outbox = str(tmp_path / "outbox")
    roster = Path("/tmp/rai-demo/roster.csv")  # a fixed path: it shows in the picture
    roster.parent.mkdir(parents=True, exist_ok=True)
    roster.write_bytes(ROSTER.read_bytes())
    app = demo_app(views=views())

    async def run_before(pilot) -> None:
        await open_accounts(pilot, app)
        await pilot.press("i")
        screen = app.screen
        screen.query_one("#roster-path").value = str(roster)
        await pilot.click("#roster-start")
        await wait_for(pilot, lambda: screen.result is not None, what="the import to end")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
