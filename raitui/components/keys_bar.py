"""The keys line at the bottom: what the focused view's keys do, one line, one widget.

Textual's Footer builds a widget per key and rebuilds them all on every focus change, which cost a
view switch ~50 ms here; this draws the same line as text. Keys are clickable.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class KeysBar(Static):
    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self.show_keys)

    def _bindings_changed(self, _screen) -> None:
        if self.is_attached:
            self.show_keys()

    def show_keys(self) -> None:
        seen: set[str] = set()
        parts: list[Content] = []
        palette = None
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.action == "command_palette":
                palette = binding
                continue
            if not binding.show or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            key = self.app.get_key_display(binding)
            style = "bold $accent" if enabled else "$text-disabled"
            parts.append(Content.from_markup(
                f"[@click=app.simulate_key({binding.key.split(',')[0]!r})][{style}]$key[/][/] $description",
                key=key, description=binding.description))
        line = Content("  ").join(parts)
        if palette is not None:
            key = self.app.get_key_display(palette)
            hint = Content.from_markup("[bold $accent]$key[/] palette", key=key)
            gap = max(2, self.size.width - line.cell_length - hint.cell_length - 2)
            line = line + Content(" " * gap) + hint
        self.update(line, layout=False)

    def on_resize(self) -> None:
        self.show_keys()
