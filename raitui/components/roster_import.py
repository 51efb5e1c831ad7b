"""Import a roster from the console: the same `keygen.roster.import_roster` as `rai-keygen import`,
in a worker thread, with a live progress bar, the rows to look at as they come, and the summary.

Dismissed with a one-line summary of what was done (None when nothing ran).
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Input, Label, ProgressBar, Static

from keygen.roster import ImportReport, RowOutcome
from rai.errors import UserError
from raitui.account_desk import AccountDesk


def summary_line(report: ImportReport) -> str:
    counts = report.summary()
    if report.dry_run:
        return ("dry run, nothing written: {created} to create, {existing} existing, {skipped} skipped, "
                "{sent} to mail").format(**counts)
    return "{created} created, {existing} existing, {skipped} skipped, {sent} mailed, {failed} failed".format(**counts)


class RosterImportScreen(ModalScreen[str | None]):
    CSS_PATH = "accounts.tcss"
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, desk: AccountDesk, path: str = "") -> None:
        super().__init__()
        self.desk = desk
        self.path = path
        self.running = False
        self.result: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="roster-import", classes="accounts-modal"):
            yield Static("Import a roster", classes="modal-title")
            yield Static("CSV with a header row: lastname, firstname, username, email, role, affiliation, team. "
                         "Existing accounts are left alone.", classes="modal-help")
            with Horizontal(classes="form-row"):
                yield Label("Roster file", classes="form-label")
                yield Input(value=self.path, placeholder="/path/to/roster.csv", id="roster-path",
                            classes="form-input")
            with Horizontal(id="roster-options"):
                yield Checkbox("Mail new accounts", value=True, id="roster-send")
                yield Checkbox("Resend unsent", id="roster-resend")
                yield Checkbox("Dry run", id="roster-dry-run")
            yield ProgressBar(total=None, show_eta=False, id="roster-progress")
            yield Static("", id="roster-status")
            table: DataTable[Text | str] = DataTable(id="roster-rows", cursor_type="none", zebra_stripes=True)
            table.border_title = "rows to look at"
            yield table
            with Horizontal(classes="modal-buttons"):
                yield Button("Import", id="roster-start", variant="primary")
                yield Button("Close (esc)", id="roster-close")

    def on_mount(self) -> None:
        table = self.query_one("#roster-rows", DataTable)
        for label, width in (("LINE", 4), ("USER", 10), ("ACCOUNT", 12), ("MAIL", 10), ("WHAT", 56)):
            table.add_column(label, width=width)
        table.display = False
        self.query_one("#roster-path", Input).focus()

    @on(Input.Submitted, "#roster-path")
    @on(Button.Pressed, "#roster-start")
    def start(self) -> None:
        if self.running:
            return
        path = self.query_one("#roster-path", Input).value.strip()
        if not path:
            self.set_status("name the roster file first", error=True)
            return
        self.running = True
        self.query_one("#roster-start", Button).disabled = True
        table = self.query_one("#roster-rows", DataTable)
        table.clear()
        table.display = False
        self.set_status(f"reading {path}…")
        self._import(path, self.query_one("#roster-send", Checkbox).value,
                     self.query_one("#roster-resend", Checkbox).value,
                     self.query_one("#roster-dry-run", Checkbox).value)

    @work(thread=True, exclusive=True, group="roster-import")
    def _import(self, path: str, send: bool, resend: bool, dry_run: bool) -> None:
        call = self.app.call_from_thread
        try:
            report = self.desk.import_roster(path, send, resend, dry_run, lambda total: call(self._started, total),
                                             lambda done, total, outcome: call(self._row, done, outcome))
        except UserError as e:
            call(self._finished, None, e.message + (f" ({e.hint})" if e.hint else ""))
        except Exception as e:  # the backend failed midway: say so, keep the console up
            call(self._finished, None, f"the import stopped: {e}")
        else:
            call(self._finished, report, None)

    def _started(self, total: int) -> None:
        self.query_one("#roster-progress", ProgressBar).update(total=total, progress=0)
        self.set_status(f"importing {total} rows…")

    def _row(self, done: int, outcome: RowOutcome) -> None:
        self.query_one("#roster-progress", ProgressBar).update(progress=done)
        self.set_status(f"line {outcome.line}: {outcome.username or '?'} {outcome.account}"
                        + (f", mail {outcome.mail}" if outcome.mail else ""))
        if outcome.failed or outcome.message:
            table = self.query_one("#roster-rows", DataTable)
            table.display = True
            style = "#ff6b6b" if outcome.failed else "#e6b34a"
            table.add_row(str(outcome.line), outcome.username or "-", outcome.account, outcome.mail or "-",
                          Text(outcome.message, style=style))

    def _finished(self, report: ImportReport | None, error: str | None) -> None:
        self.running = False
        self.query_one("#roster-start", Button).disabled = False
        if error is not None or report is None:
            self.set_status(error or "the import did not finish", error=True)
            return
        line = summary_line(report)
        self.result = f"{report.source}: {line}"
        counts = report.summary()
        if counts["skipped"]:
            line += "; the rows below were skipped"
        if counts["failed"]:
            line += "; fix the mail setup, then import again with 'Resend unsent'"
        self.set_status(line, error=not report.ok)

    def set_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#roster-status", Static)
        status.update(text)
        status.set_class(error, "error")

    @on(Button.Pressed, "#roster-close")
    def action_close(self) -> None:
        if self.running:
            self.app.notify("the import is still running; it closes when done", severity="warning")
            return
        self.dismiss(self.result)
