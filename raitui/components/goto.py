"""`:name` jumps to a view, as in k9s: a one-line prompt with completion of the view names."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input


class GotoScreen(ModalScreen[str | None]):
    """Dismissed with the typed view name (without the colon), or None on esc."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Back", show=False)]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        prompt = Input(placeholder=" | ".join(self.names), id="goto-input",
                       suggester=SuggestFromList(self.names, case_sensitive=False))
        prompt.border_title = ":view"
        yield prompt

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip().lstrip(":").lower() or None)
