"""`rai` starts fast: `--help`, `version` and `whoami` load click and (whoami) the YAML profile, and none of
the heavy packages the other commands need (the HTTP client, rich, pydantic, the job models and config, and
the server's and daemon's libraries). Imports are what this holds; the timing is in the issue's notes (about
0.09 s for `rai whoami` here, against 0.02 s for `python -c pass`)."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rai.client import profile as profile_module
from rai.errors import UserError

ROOT = Path(__file__).resolve().parent.parent

# Top-level packages (and the client's own heavy modules) that must not load for the light commands.
HEAVY = ("boto3", "botocore", "docker", "textual", "redis", "zstandard", "httpx", "httpcore", "h11", "anyio",
         "certifi", "cryptography", "rich", "pydantic", "pydantic_core", "platformdirs", "ssl", "raid", "raiserver",
         "keygen", "raitui", "rai.client.core", "rai.client.api", "rai.config", "rai.domain.models", "rai.domain.spec",
         "rai.domain.projects", "rai.domain.archive", "rai.client.packing", "rai.domain.answers", "rai.backends",
         "rai.domain.signing")

PROFILE = """\
profile:
  username: ada
  email: ada@example.edu
  team: {name: t1}
  role: student
  access_key: AKEXAMPLE
  secret_key: SKEXAMPLE
"""

# How each entry point starts the client: `python -m rai`, and what pip's `rai` console script does.
ENTRIES = {
    "python -m rai": ["-m", "rai"],
    "console script": ["-c", "import sys; from rai.client.cli import main; sys.argv[0] = 'rai'; sys.exit(main())"],
}


def imported(args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the client under `-X importtime`; the modules it imported, from that report on stderr."""
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("RAI_PROFILE", "RAI_CONFIG", "PYTHONPROFILEIMPORTTIME"):
        env.pop(name, None)
    r = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=60)
    modules = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    modules.discard("package")  # the report's header line
    return r, modules


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    p = tmp_path / "ada.profile"
    p.write_text(PROFILE)
    return p


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("command", [["--help"], ["version"], ["--version"], ["whoami"]],
                         ids=lambda c: " ".join(c))
def test_light_commands_load_nothing_heavy(entry, command, profile_file, tmp_path):
    r, modules = imported([*ENTRIES[entry], "--profile", str(profile_file), *command], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "click" in modules and "rai.client.cli" in modules  # the report was read
    assert heavy_in(modules) == []
    if command == ["whoami"]:
        assert r.stdout == "ada <ada@example.edu> team=t1 role=student\n"
    if command == ["version"]:
        assert r.stdout == "rai 0.1.0\n"


def test_whoami_without_a_profile_says_so_without_loading_anything_heavy(tmp_path):
    r, modules = imported(["-m", "rai", "--profile", str(tmp_path / "nope"), "whoami"], tmp_path)
    assert r.returncode == 2 and "no profile at" in r.stderr and "Traceback" not in r.stderr
    assert heavy_in(modules) == []


def test_a_command_that_asks_the_server_loads_the_client(profile_file, tmp_path):
    """The report is read right: `rai status` does load httpx, pydantic and the client (and says it cannot
    reach a server that is not there, exit 3)."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "rai.yml"
    config.write_text(f"server:\n  url: http://127.0.0.1:{port}\n  timeout: 5\n")
    r, modules = imported(["-m", "rai", "--config", str(config), "--profile", str(profile_file), "status",
                           "20990101000000-000000000000"], tmp_path)
    assert r.returncode == 3 and "cannot reach the rai server" in r.stderr, r.stderr[-2000:]
    assert {"httpx", "pydantic", "rai.client.core", "rai.config", "rai.domain.models"} <= modules
    # ... but not what httpx's own command line needs (rich's progress bars, pygments), nor the daemon's and
    # the console's libraries
    assert not {"pygments", "rich.progress", "rich.syntax", "boto3", "docker", "textual"} & modules


BODIES = [
    {"username": "ada", "access_key": "a", "secret_key": "s"},
    {"username": "ada", "email": "ada@x", "team": {"name": "t1"}, "role": "admin", "access_key": "a",
     "secret_key": "s", "extra": [1, 2]},
    {"username": "ada", "team": None, "access_key": "a", "secret_key": "s"},
    {"username": "ada", "team": {}, "access_key": "a", "secret_key": "s"},
    {"username": "ada", "access_key": "a"},
    {"email": "ada@x"},
    {"username": 7, "access_key": "a", "secret_key": "s"},
    {"username": "ada", "email": None, "access_key": "a", "secret_key": "s"},
    {"username": "ada", "team": {"name": 3}, "access_key": "a", "secret_key": "s"},
    {"username": "ada", "team": ["t1"], "access_key": "a", "secret_key": "s"},
    {"username": "ada", "role": True, "access_key": "a", "secret_key": ["s"]},
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_whoami_reads_a_profile_as_the_client_does(body, tmp_path):
    """read_profile (whoami, without pydantic) accepts and refuses what load_profile does, in its words."""
    import yaml

    p = tmp_path / "p.profile"
    p.write_text(yaml.safe_dump({"profile": body}))
    try:
        expected = profile_module.load_profile(p).model_dump()
    except UserError as e:
        with pytest.raises(UserError) as got:
            profile_module.read_profile(p)
        assert str(got.value) == str(e) and got.value.exit_code == e.exit_code
    else:
        assert profile_module.read_profile(p) == expected


def test_the_light_fields_are_the_models():
    model = profile_module.Profile
    fields = {name: (profile_module._REQUIRED if f.is_required() else f.default) for name, f in
              model.model_fields.items()}
    assert list(fields) == list(profile_module._FIELDS)
    assert fields == profile_module._FIELDS


def test_the_profile_model_is_one_class_and_pickles(tmp_path):
    from rai.client.profile import Profile

    assert Profile is profile_module.Profile and Profile.__module__ == "rai.client.profile"
    p = Profile(username="ada", access_key="a", secret_key="s", team="t1")
    assert pickle.loads(pickle.dumps(p)) == p
    written = profile_module.write_profile(p, tmp_path / "p")
    assert profile_module.load_profile(written) == p
    with pytest.raises(AttributeError):
        profile_module.NoSuchThing  # noqa: B018
