"""What the client needs of the config file: where the server is (`server.url`), the CA bundle that vouches
for its certificate (`server.ca_bundle`) and how long to wait for an answer (`server.timeout`).

A student's config holds just that (`server:\n  url: https://...`): `server_settings` reads it with the YAML
parser alone, so that `rai submit` starts packing and uploading before the config's models load. A file with
anything else in it (an operator's whole config, a duration written as "30s", an encrypted value, a typo) is
read by rai/config.py's `load_config`, which accepts and refuses it in its own words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rai.config_file import DEFAULT_CLIENT_TIMEOUT, DEFAULT_SERVER_URL, config_path, named_explicitly
from rai.errors import UserError

ENCRYPTED = "==AESGCM=="  # rai.crypto.PREFIX, not imported from there: that module loads cryptography


@dataclass(frozen=True)
class ServerSettings:
    url: str = DEFAULT_SERVER_URL
    ca_bundle: str | None = None
    timeout: float = DEFAULT_CLIENT_TIMEOUT

    @classmethod
    def of(cls, server: Any) -> ServerSettings:
        """From the config's `server` section (rai.config.ServerConfig)."""
        return cls(url=server.url, ca_bundle=server.ca_bundle, timeout=float(server.timeout))


def ca_bundle_file(ca_bundle: str | None) -> Path | None:
    """The PEM bundle `server.ca_bundle` names, refused in words when it is not there."""
    if not ca_bundle:
        return None
    bundle = Path(ca_bundle).expanduser()
    if not bundle.is_file():
        raise UserError(f"server.ca_bundle {bundle} does not exist",
                        hint="point it at the PEM file your course staff gave you")
    return bundle


def server_settings(path: str | os.PathLike | None = None) -> ServerSettings:
    """The server's settings from the config file (`--config`, RAI_CONFIG, ~/.rai_config.yml), as
    load_config(path).server has them; a missing default file gives the defaults."""
    p = config_path(path)
    if not p.exists():
        if named_explicitly(path):
            raise UserError(f"config file {p} does not exist", hint="check --config or RAI_CONFIG")
        return ServerSettings()
    plain = _plain(p.read_bytes())
    if plain is not None:
        return plain
    from rai.config import load_config

    return ServerSettings.of(load_config(path).server)


def _plain(text: bytes) -> ServerSettings | None:
    """The settings of a file that holds `server:` with url, ca_bundle and timeout plainly written (or
    nothing at all); None for anything load_config has to judge."""
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if raw is None:
        return ServerSettings()
    if not isinstance(raw, dict) or set(raw) - {"server"}:
        return None
    server = raw.get("server", {})
    if not isinstance(server, dict) or set(server) - {"url", "ca_bundle", "timeout"}:
        return None
    url = server.get("url", DEFAULT_SERVER_URL)
    ca_bundle = server.get("ca_bundle")
    timeout = server.get("timeout", DEFAULT_CLIENT_TIMEOUT)
    if type(url) is not str or not url.startswith(("http://", "https://")):
        return None
    if ca_bundle is not None and (type(ca_bundle) is not str or ca_bundle.startswith(ENCRYPTED)):
        return None
    if type(timeout) not in (int, float) or timeout < 0:
        return None
    return ServerSettings(url=url.rstrip("/"), ca_bundle=ca_bundle, timeout=float(timeout))
