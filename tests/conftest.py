"""Fixtures live in tests/fixtures/, one module per area, so each area's owner edits their own file."""

import pytest

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.docker",
    "tests.fixtures.e2e",
    "tests.fixtures.aws",
    "tests.fixtures.fakes",
    "tests.fixtures.tui",
    "tests.fixtures.server",
    "tests.fixtures.databases",
]


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path_factory, monkeypatch):
    """Each test's client caches (rai/client/spec_cache.py) in a folder of its own, never the user's; the
    processes a test starts inherit it."""
    monkeypatch.setenv("RAI_CACHE_DIR", str(tmp_path_factory.mktemp("rai-cache")))
