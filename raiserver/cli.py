"""`rai-server`: the HTTP(S) API clients talk to (`--listen HOST:PORT`, `--tls-cert/--tls-key` for HTTPS)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from rai import __version__
from rai.cli_support import run_cli
from rai.config import load_config
from rai.errors import UserError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RAI_CONFIG", help="config file (default ~/.rai_config.yml)")
@click.option("--listen", help="HOST:PORT to serve on (default server.listen, 127.0.0.1:8470)")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate chain: serve HTTPS")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.version_option(__version__, "--version", prog_name="rai-server")
def cli(config_path, listen, tls_cert, tls_key, verbose) -> int:
    """Serve the rai API: submit, status, logs (Server-Sent Events), outputs, cancel, rankings."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path)
    server = config.server
    if listen:
        server.listen = listen
    server.tls_cert = tls_cert or server.tls_cert
    server.tls_key = tls_key or server.tls_key
    host, port = server.listen_address()
    if bool(server.tls_cert) != bool(server.tls_key):
        raise UserError("HTTPS needs both a certificate and its key", hint="give --tls-cert and --tls-key")
    for what in (server.tls_cert, server.tls_key):
        if what and not Path(what).expanduser().is_file():
            raise UserError(f"TLS file {what} does not exist")

    import uvicorn

    from rai.backends import Backends
    from raiserver.app import create_app

    backends = Backends(config)
    backends.redis.ping()  # a clear error now (Redis unreachable, wrong password) beats one per request
    _ = backends.db
    app = create_app(config, backends)
    scheme = "https" if server.tls_cert else "http"
    logging.getLogger("raiserver").info("rai-server %s on %s://%s:%d", __version__, scheme, host, port)
    uvicorn.run(app, host=host, port=port, log_level="debug" if verbose else "info",
                ssl_certfile=str(Path(server.tls_cert).expanduser()) if server.tls_cert else None,
                ssl_keyfile=str(Path(server.tls_key).expanduser()) if server.tls_key else None,
                timeout_graceful_shutdown=3, proxy_headers=False, server_header=False)
    return 0


def main() -> None:
    run_cli(cli)
