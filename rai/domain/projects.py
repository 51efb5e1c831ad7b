"""Ranked projects (`projects:` in the server config): submission kinds, the build spec raid enforces,
required files, how the result is read, the ranking metric and when a result is valid.

A project's keys apply to all its kinds; a kind may override any of them:

```yaml
projects:
  conv:
    spec: {rai: {image: ...}, commands: {build: [...]}}   # rai_build.yml form; replaces the submitter's
    required_files: [report.pdf]
    result: {file: result.json}          # or {patterns: ['Correctness: (?P<correctness>[0-9.]+)']}
    metric: timing.op_time               # key path into the result
    lower_is_better: true
    valid: {correctness: {min: 0.9}}
    kinds: {m1: {required_files: []}, m2: {}, final: {}}   # or just [m1, m2, final]
```

The public part (rai.domain.public_projects: kinds, required files, metric, the enforced spec) is what raid
publishes to Redis for clients; validity rules and result sources stay on the server.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rai.domain.spec import JobSpec
from rai.errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def as_number(value: Any) -> float | None:
    """A result value as a float (numbers and numeric strings); None for anything else, NaN and infinities."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def lookup(values: dict[str, Any], path: str) -> Any:
    """`timing.op_time` in {"timing": {"op_time": 1.5}} → 1.5; a flat key with dots wins; None when absent."""
    if path in values:
        return values[path]
    node: Any = values
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


def _relative_path(value: str, what: str) -> str:
    p = PurePosixPath(value)
    if not value or p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{what} {value!r} must be a relative path inside the folder")
    return p.as_posix()


class ResultSource(_Section):
    """Where a ranked job's result comes from: a JSON file it writes under /build, or regexes over its output."""

    file: str | None = None  # a JSON object the job writes, relative to /build (e.g. result.json)
    patterns: list[str] = Field(default_factory=list)  # regexes with named groups; the last match of each counts
    stream: Literal["stdout", "stderr", "both"] = "stdout"  # which output the patterns read

    @field_validator("file")
    @classmethod
    def _file(cls, v: str | None) -> str | None:
        return None if v is None else _relative_path(v, "result.file")

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                rx = re.compile(p)
            except re.error as e:
                raise ValueError(f"pattern {p!r} is not a valid regular expression: {e}") from None
            if not rx.groupindex:
                raise ValueError(f"pattern {p!r} needs a named group, e.g. (?P<op_time>[0-9.]+)")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> ResultSource:
        if (self.file is None) == (not self.patterns):
            raise ValueError("give either file (a JSON file under /build) or patterns (regexes over the output)")
        return self

    def keys(self) -> set[str] | None:
        """The keys the patterns can produce; None for a JSON file (any key path)."""
        if self.file is not None:
            return None
        return {name for p in self.patterns for name in re.compile(p).groupindex}


class Condition(_Section):
    """A rule on one result value for the result to be valid; bounds are inclusive."""

    min: float | None = None
    max: float | None = None
    equals: str | float | bool | None = None

    @model_validator(mode="after")
    def _something(self) -> Condition:
        if self.min is None and self.max is None and self.equals is None:
            raise ValueError("give min, max or equals")
        return self

    def problem(self, key: str, value: Any) -> str | None:
        """Why `value` breaks this rule, or None when it holds."""
        if value is None:
            return f"{key} is missing from the result"
        if self.equals is not None:
            if isinstance(self.equals, (int, float)) and not isinstance(self.equals, bool):
                number = as_number(value)
                if number is None or number != self.equals:
                    return f"{key} is {value}, not {self.equals:g}"
            elif value != self.equals and str(value) != str(self.equals):
                return f"{key} is {value}, not {self.equals}"
        if self.min is not None or self.max is not None:
            number = as_number(value)
            if number is None:
                return f"{key} is {value!r}, not a number"
            if self.min is not None and number < self.min:
                return f"{key} {number:g} is below {self.min:g}"
            if self.max is not None and number > self.max:
                return f"{key} {number:g} is above {self.max:g}"
        return None


class CheckConfig(_Section):
    """The staff's checker: run in a second, fresh container after the submission's commands ended, on a
    copy of the submission's /build in /src. Only what it writes under its own /build (`result.file`) or
    prints (`result.patterns`) counts; no process of the submission is alive, none can start."""

    commands: list[str]
    image: str | None = None  # default: the spec's image
    time: float = 600.0  # seconds it may run
    memory: int | None = None  # bytes; default the job's memory limit

    @field_validator("commands")
    @classmethod
    def _commands(cls, v: list[str]) -> list[str]:
        if not v or not all(isinstance(c, str) and c.strip() for c in v):
            raise ValueError("check.commands: give the checker's shell commands, as strings")
        return v

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Any:
        from rai.units import parse_duration

        return parse_duration(v)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: Any) -> Any:
        from rai.units import parse_size

        return None if v is None else parse_size(v)


class KindConfig(_Section):
    """One submission kind; every key unset here comes from its project."""

    title: str | None = None
    spec: JobSpec | None = None
    required_files: list[str] | None = None
    result: ResultSource | None = None
    metric: str | None = None
    lower_is_better: bool | None = None
    valid: dict[str, Condition] | None = None
    counts: Literal["best", "last"] | None = None
    check: CheckConfig | None = None

    @field_validator("required_files")
    @classmethod
    def _files(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [_relative_path(f, "required file") for f in v]


@dataclass(frozen=True)
class RankedKind:
    """A kind with its project's keys filled in: everything raid needs to run and rank a submission."""

    project: str
    kind: str
    title: str
    spec: JobSpec
    required_files: list[str]
    result: ResultSource
    metric: str
    lower_is_better: bool
    valid: dict[str, Condition]
    counts: Literal["best", "last"]
    check: CheckConfig | None = None  # the staff's checker in its own container; None: read the job's own

    @property
    def name(self) -> str:
        return f"{self.project}/{self.kind}"


_T = TypeVar("_T")


def _given(value: _T | None) -> _T:
    """A key a kind takes from itself or its project, which ProjectConfig's validation made sure is set."""
    if value is None:
        raise ValueError("a kind's spec, result or metric is missing")
    return value


class ProjectConfig(_Section):
    title: str = ""
    spec: JobSpec | None = None
    required_files: list[str] = Field(default_factory=list)
    result: ResultSource | None = None
    metric: str | None = None
    lower_is_better: bool = True
    valid: dict[str, Condition] = Field(default_factory=dict)
    counts: Literal["best", "last"] = "best"  # which of a team's valid results ranks: its best or its latest
    check: CheckConfig | None = None  # the staff's checker, in a second container (see CheckConfig)
    kinds: dict[str, KindConfig]

    @field_validator("kinds", mode="before")
    @classmethod
    def _kinds(cls, v: Any) -> Any:
        if isinstance(v, list):  # `kinds: [m1, m2, final]`
            return {str(k): {} for k in v}
        return {k: ({} if c is None else c) for k, c in v.items()} if isinstance(v, dict) else v

    @field_validator("required_files")
    @classmethod
    def _files(cls, v: list[str]) -> list[str]:
        return [_relative_path(f, "required file") for f in v]

    @model_validator(mode="after")
    def _complete(self) -> ProjectConfig:
        if not self.kinds:
            raise ValueError("kinds: give at least one submission kind, e.g. [m1, m2, final]")
        for name, k in self.kinds.items():
            if not _NAME.match(name):
                raise ValueError(f"kind {name!r}: use letters, digits, '.', '_' and '-'")
            missing = [key for key in ("spec", "result", "metric")
                       if getattr(k, key) is None and getattr(self, key) is None]
            if missing:
                raise ValueError(f"kind {name}: {', '.join(missing)} missing (set it on the project or the kind)")
            result = _given(k.result or self.result)
            metric = _given(k.metric or self.metric)
            keys = result.keys()
            if keys is not None:
                rules = k.valid if k.valid is not None else self.valid
                unknown = sorted({metric, *rules} - keys)
                if unknown:
                    raise ValueError(f"kind {name}: {', '.join(unknown)} is not a named group of result.patterns "
                                     f"(they give {', '.join(sorted(keys))})")
        return self

    def kind(self, project: str, name: str) -> RankedKind:
        k = self.kinds[name]
        return RankedKind(
            project=project, kind=name, title=k.title or self.title or f"{project} {name}",
            spec=_given(k.spec or self.spec), required_files=list(k.required_files if k.required_files is not None
                                                          else self.required_files),
            result=_given(k.result or self.result), metric=_given(k.metric or self.metric),
            lower_is_better=self.lower_is_better if k.lower_is_better is None else k.lower_is_better,
            valid=dict(k.valid if k.valid is not None else self.valid), counts=k.counts or self.counts,
            check=k.check or self.check,
        )


def ranked_kinds(projects: dict[str, ProjectConfig]) -> list[RankedKind]:
    return [p.kind(name, k) for name, p in projects.items() for k in p.kinds]


def pick_project(projects: dict[str, ProjectConfig], project: str | None) -> str:
    """The project asked for, or the only one; a UserError listing them otherwise."""
    if not projects:
        raise UserError("this rai installation has no ranked projects", hint="see projects: in the README")
    if project is None:
        if len(projects) > 1:
            raise UserError("there are several ranked projects", hint=f"say which with --project: "
                            f"{', '.join(sorted(projects))}")
        return next(iter(projects))
    if project not in projects:
        raise UserError(f"no ranked project {project!r}", hint=f"the projects are: {', '.join(sorted(projects))}")
    return project


def pick_kind(projects: dict[str, ProjectConfig], project: str | None, kind: str | None) -> RankedKind:
    """A leaderboard's kind: the one asked for, or the project's last (e.g. final)."""
    name = pick_project(projects, project)
    p = projects[name]
    kind = kind or list(p.kinds)[-1]
    if kind not in p.kinds:
        raise UserError(f"project {name} has no submission kind {kind!r}", hint=f"its kinds are: {', '.join(p.kinds)}")
    return p.kind(name, kind)
