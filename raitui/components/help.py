"""`?`: every key of the console, by view, taken from the bindings themselves so it never goes stale."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from raitui.format import DIM


def key_name(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    names = {"question_mark": "?", "colon": ":", "slash": "/", "escape": "esc", "enter": "enter"}
    return ", ".join(names.get(k, k) for k in binding.key.split(","))


def keys_table(title: str, bindings: list[Binding], note: str = "") -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(width=14, style="bold #5fafff")
    table.add_column()
    table.add_row(Text(title, style="bold underline"), Text(note, style=DIM))
    for b in bindings:
        if b.description:
            table.add_row(key_name(b), b.description)
    table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "app.pop_screen", "Close"),
    ]

    def __init__(self, sections: list[tuple[str, list[Binding], str]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "keys  (esc closes)"
            for title, bindings, note in self.sections:
                yield Static(keys_table(title, bindings, note))
