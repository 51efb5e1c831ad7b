"""Where the config file is, and the server's address when it names none: the standard library only, so that
`rai submit` finds its server without loading the config's models (rai/config.py, which re-exports these)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG = "~/.rai_config.yml"
DEFAULT_SERVER_PORT = 8470
DEFAULT_SERVER_URL = f"http://127.0.0.1:{DEFAULT_SERVER_PORT}"
DEFAULT_CLIENT_TIMEOUT = 30.0  # seconds a client waits for the server to answer one request


def config_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("RAI_CONFIG") or DEFAULT_CONFIG).expanduser()


def named_explicitly(path: str | os.PathLike | None) -> bool:
    """The user named the file (--config, RAI_CONFIG): then a missing one is an error, not the defaults."""
    return path is not None or "RAI_CONFIG" in os.environ
