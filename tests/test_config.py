"""The config file: defaults, the issue's keys, encrypted values, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rai import crypto
from rai.config import Config, load_config, machine_arch
from rai.errors import UserError


def test_no_file_gives_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("RAI_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path / "data"))
    cfg = load_config()
    assert cfg.source is None
    assert cfg.pubsub.url == "redis://127.0.0.1:6379/0"
    assert cfg.broker.queue_name() == f"rai_{machine_arch()}"
    assert cfg.store.local_path() == tmp_path / "data" / "store"
    assert cfg.database.sqlite_path() == tmp_path / "data" / "rai.db"


def test_the_keys_of_the_issue_work(tmp_path):
    p = tmp_path / "cfg.yml"
    p.write_text(
        "pubsub:   {url: redis://10.0.0.5:6380/1}\n"
        "broker:   {provider: redis, queue: rai_amd64}\n"
        "store:    {provider: local, path: /var/lib/rai/store}\n"
        "database: {provider: sqlite, path: /var/lib/rai/rai.db}\n"
        "docker:   {base_url: unix:///run/podman/podman.sock, time_limit: 1h, memory_limit: 16g}\n"
    )
    cfg = load_config(p)
    assert cfg.pubsub.url == "redis://10.0.0.5:6380/1"
    assert cfg.broker.queue_name() == "rai_amd64"
    assert str(cfg.store.local_path()) == "/var/lib/rai/store"
    assert cfg.docker.time_limit == 3600 and cfg.docker.memory_limit == 16 * 1024**3


def test_encrypted_values_are_decrypted_with_the_app_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_APP_SECRET", "app")
    p = tmp_path / "cfg.yml"
    p.write_text(f"email: {{provider: mailgun, api_key: '{crypto.encrypt('app', 'key-123')}'}}\n")
    assert load_config(p).email.api_key == "key-123"
    monkeypatch.delenv("RAI_APP_SECRET")
    with pytest.raises(UserError, match="no app secret"):
        load_config(p)


@pytest.mark.parametrize(
    "text, words",
    [
        ("docker: {time_limit: forever}", "docker.time_limit"),
        ("broker: {provider: kafka}", "broker.provider"),
        ("pubsub: {ulr: redis://x}", "pubsub.ulr"),
        ("- just a list", "mapping"),
        ("pubsub: {url: [", "not valid YAML"),
    ],
)
def test_a_bad_config_says_where(tmp_path, text, words):
    p = tmp_path / "cfg.yml"
    p.write_text(text)
    with pytest.raises(UserError) as e:
        load_config(p)
    assert words in str(e.value)


def test_a_named_config_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.yml")


@pytest.mark.parametrize(
    "text, line",
    [
        ("dokcer: {image: x}", "  dokcer: unknown section; did you mean docker?"),
        ("Docker: {image: x}", "  Docker: unknown section; did you mean docker?"),
        ("docker: {memroy_limit: 1g}", "  docker.memroy_limit: unknown key; did you mean memory_limit?"),
        ("server: {tls_crt: cert.pem}", "  server.tls_crt: unknown key; did you mean tls_cert?"),
        ("roles: {student: {gpu: 1}}", "  roles.student.gpu: unknown key; did you mean gpus?"),
        ("pubsub: {ulr: redis://x}", "  pubsub.ulr: unknown key; did you mean url?"),
        ("projects: {p: {spec: {rai: {image: x}, commands: {build: [make]}}, result: {fiel: r.json}, metric: t, "
         "kinds: [m1]}}", "  projects.p.result.fiel: unknown key; did you mean file?"),
        ("projects: {p: {spec: {rai: {image: x}, commands: {build: [make]}}, result: {file: r.json}, metric: t, "
         "kinds: {m1: {metrc: x}}}}", "  projects.p.kinds.m1.metrc: unknown key; did you mean metric?"),
        ("zzzz: 1", "  zzzz: unknown section; the sections are: app, pubsub, broker, store, database, auth, email, "
                    "docker, raid, server, roles, projects, scheduler"),
        ("raid: {qqqq: 1}", "  raid.qqqq: unknown key; the keys of raid are: workers, node, heartbeat_interval, "
                            "max_request_age, work_dir, gpus"),
        ("source: /etc/rai.yml", "  source: unknown section; "),  # set by load_config, not by the file
    ],
)
def test_an_unknown_section_or_key_is_refused_with_the_nearest_name(tmp_path, text, line):
    p = tmp_path / "cfg.yml"
    p.write_text(text)
    with pytest.raises(UserError) as e:
        load_config(p)
    assert e.value.exit_code == 2
    assert e.value.message.startswith(f"config file {p} is invalid:\n")
    assert any(shown.startswith(line) for shown in e.value.message.splitlines()), e.value.message
    assert "source" not in e.value.message.partition("are: ")[2]  # never offered as a name to set


def test_every_unknown_name_is_listed_at_once(tmp_path):
    p = tmp_path / "cfg.yml"
    p.write_text("dokcer: {}\ndocker: {memroy_limit: 1g, image: x}\nbroker: {queue: q}\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert sorted(e.value.message.splitlines()[1:]) == [
        "  docker.memroy_limit: unknown key; did you mean memory_limit?",
        "  dokcer: unknown section; did you mean docker?",
    ]


def test_a_ranked_projects_spec_with_a_boolean_command_is_refused(tmp_path):
    p = tmp_path / "cfg.yml"
    p.write_text("projects: {p: {spec: {rai: {image: x}, commands: {build: [make, false]}}, "
                 "result: {file: r.json}, metric: t, kinds: [m1]}}")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert ("  projects.p.spec.commands.build[1] is the boolean false, not a command: write it in quotes ('false')"
            in e.value.message)


def test_the_embedded_defaults_and_the_example_config_load(tmp_path):
    assert Config.model_validate(Config().model_dump(exclude={"source"})) == Config()
    p = tmp_path / "cfg.yml"
    p.write_text((Path(__file__).resolve().parent.parent / "config.example.yml").read_text())
    assert load_config(p).source == str(p)


def test_raid_with_a_misspelt_config_exits_2_naming_the_right_key(tmp_path):
    p = tmp_path / "bad.yml"
    p.write_text("dokcer: {image: x}\ndocker: {memroy_limit: 1g}\n")
    done = subprocess.run([sys.executable, "-m", "raid", "--config", str(p)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "RAI_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2, done.stderr
    assert "dokcer: unknown section; did you mean docker?" in done.stderr
    assert "docker.memroy_limit: unknown key; did you mean memory_limit?" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
