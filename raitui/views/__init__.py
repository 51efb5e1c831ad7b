"""The console's views, in tab order (number keys 1, 2, ...). Adding a view: one module, one line here."""

from __future__ import annotations

from importlib import import_module

from raitui.views.base import View

VIEWS: tuple[str, ...] = (
    "raitui.views.jobs:JobsView",
    "raitui.views.queue:QueueView",
    "raitui.views.nodes:NodesView",
    "raitui.views.daemon:DaemonView",
    "raitui.views.accounts:AccountsView",
    "raitui.views.rankings:RankingsView",
    "raitui.views.users:UsersView",
)


def load_views() -> list[type[View]]:
    classes = []
    for spec in VIEWS:
        module, _, name = spec.partition(":")
        cls = getattr(import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, View)) or not cls.view_name:
            raise TypeError(f"{spec} is not a raitui View with a view_name")
        classes.append(cls)
    return classes
