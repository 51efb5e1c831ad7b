"""The config file: defaults, the issue's keys, encrypted values, clear errors."""

from __future__ import annotations

import pytest

from rai import crypto
from rai.config import load_config, machine_arch
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
