"""The job spec `rai_build.yml`, compatible with the original RAI's.

Checked on the client before anything is uploaded, and again by raid. Unlike the original,
`limits.time` and `limits.memory` are enforced and each command runs through a shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rai.errors import UserError
from rai.units import parse_duration, parse_size

SPEC_FILE = "rai_build.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RaiSection(_Strict):
    version: str = "0.2"
    image: str

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str:
        return str(v)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not v.strip() or any(c.isspace() for c in v):
            raise ValueError("must be an image name such as nvidia/cuda:12.4.1-devel-ubuntu22.04")
        return v


class CPUResources(_Strict):
    architecture: str = "amd64"


class GPUResources(_Strict):
    architecture: str | None = None
    count: int = Field(default=0, ge=0, le=16)
    memory: str | None = None  # accepted for compatibility, not enforced


class Limits(_Strict):
    network: bool = False
    time: float | None = None
    memory: int | None = None

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: Any) -> int | None:
        return None if v is None else parse_size(v)


class Resources(_Strict):
    cpu: CPUResources = Field(default_factory=CPUResources)
    gpu: GPUResources = Field(default_factory=GPUResources)
    limits: Limits = Field(default_factory=Limits)
    network: bool | None = None  # some original specs put it here


class BuildImage(BaseModel):
    model_config = ConfigDict(extra="allow")
    image_name: str | None = None
    dockerfile: str | None = None
    no_cache: bool = False


class Commands(_Strict):
    build_image: BuildImage | None = None
    build: list[str]

    @field_validator("build", mode="before")
    @classmethod
    def _build(cls, v: Any) -> list[str]:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v:
            raise ValueError("must be a list of at least one shell command")
        out = []
        for i, cmd in enumerate(v, 1):
            if not isinstance(cmd, (str, int, float)) or not str(cmd).strip():
                raise ValueError(f"command {i} must be a non-empty string")
            out.append(str(cmd))
        return out


class JobSpec(_Strict):
    rai: RaiSection
    resources: Resources = Field(default_factory=Resources)
    commands: Commands

    @property
    def network(self) -> bool:
        return bool(self.resources.limits.network or self.resources.network)

    @property
    def gpus(self) -> int:
        return self.resources.gpu.count


def _describe(e: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid job spec:"]
    for err in e.errors():
        where = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            msg = "is not a field of rai_build.yml (check the spelling)"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = SPEC_FILE) -> JobSpec:
    if not isinstance(data, dict):
        raise UserError(f"{source} must be a YAML mapping with rai:, resources: and commands:")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as e:
        raise UserError(_describe(e, source), hint="see the rai_build.yml reference in the README") from None


def load_spec_text(text: str, source: str = SPEC_FILE) -> JobSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{source} is not valid YAML: {e}") from None
    return parse_spec(data, source)


def load_spec(directory: Path) -> JobSpec:
    path = directory / SPEC_FILE
    if not path.is_file():
        raise UserError(
            f"{path} not found",
            hint=f"every project needs a {SPEC_FILE}; see the README for an example",
        )
    return load_spec_text(path.read_text(), str(path))
