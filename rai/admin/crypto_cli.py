"""`rai-crypto encrypt|decrypt -s SECRET TEXT`: secrets for config files."""

from __future__ import annotations

import click

from rai import crypto
from rai.cli_support import run_cli


@click.group(help="Encrypt and decrypt secrets for rai config files with the app secret.")
def cli() -> None:
    pass


@cli.command()
@click.option("-s", "--secret", envvar="RAI_APP_SECRET", required=True, help="the app secret")
@click.argument("text")
def encrypt(secret: str, text: str) -> None:
    """Print TEXT encrypted, ready to paste into a config file."""
    click.echo(crypto.encrypt(secret, text))


@cli.command()
@click.option("-s", "--secret", envvar="RAI_APP_SECRET", required=True, help="the app secret")
@click.argument("text")
def decrypt(secret: str, text: str) -> None:
    """Print the plaintext of an encrypted TEXT."""
    click.echo(crypto.decrypt(secret, text))


def main() -> None:
    run_cli(cli)


if __name__ == "__main__":
    main()
