"""rai_build.yml: what the original accepted still works; what is wrong is named before upload."""

from __future__ import annotations

import json

import pytest

from rai.domain.spec import load_spec, load_spec_text, parse_spec
from rai.errors import UserError

ORIGINAL = """
rai:
  version: 0.2
  image: nvidia/cuda:10.0-devel
resources:
  cpu: {architecture: amd64}
  gpu: {architecture: volta, count: 1}
  limits: {network: false}
commands:
  build_image: {image_name: user/img:tag, dockerfile: ./Dockerfile, no_cache: true}
  build:
    - /bin/bash -c "cp -rv /src/* /build"
    - make
    - ./program
"""


def test_the_original_spec_form_is_accepted():
    spec = load_spec_text(ORIGINAL)
    assert spec.rai.image == "nvidia/cuda:10.0-devel"
    assert spec.gpus == 1
    assert spec.network is False
    assert spec.commands.build == ['/bin/bash -c "cp -rv /src/* /build"', "make", "./program"]
    assert spec.resources.cpu.architecture == "amd64"


def test_time_and_memory_limits_are_parsed():
    spec = load_spec_text("rai: {image: x}\nresources: {limits: {time: 1h30m, memory: 2g}}\ncommands: {build: [make]}")
    assert spec.resources.limits.time == 5400
    assert spec.resources.limits.memory == 2 * 1024**3


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("commands: {build: [make]}", "rai", "is required"),
        ("rai: {image: x}\ncommands: {build: []}", "commands.build", "at least one"),
        ("rai: {image: x}\ncommands: {biuld: [make]}", "commands.biuld", "not a field"),
        ("rai: {image: x}\nresources: {limits: {time: soon}}\ncommands: {build: [make]}",
         "resources.limits.time", "not a duration"),
        ("rai: {image: x}\nresources: {gpu: {count: -1}}\ncommands: {build: [make]}", "resources.gpu.count", ""),
        ("rai: {image: 'has space'}\ncommands: {build: [make]}", "rai.image", "image name"),
    ],
)
def test_an_invalid_spec_names_the_field_and_what_is_wrong(text, field, words):
    with pytest.raises(UserError) as e:
        load_spec_text(text)
    assert field in e.value.message
    assert words in e.value.message


def test_broken_yaml_and_missing_file_are_clear(tmp_path):
    with pytest.raises(UserError, match="not valid YAML"):
        load_spec_text("rai: [unclosed")
    with pytest.raises(UserError, match="rai_build.yml not found"):
        load_spec(tmp_path)


@pytest.mark.parametrize(
    "item, words",
    [
        ("true", "commands.build[0] is the boolean true, not a command: write it in quotes ('true')"),
        ("false", "commands.build[0] is the boolean false, not a command: write it in quotes ('false')"),
        ("yes", "commands.build[0] is the boolean true"),
        ("42", "commands.build[0] is the number 42, not a command: write it in quotes ('42')"),
        ("1.5", "commands.build[0] is the number 1.5"),
        ("null", "commands.build[0] is empty (null), not a command"),
        ("''", "commands.build[0] is empty, not a command"),
        ("[make, all]", "commands.build[0] is a list, not a command"),
        ("echo Result: done", "commands.build[0] is a mapping, not a command"),
        ("2024-01-01", "commands.build[0] is the date 2024-01-01"),
    ],
)
def test_a_command_that_yaml_reads_as_something_else_is_refused_with_how_to_quote_it(item, words):
    with pytest.raises(UserError) as e:
        load_spec_text(f"rai: {{image: x}}\ncommands:\n  build:\n    - {item}\n    - make\n")
    assert e.value.exit_code == 2
    assert words in e.value.message
    assert "commands.build[1]" not in e.value.message  # `make` is fine


def test_every_non_string_command_is_named_and_none_is_coerced(tmp_path):
    (tmp_path / "rai_build.yml").write_text("rai: {image: x}\ncommands: {build: [true, false]}")
    with pytest.raises(UserError) as e:
        load_spec(tmp_path)  # what `rai submit` checks before it packs or uploads anything
    assert "commands.build[0] is the boolean true" in e.value.message
    assert "commands.build[1] is the boolean false" in e.value.message
    with pytest.raises(UserError, match=r"commands.build is the number 7, not a command"):
        load_spec_text("rai: {image: x}\ncommands: {build: 7}")
    assert load_spec_text("rai: {image: x}\ncommands: {build: ['true', '42']}").commands.build == ["true", "42"]
    assert load_spec_text("rai: {image: x}\ncommands: {build: make}").commands.build == ["make"]


def test_raid_and_rai_server_refuse_such_a_spec_from_a_job_request():
    # raid/job_runner.py and raiserver/jobs.py call parse_spec on the request's spec, a JSON object
    job_spec = json.loads('{"rai": {"image": "x"}, "commands": {"build": ["make", true, 3, null]}}')
    with pytest.raises(UserError) as e:
        parse_spec(job_spec, "the job's rai_build.yml")
    assert "the job's rai_build.yml is not a valid job spec" in e.value.message
    for words in ("build[1] is the boolean true", "build[2] is the number 3", "build[3] is empty (null)"):
        assert words in e.value.message


def test_a_misspelt_field_names_the_nearest_one():
    with pytest.raises(UserError) as e:
        load_spec_text("rai: {image: x}\nresources: {gpu: {cuont: 1}}\ncommands: {biuld: [make]}")
    assert "commands.biuld: is not a field of rai_build.yml (did you mean build?)" in e.value.message
    assert "resources.gpu.cuont: is not a field of rai_build.yml (did you mean count?)" in e.value.message
    with pytest.raises(UserError) as e:
        load_spec_text("rai: {image: x}\nresources: {gpu: {zzz: 1}}\ncommands: {build: [make]}")
    assert "the fields here are: architecture, count, memory" in e.value.message


def test_checked_specs_are_kept_by_content_and_version(tmp_path, monkeypatch):
    """rai/client/spec_cache.py: a spec that passed is found again by its bytes, by this version of rai only;
    a cache folder that cannot be written is no error."""
    from rai.client import spec_cache

    text = b"rai:\n  image: img\ncommands:\n  build: [make]\n"
    assert spec_cache.checked(text) is None
    spec_cache.remember(text, {"commands": {"build": ["make"]}})
    assert spec_cache.checked(text) == {"commands": {"build": ["make"]}}
    assert spec_cache.checked(text + b"# edited\n") is None
    monkeypatch.setattr(spec_cache, "__version__", "99.0")
    assert spec_cache.checked(text) is None
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("RAI_CACHE_DIR", str(blocked))
    spec_cache.remember(text, {"x": 1})
    assert spec_cache.checked(text) is None


def test_a_spec_that_is_not_utf8_is_said_in_words(tmp_path):
    (tmp_path / "rai_build.yml").write_bytes(b"rai:\n  image: caf\xe9\n")
    with pytest.raises(UserError, match="is not UTF-8 text"):
        load_spec(tmp_path)


def test_the_submit_reads_the_spec_files_own_name():
    """rai/client/submitting.py names rai_build.yml without importing the spec's models: the same name."""
    from rai.client.submitting import SPEC_FILE as SUBMITTED
    from rai.domain.spec import SPEC_FILE

    assert SUBMITTED == SPEC_FILE
