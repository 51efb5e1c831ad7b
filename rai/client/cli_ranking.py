"""`rai ranking`, `rai history`, `rai submitted`: signed questions rai-server answers (rai/domain/answers.py).

A student sees the leaderboard with the other teams anonymised, their own jobs, and their team's
submissions; the servers decide what that is, from the account, not from anything the client says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from rai.units import format_duration, plural

if TYPE_CHECKING:  # rich and the answers' models load when a command prints, not when `rai` starts
    from datetime import datetime

    from rich.console import Console

    from rai.domain.answers import History, Leaderboard, Submitted


def _out() -> Console:
    """The console the tables go to (stdout); made at its first use, `out` for whoever replaces it."""
    console = globals().get("out")
    if console is None:
        from rich.console import Console

        console = globals()["out"] = Console(highlight=False, soft_wrap=True)
    return console


def __getattr__(name: str):
    if name == "out":
        return _out()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _when(t: datetime | None) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M") if t else "-"


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def _print_table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Every column as wide as its widest cell. On a terminal only the last (a message) is cut to fit its
    width; anywhere else (`rai submitted | cat`, a file) nothing is cut or wrapped: whole values, one row a line."""
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = _out()
    whole = not out.is_terminal
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    widths = [max([Text.from_markup(c).cell_len, *(Text.from_markup(r[i]).cell_len for r in rows)])
              for i, c in enumerate(columns)]
    if not whole:
        widths[-1] = min(widths[-1], max(12, out.width - sum(w + 3 for w in widths[:-1])))
    for c, width in zip(columns, widths, strict=True):
        table.add_column(c, justify="right" if c in ("rank", "results") else "left", no_wrap=True,
                         width=width, overflow="ignore" if whole else "ellipsis")
    for r in rows:
        table.add_row(*r)
    if whole:
        # A console as wide as the table: rich would otherwise lay it out (and crop it) at 80 columns.
        # Without the padding rich leaves at the ends of lines, for grep, cut and diff.
        buf = io.StringIO()
        wide = Console(file=buf, width=sum(w + 3 for w in widths) + 8, highlight=False,
                       color_system=None, soft_wrap=True)
        wide.print(table)
        out.file.write("".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines()))
        out.file.flush()
    else:
        out.print(table)


def _print_json(answer) -> None:
    import json

    click.echo(json.dumps(answer.model_dump(mode="json"), indent=2))


@click.command()
@click.option("--project", help="the ranked project (needed when there are several)")
@click.option("--kind", help="the submission kind (default the project's last, e.g. final)")
@click.option("-n", "limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="show the first N teams")
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
@click.pass_obj
def ranking(obj, project, kind, limit, as_json) -> int:
    """The leaderboard: each team's counting result, your team named, the others anonymised."""
    from rich.markup import escape

    out = _out()
    board: Leaderboard = obj.client().ask("ranking", project=project, kind=kind, limit=limit)
    if as_json:
        _print_json(board)
        return 0
    order = "lower is better" if board.lower_is_better else "higher is better"
    rule = "best" if board.counts == "best" else "latest"
    out.print(f"[bold]{escape(board.project)} {escape(board.kind)}[/] — {escape(board.metric)}, {order}; "
              f"each team's {rule} valid result; "
              f"{plural(board.teams, 'team')}")
    if not board.rows:
        out.print("no valid results yet")
        return 0
    rows = [(str(r.rank), f"[bold]{escape(r.team)} (your team)[/]" if r.yours else escape(r.team), _value(r.value),
             str(r.valid_results), _when(r.at)) for r in board.rows]
    _print_table(("rank", "team", escape(board.metric), "results", "recorded"), rows)
    if board.yours is None:
        out.print("your team has no valid result here yet")
    elif not any(r.yours for r in board.rows):
        out.print(f"your team {escape(board.yours.team)}: rank {board.yours.rank} of {board.teams}, "
                  f"{board.metric} {_value(board.yours.value)}")
    return 0


@click.command()
@click.option("-n", "limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="your last N jobs")
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
@click.pass_obj
def history(obj, limit, as_json) -> int:
    """Your recent jobs: state, time, result."""
    from rich.markup import escape

    out = _out()
    answer: History = obj.client().ask("history", limit=limit)
    if as_json:
        _print_json(answer)
        return 0
    if not answer.rows:
        out.print(f"{answer.username} has no jobs yet")
        return 0
    rows = []
    for r in answer.rows:
        kind = f"{r.project}/{r.submission}" if r.project else (r.submission or "-")
        result = "-" if r.value is None else f"{r.metric} {_value(r.value)}" + ("" if r.valid else " (invalid)")
        rows.append((r.job_id, _when(r.submitted_at), r.state, format_duration(r.duration), escape(kind),
                     escape(result), escape(r.message.replace("\n", " ")) or "-"))
    _print_table(("job", "submitted", "state", "took", "kind", "result", "message"), rows)
    return 0


@click.command()
@click.option("--project", help="only this ranked project")
@click.option("--kind", help="only this submission kind")
@click.option("-n", "limit", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="the last N submissions per kind")
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
@click.pass_obj
def submitted(obj, project, kind, limit, as_json) -> int:
    """Your team's ranked submissions per kind; * marks the one that counts."""
    from rich.markup import escape

    out = _out()
    answer: Submitted = obj.client().ask("submitted", project=project, kind=kind, limit=limit)
    if as_json:
        _print_json(answer)
        return 0
    out.print(f"team [bold]{escape(answer.team)}[/]" if answer.team else "your submissions (you are in no team)")
    for k in answer.kinds:
        rule = "best" if k.counts == "best" else "latest"
        out.print(f"\n[bold]{escape(k.project)} {escape(k.kind)}[/] "
                  f"({escape(k.metric)}; the {rule} valid result counts)")
        if not k.rows:
            out.print("  no submissions yet")
            continue
        rows = []
        for r in k.rows:
            valid = "" if r.valid is None else ("valid" if r.valid else "invalid")
            note = "; ".join(x for x in (valid, r.note) if x) or "-"
            rows.append(("*" if r.counts else "", r.job_id, escape(r.username), _when(r.submitted_at), r.state,
                         _value(r.value), escape(note)))
        _print_table(("", "job", "by", "submitted", "state", escape(k.metric), "note"), rows)
    return 0


COMMANDS = (ranking, history, submitted)
