"""Fixtures live in tests/fixtures/, one module per area, so each area's owner edits their own file."""

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
