"""The job spec `rai_build.yml`, compatible with the original RAI's.

Checked on the client before anything is uploaded, and again by raid. Unlike the original,
`limits.time` and `limits.memory` are enforced and each command runs through a shell.
"""

from __future__ import annotations

import datetime
import difflib
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from rai.errors import UserError
from rai.units import parse_duration, parse_size

SPEC_FILE = "rai_build.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


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
    cpus: float | None = Field(default=None, gt=0, le=1024)

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
    model_config = ConfigDict(extra="allow", defer_build=True)
    image_name: str | None = None
    dockerfile: str | None = None
    no_cache: bool = False


def _not_a_command(value: Any) -> str | None:
    """Why a YAML value is not a shell command (what YAML read it as, and how to write it), or None for a string."""
    if isinstance(value, str):
        return None if value.strip() else "is empty, not a command: write a shell command, or remove the item"
    if isinstance(value, bool):
        word = "true" if value else "false"
        return (f"is the boolean {word}, not a command: write it in quotes ('{word}') if you mean the shell command "
                "(YAML reads an unquoted true, false, yes, no, on or off as a boolean)")
    if isinstance(value, (int, float)):
        return (f"is the number {value}, not a command: write it in quotes ('{value}') if you mean it as a shell "
                "command")
    if value is None:
        return "is empty (null), not a command: write a shell command, or remove the item"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return (f"is the date {value.isoformat()}, not a command: write it in quotes if you mean it as a shell "
                "command")
    if isinstance(value, list):
        return ("is a list, not a command: give each command as an item of its own, or write it in quotes if it "
                "starts with [")
    if isinstance(value, dict):
        return ("is a mapping, not a command (YAML reads 'key: value' as one): write the whole command in quotes "
                "if it holds ': ' or starts with {")
    return f"is a {type(value).__name__}, not a command: write the command in quotes"


def _command(value: Any) -> str:
    problem = _not_a_command(value)
    if problem is not None:
        raise PydanticCustomError("not_a_command", problem)
    return value


Command = Annotated[str, BeforeValidator(_command)]  # a shell command: a string, never a coerced bool or number


class Commands(_Strict):
    build_image: BuildImage | None = None
    build: list[Command]

    @field_validator("build", mode="before")
    @classmethod
    def _build(cls, v: Any) -> list[Any]:
        if isinstance(v, str):
            v = [v]
        elif v is not None and not isinstance(v, (list, dict)):
            _command(v)  # `build: true`: the same words as for an item
        if not isinstance(v, list) or not v:
            raise ValueError("must be a list of at least one shell command")
        return v


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


def format_loc(loc: tuple[int | str, ...], model: type[BaseModel] | None = None) -> str:
    """("commands", "build", 0) → commands.build[0]; given the model, a number is an index only into a list
    (`docker.2` is a key of docker)."""
    out, tp = "", model
    for part in loc:
        tp = _unwrap(tp)
        into_list = get_origin(tp) is list if model is not None else isinstance(part, int)
        out += f"[{part}]" if into_list and isinstance(part, int) else (f".{part}" if out else str(part))
        if _is_model(tp):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            tp = field.annotation if field is not None else None
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            tp = None
    return out


def _unwrap(tp: Any) -> Any:
    """Optional[X] / Annotated[X, ...] → X (the first arm of a union that is a model, a dict or a list)."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            arms = [a for a in get_args(tp) if a is not type(None)]
            tp = next((a for a in arms if _is_model(_unwrap(a)) or get_origin(_unwrap(a)) in (dict, list)), arms[0])
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str] | None:
    """The field names of the model that `loc` (a validation error's location) leads to; None if it leads to none."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            if part not in tp.model_fields:
                return None
            tp = tp.model_fields[part].annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list and isinstance(part, int):
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return list(tp.model_fields) if _is_model(tp) else None


def did_you_mean(name: Any, names: list[str]) -> str | None:
    """The valid name closest to a misspelt one (difflib), or None when none is close."""
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1)
    return lowered[close[0]] if close else None


def unknown_name(name: Any, names: list[str], what: str = "key", of: str | None = None) -> str:
    """`unknown key; did you mean memory_limit?`, or the valid names when none is close."""
    close = did_you_mean(name, names)
    if close is not None:
        return f"unknown {what}; did you mean {close}?"
    return f"unknown {what}; the {what}s{f' of {of}' if of else ''} are: {', '.join(names) or '(none)'}"


def _describe(e: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid job spec:"]
    for err in e.errors():
        where = format_loc(err["loc"], JobSpec)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            names = fields_at(JobSpec, err["loc"][:-1]) or []
            close = did_you_mean(err["loc"][-1], names)
            msg = "is not a field of rai_build.yml " + (f"(did you mean {close}?)" if close else
                                                          f"(the fields here are: {', '.join(names)})")
        if err["type"] == "not_a_command":
            lines.append(f"  {where} {msg}")
        else:
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
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    return load_spec_text(spec_text(raw, str(path)), str(path))


def spec_text(raw: bytes, source: str = SPEC_FILE) -> str:
    """rai_build.yml's bytes as text: UTF-8 (or its BOM), said in words when it is not."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{source} is not UTF-8 text (byte {e.start + 1} cannot be read)",
                        hint="save it as UTF-8 in your editor") from None
