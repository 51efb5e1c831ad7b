"""`rai-admin`: staff commands on the server side that are not about accounts (those are `rai-keygen`).

Reads the database with the server's config, so it shows real team names.

    rai-admin projects                                              the ranked projects the config defines
    rai-admin ranking show   [--project P] [--kind K] [-n N]        the leaderboard with real team names
    rai-admin ranking export [--project P] [--kind K] [--all] -o FILE.csv   for grading (-o - : stdout)
    rai-admin usage [--since 7d] [--by user|team|node] [--csv]    jobs, job-hours, GPU-hours, failures, waits

Exit codes: 0 done, 2 bad input, 3 a service does not answer.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import IO

import click
from rich import box
from rich.console import Console
from rich.table import Table

from rai.backends import Backends
from rai.cli_support import run_cli
from rai.config import load_config
from rai.domain.accounting import GROUPS, total, usage
from rai.domain.accounting import write_csv as write_usage_csv
from rai.domain.leaderboard import label_secret, load_board, team_label, team_members, write_csv
from rai.domain.models import utcnow
from rai.domain.projects import ranked_kinds
from rai.errors import UserError
from rai.units import parse_duration

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)
USAGE_LIMIT = 10_000_000  # job records read for one usage report: all of them, for any real period


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RAI_CONFIG", help="config file (default ~/.rai_config.yml)")
@click.pass_context
def cli(ctx: click.Context, config_path) -> None:
    """Staff commands: ranked projects, their leaderboards, usage accounting."""
    ctx.obj = Backends(load_config(config_path))


@cli.command()
@click.pass_obj
def projects(b: Backends) -> int:
    """List the ranked projects and kinds the config defines (and so checks it)."""
    kinds = ranked_kinds(b.config.projects)
    if not kinds:
        err.print("no ranked projects: add a projects: section to the config (see the README)")
        return 0
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for c in ("kind", "image", "commands", "required files", "result", "metric", "valid when", "counts"):
        table.add_column(c)
    for k in kinds:
        source = (f"/build/{k.result.file}" if k.result.file
                  else f"{len(k.result.patterns)} patterns ({k.result.stream})")
        rules = ", ".join(f"{key} {_rule(c)}" for key, c in k.valid.items()) or "-"
        table.add_row(k.name, k.spec.rai.image, str(len(k.spec.commands.build)), ", ".join(k.required_files) or "-",
                      source, f"{k.metric} ({'lower' if k.lower_is_better else 'higher'} is better)", rules, k.counts)
    out.print(table)
    return 0


def _rule(c) -> str:
    parts = [f"≥ {c.min:g}" if c.min is not None else "", f"≤ {c.max:g}" if c.max is not None else "",
             f"= {c.equals}" if c.equals is not None else ""]
    return " and ".join(p for p in parts if p)


@cli.group()
def ranking() -> None:
    """Leaderboards with real team names: show, export for grading."""


@ranking.command()
@click.option("--project", help="the ranked project (needed when there are several)")
@click.option("--kind", help="the submission kind (default the project's last)")
@click.option("-n", "limit", type=click.IntRange(1), help="only the first N teams")
@click.pass_obj
def show(b: Backends, project, kind, limit) -> int:
    """The leaderboard with real team names, their members and anonymous labels."""
    board = load_board(b.db, b.config.projects, project, kind)
    k = board.kind
    members = team_members(b.accounts)
    secret = label_secret(b.config)
    out.print(f"[bold]{k.name}[/] — {k.metric}, {'lower' if k.lower_is_better else 'higher'} is better; "
              f"{len(board.rows)} teams ranked, {len(board.entries)} results recorded")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for c in ("rank", "team", "members", k.metric, "results", "job", "by", "recorded", "label"):
        table.add_column(c, justify="right" if c in ("rank", "results") else "left", no_wrap=c != "members")
    for s in board.rows[:limit]:
        table.add_row(str(s.rank), s.team, " ".join(members.get(s.team, [])), f"{s.entry.value:g}",
                      str(s.valid_results), s.entry.job_id, s.entry.username,
                      s.entry.at.strftime("%Y-%m-%d %H:%M"), team_label(secret, s.team))
    out.print(table)
    return 0


@ranking.command()
@click.option("--project", help="the ranked project (needed when there are several)")
@click.option("--kind", help="the submission kind (default the project's last)")
@click.option("-o", "--output", required=True, help="the CSV file to write; - for stdout")
@click.option("--all", "every", is_flag=True, help="every recorded result (valid or not), not one row per team")
@click.pass_obj
def export(b: Backends, project, kind, output, every) -> int:
    """Write the leaderboard as CSV for grading: rank, team, members, value, job, ... one row per team."""
    board = load_board(b.db, b.config.projects, project, kind)
    entries, secret, members = board.entries if every else None, label_secret(b.config), team_members(b.accounts)

    def write(f: IO[str]) -> int:
        return write_csv(f, board.kind.project, board.kind.kind, board.rows, entries=entries, label_secret=secret,
                         members=members)

    if output == "-":
        write(sys.stdout)
        return 0
    path = Path(output)
    with open(path, "w", newline="") as f:
        n = write(f)
    err.print(f"{n} rows of {board.kind.name} written to {path}")
    return 0


@cli.command("usage")
@click.option("--since", default="7d", show_default=True, help="the period: jobs submitted this long ago or later")
@click.option("--by", type=click.Choice(sorted(GROUPS)), default="user", show_default=True, help="one row per ...")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout instead of a table")
@click.pass_obj
def usage_cmd(b: Backends, since, by, as_csv) -> int:
    """Accounting from the job records, as sacct/sreport: jobs, job-hours, GPU-hours, failures, median wait."""
    try:
        period = parse_duration(since)
    except ValueError:
        raise UserError(f"--since {since!r} is not a duration", hint="write it like 7d, 12h or 30m") from None
    start = utcnow() - timedelta(seconds=period)
    rows = usage(b.db.list_jobs(limit=USAGE_LIMIT, since=start), by=by)
    if as_csv:
        write_usage_csv(sys.stdout, rows)
        return 0
    if not rows:
        err.print(f"no jobs submitted since {start:%Y-%m-%d %H:%M} UTC")
        return 0
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, show_footer=True)
    sums = total(rows)
    for c, foot in ((by, "total"), ("jobs", str(sums.jobs)), ("job-hours", f"{sums.job_hours:.2f}"),
                    ("GPU-hours", f"{sums.gpu_hours:.2f}"), ("failures", str(sums.failures)),
                    ("median wait", _wait(sums.median_wait))):
        table.add_column(c, footer=foot, justify="left" if c == by else "right")
    for u in rows:
        table.add_row(u.key, str(u.jobs), f"{u.job_hours:.2f}", f"{u.gpu_hours:.2f}", str(u.failures),
                      _wait(u.median_wait))
    out.print(f"[bold]usage since {start:%Y-%m-%d %H:%M} UTC[/] by {by}")
    out.print(table)
    return 0


def _wait(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def main() -> None:
    run_cli(cli)
