"""The new-account form: fields checked as they are typed, the account created in a worker thread.

`create(fields, send)` does the work (the Accounts view passes keygen's `create_account`, plus the
mail when asked); its UserError shows under the form, which stays open. Dismissed with the message
of what was done, or None (esc).
"""

from __future__ import annotations

from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from keygen.accounts import check_email, check_username, normalize_username
from rai.errors import UserError

FIELDS: tuple[tuple[str, str, str], ...] = (  # (field, label, placeholder)
    ("username", "Username", "lowercase: ada, ada.lovelace, al-2"),
    ("email", "Email", "ada@example.edu"),
    ("firstname", "First name", ""),
    ("lastname", "Last name", ""),
    ("team", "Team", "optional"),
    ("affiliation", "Affiliation", "optional"),
)


class NewAccountScreen(ModalScreen[str | None]):
    CSS_PATH = "accounts.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "create", "Create"),
    ]

    def __init__(self, roles: list[str], create: Callable[[dict, bool], str]) -> None:
        super().__init__()
        self.roles = roles
        self.create = create
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="account-form", classes="accounts-modal"):
            yield Static("New account", classes="modal-title")
            for name, label, placeholder in FIELDS:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(placeholder=placeholder, id=f"field-{name}", classes="form-input")
            with Horizontal(classes="form-row"):
                yield Label("Role", classes="form-label")
                default = "student" if "student" in self.roles else self.roles[0]
                yield Select([(r, r) for r in self.roles], value=default, allow_blank=False, id="field-role",
                             classes="form-input")
            yield Checkbox("Mail the credentials (.rai_profile) now", value=True, id="field-send")
            yield Static("", id="form-error")
            with Horizontal(classes="modal-buttons"):
                yield Button("Create (ctrl+s)", id="form-create", variant="primary")
                yield Button("Cancel (esc)", id="form-cancel")

    def on_mount(self) -> None:
        self.query_one("#field-username", Input).focus()

    def values(self) -> dict[str, str | None]:
        fields: dict[str, str | None] = {name: self.query_one(f"#field-{name}", Input).value.strip()
                                         for name, _, _ in FIELDS}
        fields["username"] = normalize_username(fields["username"] or "")
        fields["role"] = str(self.query_one("#field-role", Select).value)
        fields["team"] = fields["team"] or None
        return fields

    def problems(self) -> list[str]:
        v = self.values()
        found = []
        if not v["username"]:
            found.append("the username is required")
        elif problem := check_username(v["username"]):
            found.append(problem)
        if not v["email"]:
            found.append("the email is required")
        elif problem := check_email(v["email"]):
            found.append(problem)
        return found

    def show_error(self, text: str) -> None:
        box = self.query_one("#form-error", Static)
        box.update(text)
        box.set_class(bool(text), "visible")

    @on(Input.Changed)
    def _recheck(self, event: Input.Changed) -> None:
        if event.input.id in ("field-username", "field-email") and self.query_one("#form-error", Static).has_class(
                "visible"):
            self.show_error("\n".join(self.problems()))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_create()

    @on(Button.Pressed, "#form-create")
    def _create_pressed(self) -> None:
        self.action_create()

    @on(Button.Pressed, "#form-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def action_create(self) -> None:
        if self.busy:
            return
        problems = self.problems()
        if problems:
            self.show_error("\n".join(problems))
            return
        self.busy = True
        self.show_error("")
        self.query_one("#form-create", Button).disabled = True
        self._create(self.values(), self.query_one("#field-send", Checkbox).value)

    @work(thread=True, group="account-form")
    def _create(self, fields: dict, send: bool) -> None:
        try:
            message, error = self.create(fields, send), None
        except UserError as e:
            message, error = None, e.message + (f" ({e.hint})" if e.hint else "")
        except Exception as e:  # the backend failed: say so in the form, keep what was typed
            message, error = None, f"could not create the account: {e}"
        self.app.call_from_thread(self._done, message, error)

    def _done(self, message: str | None, error: str | None) -> None:
        self.busy = False
        if error is not None:
            self.query_one("#form-create", Button).disabled = False
            self.show_error(error)
            return
        self.dismiss(message)
