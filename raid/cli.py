"""`raid`: the compute node daemon; `raid pull IMAGE...` pre-pulls images on the node."""

from __future__ import annotations

import logging
import sys

import click

from rai import __version__
from rai.cli_support import run_cli
from rai.config import load_config


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RAI_CONFIG", help="config file (default ~/.rai_config.yml)")
@click.option("--workers", type=click.IntRange(1, 256), help="jobs run at once (default raid.workers, 2)")
@click.option("--queue", help="queue to take jobs from (default broker.queue, or rai_<arch>)")
@click.option("--node", help="this node's name (default the host name)")
@click.option("--grace", type=float, default=30.0, show_default=True,
              help="seconds running jobs may finish after SIGTERM before they go back to the queue")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.version_option(__version__, "--version", prog_name="raid")
@click.pass_context
def cli(ctx: click.Context, config_path, workers, queue, node, grace, verbose) -> int | None:
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
    ctx.obj = config
    if ctx.invoked_subcommand is not None:
        return None
    from rai.backends import Backends
    from raid.daemon import Daemon

    return Daemon(Backends(config), workers=workers, grace=grace).serve()


class _Printer:
    """A pull's progress lines on the terminal (the job log's sink, for `raid pull`)."""

    def status(self, text: str) -> None:
        click.echo(text)

    def output(self, kind: str, data: bytes) -> None:
        click.echo(data.decode("utf-8", "replace"), nl=False)


@cli.command()
@click.argument("images", nargs=-1, required=True)
@click.pass_obj
def pull(config, images: tuple[str, ...]) -> None:
    """Pull IMAGES onto this node before jobs need them (kept from the prune like images jobs used)."""
    from raid.executor import Executor
    from raid.images import IMAGE_USES, ImageNotFound, ImageUses, ensure_image
    from raid.workspace import node_work_dir

    client = Executor.from_config(config.docker).client
    uses = ImageUses(node_work_dir(config, config.raid.node_name()) / IMAGE_USES)
    failed = 0
    for image in images:
        try:
            if not ensure_image(client, image, _Printer()):
                click.echo(f"{image} is on this node already")
            uses.touch(image)
        except ImageNotFound as e:
            click.echo(f"error: {e.message}", err=True)
            failed += 1
    if failed:
        sys.exit(1)


def main() -> None:
    run_cli(cli)
