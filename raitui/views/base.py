"""What every top-level view of the console is: a named pane that shows the latest cluster snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.containers import Container

from raitui.data import ClusterSnapshot

if TYPE_CHECKING:
    from raitui.app import RaiConsole


class View(Container):
    """A view: `name` is what `:name` jumps to, `title` what the tab bar shows.

    The app calls `show_snapshot` with each new snapshot while the view is visible, and once when it
    becomes visible. Views keep their own bindings (shown in the footer and the help screen).
    """

    view_name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line for the help screen and the command palette

    @property
    def console(self) -> RaiConsole:
        return self.app  # type: ignore[return-value]

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        """Show what changed; called on the UI thread."""

    def on_shown(self) -> None:
        """The view just became the visible one: focus what the keys act on."""
        for widget in self.query("*"):
            if widget.focusable:
                widget.focus()
                return
