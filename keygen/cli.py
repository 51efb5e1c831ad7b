"""`rai-keygen`: accounts and their credentials."""

from __future__ import annotations

from pathlib import Path

import click

from keygen.accounts import create_account, revoke, rotate
from rai.backends import Backends
from rai.cli_support import run_cli
from rai.config import load_config
from rai.profile import Profile, write_profile


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RAI_CONFIG", help="config file (default ~/.rai_config.yml)")
@click.pass_context
def cli(ctx: click.Context, config_path) -> None:
    """Create and manage rai accounts."""
    ctx.obj = Backends(load_config(config_path))


@cli.command()
@click.option("--username", required=True)
@click.option("--email", required=True)
@click.option("--team")
@click.option("--role", default="student", show_default=True)
@click.option("--firstname", default="")
@click.option("--lastname", default="")
@click.option("--affiliation", default="")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="write the new .rai_profile here (0600)")
@click.pass_obj
def add(b: Backends, username, email, team, role, firstname, lastname, affiliation, output) -> int:
    """Create one account with fresh keys."""
    account = create_account(b.accounts, list(b.config.roles), username, email, team=team, role=role,
                             firstname=firstname, lastname=lastname, affiliation=affiliation)
    profile = Profile.from_account(account)
    if output:
        write_profile(profile, output)
        click.echo(f"created {username} ({role}); profile written to {output}", err=True)
    else:
        click.echo(profile.to_yaml())
    return 0


@cli.command("revoke")
@click.argument("username")
@click.pass_obj
def revoke_cmd(b: Backends, username) -> int:
    """Refuse USERNAME's key from now on, queued jobs included."""
    revoke(b.accounts, username)
    click.echo(f"revoked {username}: their next job is refused", err=True)
    return 0


@cli.command("rotate")
@click.argument("username")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="write the new .rai_profile here (0600)")
@click.pass_obj
def rotate_cmd(b: Backends, username, output) -> int:
    """Give USERNAME a new secret key; the old one is refused at once."""
    account = rotate(b.accounts, username)
    profile = Profile.from_account(account)
    if output:
        write_profile(profile, output)
        click.echo(f"rotated {username}; new profile written to {output}", err=True)
    else:
        click.echo(profile.to_yaml())
    return 0


def main() -> None:
    run_cli(cli)
