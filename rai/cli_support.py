"""What every command-line program shares: user errors as messages, not tracebacks."""

from __future__ import annotations

import sys

import click

from rai.errors import UserError


def run_cli(cli: click.Command, args: list[str] | None = None) -> None:
    try:
        rc = cli.main(args=args, standalone_mode=False)
    except UserError as e:
        click.secho(f"error: {e.message}", fg="red", err=True)
        if e.hint:
            click.echo(f"  hint: {e.hint}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
