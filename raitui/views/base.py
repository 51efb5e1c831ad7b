"""What every top-level view of the console is: a named pane that shows the latest cluster snapshot."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from textual.containers import Container

from raitui.data import ClusterSnapshot, describe_error

if TYPE_CHECKING:
    from raitui.app import RaiConsole

Loaded = TypeVar("Loaded")


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


class ReloadingView(View, Generic[Loaded]):
    """A view that reads its own data in a worker thread while it is shown: at most every `reload_every`
    seconds (on the snapshot's tick), at once when it becomes visible or after an action (`reload`); one
    read at a time. Subclasses say what to read (`read`, on a thread; it may block and raise) and how
    to show it (`show_loaded`, on the UI thread); a failed read leaves the last data and sets `error`."""

    reload_every: ClassVar[float] = 3.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error: str | None = None
        self._loaded_at = 0.0
        self._loading = False

    def read(self) -> Loaded | None:
        """What to show, read from `self.console.data`; None: nothing to read now. Runs in a thread."""
        raise NotImplementedError

    def loaded(self, value: Loaded) -> None:
        """Keep what `read` returned (UI thread); `show_loaded` follows."""

    def show_loaded(self) -> None:
        """Show what was loaded, or `error` (UI thread)."""

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        if time.monotonic() - self._loaded_at > self.reload_every:
            self.reload()

    def on_shown(self) -> None:
        self.reload()
        super().on_shown()

    def reload(self) -> None:
        if not self._loading:
            self._loading = True
            self.run_worker(self._load, thread=True, exclusive=True, group=f"{self.view_name}-load")

    def _load(self) -> None:
        try:
            value, error = self.read(), None
        except Exception as e:  # shown in the view, never raised
            value, error = None, describe_error(e)
        self.app.call_from_thread(self._loaded, value, error)

    def _loaded(self, value: Loaded | None, error: str | None) -> None:
        self._loading = False
        self._loaded_at = time.monotonic()
        self.error = error
        if value is not None:
            self.loaded(value)
        self.show_loaded()
