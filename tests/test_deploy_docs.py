"""The deployment documents say what the code does: the production configs in config.example.yml load, the
IAM policies in docs/deploy.md are the ones `rai-aws policies` prints, the systemd unit restarts and logs."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import yaml

from rai.admin.aws_cli import iam_policies
from rai.config import Config

ROOT = Path(__file__).resolve().parent.parent


def production_blocks() -> dict[str, Config]:
    text = (ROOT / "config.example.yml").read_text()
    blocks = {}
    for m in re.finditer(r"^# >>> (.*?)\n(.*?)^# <<<", text, re.S | re.M):
        body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in m.group(2).splitlines())
        blocks[m.group(1)] = Config.model_validate(yaml.safe_load(body))
    return blocks


def test_the_production_configs_load():
    blocks = production_blocks()
    server = next(c for name, c in blocks.items() if "raid nodes" in name)
    student = next(c for name, c in blocks.items() if "students" in name)
    assert (server.broker.provider, server.store.provider, server.database.provider, server.auth.provider,
            server.email.provider) == ("sqs", "s3", "mongodb", "auth0", "mailgun")
    assert not server.broker.create_queues and server.server.url.startswith("https://")
    assert server.server.tls_cert and server.server.tls_key
    assert student.server.url == server.server.url  # a student holds the URL and nothing else
    assert student == Config(server=student.server)


def test_the_policies_in_deploy_md_are_the_ones_the_code_prints():
    server = next(c for name, c in production_blocks().items() if "raid nodes" in name)
    expected = iam_policies(server, "123456789012")
    doc = (ROOT / "docs" / "deploy.md").read_text()
    found = dict(re.findall(r"<!-- policy: ([\w-]+) -->\n```json\n(.*?)```", doc, re.S))
    assert set(found) == set(expected)
    for name, text in found.items():
        assert json.loads(text) == expected[name], name


def test_deploy_md_names_only_files_that_exist_and_no_credential_vending():
    doc = (ROOT / "docs" / "deploy.md").read_text()
    named = set(re.findall(r"(?<![\w/.~-])((?:tests|deploy|rai|raiserver|raid|bench)/[\w./-]*\w)", doc))
    assert {"tests/test_front_door.py", "tests/test_e2e_production.py", "deploy/rai-server.service"} <= named
    assert [p for p in sorted(named) if not (ROOT / p).exists()] == []
    # students hold no cloud credential: nothing is vended, assumed for them or read by them from Redis
    for gone in ("rai:sts", "rai:queries", "upload_role_arn", "vend_timeout", "client_credentials",
                 "upload-role", "CredentialRequest"):
        assert gone not in doc, gone


def test_raid_service_restarts_on_failure_and_logs_to_journald():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "deploy" / "raid.service")
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and float(service["RestartSec"]) > 0
    assert service["StandardOutput"] == service["StandardError"] == "journal"
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) > 60  # grace, then hand back
    assert "raid" in service["ExecStart"] and service["User"] != "root"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_rai_server_service_restarts_on_failure_and_runs_what_deploy_md_says():
    from raiserver.cli import cli

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "deploy" / "rai-server.service")
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and float(service["RestartSec"]) > 0
    assert service["StandardOutput"] == service["StandardError"] == "journal"
    assert service["KillSignal"] == "SIGTERM" and service["User"] != "root"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    command = service["ExecStart"].split()
    assert command[0].endswith("/rai-server")
    options = {name for p in cli.params for name in p.opts}
    flags = [a for a in command[1:] if a.startswith("--")]
    assert set(flags) <= options and {"--config", "--listen", "--tls-cert", "--tls-key"} <= set(flags)


def test_the_server_configs_in_deploy_md_load():
    doc = (ROOT / "docs" / "deploy.md").read_text()
    section = doc.split("## 5. rai-server", 1)[1].split("\n## ", 1)[0]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    servers = [Config.model_validate(b).server for b in blocks if "server" in b]
    assert len(servers) == 2
    assert servers[0].listen_address() == ("0.0.0.0", 8443) and servers[0].tls_cert and servers[0].tls_key
    assert servers[0].submissions_per_minute("admin") is None
    assert servers[1].url == "https://rai.example.edu:8443" and servers[1].ca_bundle
    # the students' block names nothing but the server
    assert [set(b) for b in blocks if "server" in b][1] == {"server"}
