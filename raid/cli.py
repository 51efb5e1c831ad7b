"""`raid`: the compute node daemon."""

from __future__ import annotations

import logging

import click

from rai import __version__
from rai.cli_support import run_cli
from rai.config import load_config


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RAI_CONFIG", help="config file (default ~/.rai_config.yml)")
@click.option("--workers", type=click.IntRange(1, 256), help="jobs run at once (default raid.workers, 2)")
@click.option("--queue", help="queue to take jobs from (default broker.queue, or rai_<arch>)")
@click.option("--node", help="this node's name (default the host name)")
@click.option("--grace", type=float, default=30.0, show_default=True,
              help="seconds running jobs may finish after SIGTERM before they go back to the queue")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.version_option(__version__, "--version", prog_name="raid")
def cli(config_path, workers, queue, node, grace, verbose) -> int:
    """Take jobs from the queue and run them in containers until SIGTERM."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "docker", "botocore", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = load_config(config_path)
    if queue:
        config.broker.queue = queue
    if node:
        config.raid.node = node
    from raid.daemon import Daemon

    return Daemon(config, workers=workers, grace=grace).serve()


def main() -> None:
    run_cli(cli)
