"""`rai-keygen`: accounts and their credentials.

Exit codes: 0 done, 1 something failed (a roster row skipped, a mail not sent), 2 bad input,
3 a service does not answer, 4 no such account, 130 interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from keygen import accounts as lifecycle
from keygen.mailing import CredentialsRun, SendOutcome
from keygen.roster import ImportReport, import_roster, read_roster
from rai.backends import Backends
from rai.cli_support import run_cli
from rai.client.profile import Profile, write_profile
from rai.config import load_config
from rai.domain.models import Account
from rai.errors import UserError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _roles(b: Backends) -> list[str]:
    return list(b.config.roles)


def _check_output(output: Path | None, force: bool) -> None:
    """Refuse to replace an existing file at `output` unless `force`: called before anything is changed,
    so a refused command creates, rotates and writes nothing."""
    if output is None:
        return
    target = output.expanduser()
    if target.is_dir():
        raise UserError(f"{output} is a directory", hint="give --output a file path, e.g. ~/.rai_profile")
    if (target.exists() or target.is_symlink()) and not force:
        raise UserError(f"{output} exists; it was left as it is",
                        hint="pass --force to overwrite it, or another --output path")


def _emit_profile(account: Account, output: Path | None, what: str) -> None:
    profile = Profile.from_account(account)
    if output:
        write_profile(profile, output)
        err.print(f"{what}; profile written to {output} (mode 0600)")
    else:
        click.echo(profile.to_yaml(), nl=False)


def _report_sends(outcomes: list[SendOutcome]) -> int:
    for o in outcomes:
        colour = {"sent": "green", "failed": "red"}.get(o.status, "yellow")
        err.print(f"[{colour}]{o.status}[/] {o.username} <{o.email}>" + (f": {o.message}" if o.message else ""))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RAI_CONFIG", help="config file (default ~/.rai_config.yml)")
@click.pass_context
def cli(ctx: click.Context, config_path) -> None:
    """Create and manage rai accounts."""
    ctx.obj = Backends(load_config(config_path))


@cli.command("import")
@click.argument("roster", type=click.Path(path_type=Path))
@click.option("--send", is_flag=True, help="mail each new account its credentials")
@click.option("--resend", is_flag=True,
              help="also mail existing accounts whose current credentials were never mailed (failed before)")
@click.option("--dry-run", is_flag=True, help="check the roster and show what would happen; write and send nothing")
@click.pass_obj
def import_cmd(b: Backends, roster: Path, send: bool, resend: bool, dry_run: bool) -> int:
    """Create an account for every row of ROSTER (CSV: lastname,firstname,username,email,role,affiliation,team)."""
    parsed = read_roster(roster, _roles(b))
    mailing = CredentialsRun.from_backends(b, dry_run=dry_run) if (send or resend) else None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("importing", total=len(parsed.rows) + len(parsed.problems))

        def on_row(done: int, total: int, outcome) -> None:
            progress.update(task, completed=done, description=f"importing {outcome.username or '...'}")

        report = import_roster(parsed, b.accounts, _roles(b), mailing, resend=resend, dry_run=dry_run, on_row=on_row)
    print_import_report(report)
    return 0 if report.ok else 1


def print_import_report(report: ImportReport) -> None:
    notes = [o for o in report.outcomes if o.failed or o.message]
    if notes:
        table = Table(title="rows to look at", title_justify="left")
        for col in ("line", "username", "account", "mail", "what"):
            table.add_column(col)
        for o in notes:
            colour = "red" if o.failed else "yellow"
            table.add_row(str(o.line), o.username or "-", o.account, o.mail or "-", f"[{colour}]{o.message}[/]")
        out.print(table)
    counts = report.summary()
    title = "dry run: nothing written, nothing sent" if report.dry_run else f"imported {report.source}"
    summary = Table(title=title, title_justify="left")
    labels = {"created": "would create", "sent": "would send"} if report.dry_run else {}
    for k in counts:
        summary.add_column(labels.get(k, k), justify="right")
    summary.add_row(*(f"[red]{v}[/]" if k in ("skipped", "failed") and v else str(v) for k, v in counts.items()))
    out.print(summary)
    if counts["failed"]:
        err.print("some mails were not sent: fix the cause, then run the same import with --resend")


@cli.command()
@click.option("--username", required=True)
@click.option("--email", required=True)
@click.option("--team")
@click.option("--role", default="student", show_default=True)
@click.option("--firstname", default="")
@click.option("--lastname", default="")
@click.option("--affiliation", default="")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="write the new .rai_profile here (0600)")
@click.option("--force", is_flag=True, help="with --output: overwrite an existing file")
@click.option("--send", is_flag=True, help="mail the credentials to the new account")
@click.pass_obj
def add(b: Backends, username, email, team, role, firstname, lastname, affiliation, output, force, send) -> int:
    """Create one account with fresh keys (prints its profile unless -o or --send)."""
    _check_output(output, force)  # before the account exists: a refusal creates nothing
    mailing = CredentialsRun.from_backends(b) if send else None  # a bad mail setup stops us before creating
    account = lifecycle.create_account(b.accounts, _roles(b), username, email, team=team, role=role,
                                       firstname=firstname, lastname=lastname, affiliation=affiliation)
    if output or not send:
        _emit_profile(account, output, f"created {account.username} ({account.role})")
    else:
        err.print(f"created {account.username} ({account.role})")
    return _report_sends([mailing.send(account)]) if mailing else 0


@cli.command("list")
@click.option("--role", help="only accounts with this role")
@click.option("--team", help="only accounts in this team")
@click.option("--json", "as_json", is_flag=True, help="JSON, one object per account (secret keys left out)")
@click.pass_obj
def list_cmd(b: Backends, role, team, as_json) -> int:
    """List the accounts."""
    rows = b.accounts.list(role=role, team=team)
    if as_json:
        click.echo(json.dumps([public(a) for a in rows], indent=2))
        return 0
    table = Table(title=f"{len(rows)} accounts", title_justify="left")
    for col in ("username", "name", "email", "role", "team", "state", "credentials mailed"):
        table.add_column(col)
    for a in rows:
        table.add_row(a.username, f"{a.firstname} {a.lastname}".strip(), a.email, a.role, a.team or "-",
                      "[red]revoked[/]" if a.revoked else "active", _when(a.credentials_sent_at))
    out.print(table)
    return 0


def public(account: Account) -> dict:
    """The account as JSON, without its secret key."""
    return account.model_dump(mode="json", exclude={"secret_key"})


def _when(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else "-"


@cli.command()
@click.argument("username", required=False)
@click.option("-e", "--email", help="find the account by email")
@click.option("--access-key", help="find who owns this access key")
@click.option("--profile", "show_profile", is_flag=True, help="print the account's .rai_profile (with its secret)")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="write the account's .rai_profile here (0600)")
@click.option("--force", is_flag=True, help="with --output: overwrite an existing file")
@click.pass_obj
def show(b: Backends, username, email, access_key, show_profile, output, force) -> int:
    """Show one account: by USERNAME, --email or --access-key (the original's `getkey`)."""
    if sum(bool(x) for x in (username, email, access_key)) != 1:
        raise click.UsageError("name exactly one of USERNAME, --email or --access-key")
    _check_output(output, force)
    account = lifecycle.find(b.accounts, username=username, email=email, access_key=access_key)
    if show_profile or output:
        _emit_profile(account, output, f"{account.username}")
        return 0
    table = Table(show_header=False, box=None)
    for k, v in public(account).items():
        if k != "v":
            table.add_row(f"[bold]{k}[/]", "-" if v in (None, "") else str(v))
    out.print(table)
    return 0


@cli.command("revoke")
@click.argument("username")
@click.pass_obj
def revoke_cmd(b: Backends, username) -> int:
    """Refuse USERNAME's key from now on, queued jobs included."""
    account = lifecycle.revoke(b.accounts, username)
    err.print(f"revoked {account.username}: their next job is refused, queued ones included")
    return 0


@cli.command("rotate")
@click.argument("username")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="write the new .rai_profile here (0600)")
@click.option("--force", is_flag=True, help="with --output: overwrite an existing file")
@click.option("--send", is_flag=True, help="mail the new profile to the account's email")
@click.pass_obj
def rotate_cmd(b: Backends, username, output, force, send) -> int:
    """Give USERNAME a new secret key; the old one is refused at once (queued jobs included)."""
    _check_output(output, force)  # before the key changes: a refusal rotates nothing
    mailing = CredentialsRun.from_backends(b) if send else None
    account = lifecycle.rotate(b.accounts, username)
    if output or not send:
        _emit_profile(account, output, f"rotated {account.username}")
    else:
        err.print(f"rotated {account.username}")
    return _report_sends([mailing.send(account)]) if mailing else 0


@cli.command("send")
@click.argument("usernames", nargs=-1, required=True)
@click.pass_obj
def send_cmd(b: Backends, usernames) -> int:
    """Mail the current credentials to each USERNAME, whether mailed before or not."""
    found = [lifecycle.require(b.accounts, u) for u in usernames]  # all exist, or nothing is sent
    mailing = CredentialsRun.from_backends(b)
    return _report_sends([mailing.send(a) for a in found])


@cli.command("delete")
@click.argument("username")
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
@click.pass_obj
def delete_cmd(b: Backends, username, yes) -> int:
    """Delete USERNAME's account (refused for the last admin). Their job records stay."""
    account = lifecycle.require(b.accounts, username)
    if not yes:
        click.confirm(f"delete {account.username} <{account.email}>?", abort=True, err=True)
    lifecycle.delete(b.accounts, account.username)
    err.print(f"deleted {account.username}")
    return 0


def main() -> None:
    run_cli(cli)
