"""Accounts: every account, its role, team and key state; create, import a roster, revoke, rotate, mail.

Everything goes through `keygen` (the same code as `rai-keygen`), in worker threads: the UI thread
never waits for the accounts backend or the mailer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input

from rai.domain.models import Account
from raitui.account_desk import AccountDesk
from raitui.components.account_form import NewAccountScreen
from raitui.components.confirm import ConfirmScreen
from raitui.components.live_table import LiveTable
from raitui.components.roster_import import RosterImportScreen
from raitui.data import describe_error
from raitui.format import BAD, DIM, local
from raitui.views.base import ReloadingView

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("user", "USER", 12),
    ("name", "NAME", 18),
    ("email", "EMAIL", 24),
    ("role", "ROLE", 8),
    ("team", "TEAM", 8),
    ("state", "STATE", 8),
    ("mailed", "MAILED", 11),
    ("key", "ACCESS KEY", 20),
)


class AccountFilter:
    """Words that must all appear in the account; `role:`, `team:`, `state:`, `user:` match one field."""

    FIELDS = ("role", "team", "state", "user")

    def __init__(self, text: str = "") -> None:
        self.text = text.strip()
        self.exact: dict[str, str] = {}
        self.words: list[str] = []
        for token in self.text.lower().split():
            name, sep, value = token.partition(":")
            if sep and name in self.FIELDS:
                self.exact[name] = value
            else:
                self.words.append(token)

    def matches(self, a: Account) -> bool:
        fields = {"role": a.role, "team": a.team or "", "state": state_of(a), "user": a.username}
        if any(fields[k] != v for k, v in self.exact.items()):
            return False
        haystack = " ".join([a.username, a.firstname, a.lastname, a.email, a.role, a.team or "", a.affiliation,
                             a.access_key, state_of(a)]).lower()
        return all(w in haystack for w in self.words)


def state_of(a: Account) -> str:
    return "revoked" if a.revoked else "active"


class AccountsView(ReloadingView[list[Account]]):
    view_name = "accounts"
    title = "Accounts"
    description = "accounts and keys: n new, i import a roster, r revoke, k rotate, m mail credentials"

    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("n", "new_account", "New"),
        Binding("i", "import_roster", "Import roster"),
        Binding("r", "revoke", "Revoke"),
        Binding("k", "rotate", "Rotate key"),
        Binding("m", "send", "Mail credentials"),
        Binding("ctrl+d", "delete", "Delete"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    reload_every = 5.0  # seconds: accounts change rarely, and the backend may be a remote API (Auth0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.accounts: list[Account] = []
        self.account_filter = AccountFilter()

    def compose(self) -> ComposeResult:
        table = LiveTable(COLUMNS, id="accounts-table")
        table.border_title = "accounts"
        yield table
        yield Input(placeholder="filter: words, or role: team: state: user:  (enter keeps, esc clears)",
                    id="accounts-filter", classes="filter")

    def on_mount(self) -> None:
        self.query_one("#accounts-filter", Input).display = False

    @property
    def table(self) -> LiveTable:
        return self.query_one(LiveTable)

    @property
    def desk(self) -> AccountDesk:
        return self.console.data.accounts

    # loading, in a thread (ReloadingView)
    def read(self) -> list[Account]:
        return self.desk.list()

    def loaded(self, value: list[Account]) -> None:
        self.accounts = value

    def show_loaded(self) -> None:
        self.show_accounts()

    def show_accounts(self) -> None:
        shown = [a for a in self.accounts if self.account_filter.matches(a)]
        table = self.table
        table.sync({a.username: self._cells(a) for a in shown}, [a.username for a in shown])
        revoked = sum(a.revoked for a in self.accounts)
        title = f"accounts ({len(shown)} of {len(self.accounts)}" if self.account_filter.text else \
            f"accounts ({len(self.accounts)}"
        table.border_title = title + (f", {revoked} revoked)" if revoked else ")")
        subtitle = f"filter: {self.account_filter.text}" if self.account_filter.text else ""
        if self.error:
            subtitle = f"cannot read the accounts: {self.error}"
        table.border_subtitle = subtitle

    @staticmethod
    def _cells(a: Account) -> tuple[Any, ...]:
        name = f"{a.firstname} {a.lastname}".strip()
        mailed = local(a.credentials_sent_at).strftime("%m-%d %H:%M") if a.credentials_sent_at else None
        return (
            a.username,
            name or Text("-", style=DIM),
            a.email,
            a.role,
            a.team or Text("-", style=DIM),
            Text("revoked", style=BAD) if a.revoked else Text("active", style="#4ec97b"),
            mailed or Text("never", style=DIM),
            Text(a.access_key, style=DIM),
        )

    def selected(self) -> Account | None:
        key = self.table.selected_key()
        return next((a for a in self.accounts if a.username == key), None)

    def _require_selected(self) -> Account | None:
        account = self.selected()
        if account is None:
            self.app.notify("no account selected", severity="warning")
        return account

    # filter
    def action_filter(self) -> None:
        box = self.query_one("#accounts-filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#accounts-filter", Input)
        box.value = ""
        box.display = False
        self.account_filter = AccountFilter()
        self.show_accounts()
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "accounts-filter":
            self.account_filter = AccountFilter(event.value)
            self.show_accounts()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "accounts-filter":
            if not event.value.strip():
                event.input.display = False
            self.table.focus()

    # actions: each one a keygen call in a thread, then a notification and a reload
    def action_new_account(self) -> None:
        self.app.push_screen(NewAccountScreen(self.desk.roles(), self.desk.create), self._after_modal)
    def action_import_roster(self) -> None:
        self.app.push_screen(RosterImportScreen(self.desk), self._after_modal)

    def _after_modal(self, message: str | None) -> None:
        if message:
            self.app.notify(message)
        self.reload()

    def action_revoke(self) -> None:
        a = self._require_selected()
        if a is None:
            return
        if a.revoked:
            self.app.notify(f"{a.username} is already revoked; k rotates the key to let them back in",
                            severity="warning")
            return
        self._confirm(f"Revoke {a.username} <{a.email}>?",
                      "raid refuses their next job from now on, jobs already queued included. "
                      "Rotating the key later lets them back in.", "Revoke",
                      lambda: self.desk.revoke(a.username))

    def action_rotate(self) -> None:
        a = self._require_selected()
        if a is None:
            return
        self._confirm(f"Rotate the key of {a.username}?",
                      f"A new secret key; the old one is refused at once, queued jobs included. The new "
                      f".rai_profile is mailed to {a.email}." + (" This also lifts the revocation." if a.revoked
                                                                   else ""),
                      "Rotate and mail", lambda: self.desk.rotate(a.username))

    def action_send(self) -> None:
        a = self._require_selected()
        if a is not None:
            self._run(lambda: self.desk.send(a.username), f"mailing {a.username}'s credentials to {a.email}…")

    def action_delete(self) -> None:
        a = self._require_selected()
        if a is None:
            return
        self._confirm(f"Delete the account {a.username} <{a.email}>?",
                      "Their key stops working; their job records stay. The last admin cannot be deleted.",
                      "Delete", lambda: self.desk.delete(a.username))

    def _confirm(self, question: str, detail: str, yes: str, act: Callable[[], str]) -> None:
        def answer(ok: bool | None) -> None:
            if ok:
                self._run(act)

        self.app.push_screen(ConfirmScreen(question, detail, yes=yes, no="Keep"), answer)

    def _run(self, act: Callable[[], str], started: str | None = None) -> None:
        if started:
            self.app.notify(started)
        self._act(act)

    @work(thread=True, group="accounts-action")
    def _act(self, act: Callable[[], str]) -> None:
        try:
            message, severity = act(), "information"
        except Exception as e:  # a refused action (the last admin, a mail error) is a message, not a crash
            message, severity = describe_error(e), "error"
        self.app.call_from_thread(self.app.notify, message, severity=severity)
        self.app.call_from_thread(self.reload)
