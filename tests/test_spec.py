"""rai_build.yml: what the original accepted still works; what is wrong is named before upload."""

from __future__ import annotations

import pytest

from rai.errors import UserError
from rai.spec import load_spec, load_spec_text

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
