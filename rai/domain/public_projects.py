"""What clients may know of the ranked projects (`PublicProjects`: kinds, required files, metric, the enforced
spec), published by raid to Redis under `rai:projects`, and the checks a submission passes before any upload:
the kind exists, the folder holds its required files. Validity rules and result sources stay on the server
(rai.domain.projects)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rai.domain.ignore import IgnoreRules
from rai.domain.projects import ProjectConfig
from rai.errors import UserError

# --- what clients see --------------------------------------------------------------------------

class PublicKind(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)
    kind: str
    title: str = ""
    required_files: list[str] = Field(default_factory=list)
    metric: str = ""
    lower_is_better: bool = True
    spec: dict[str, Any] | None = None  # the build spec raid runs instead of the submitter's


class PublicProject(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)
    title: str = ""
    kinds: dict[str, PublicKind] = Field(default_factory=dict)


class PublicProjects(BaseModel):
    """The part of `projects:` a client may know: published by raid to Redis under `rai:projects`."""

    model_config = ConfigDict(extra="ignore", defer_build=True)
    v: int = 1
    projects: dict[str, PublicProject] = Field(default_factory=dict)

    @classmethod
    def from_config(cls, projects: dict[str, ProjectConfig]) -> PublicProjects:
        out: dict[str, PublicProject] = {}
        for name, p in projects.items():
            kinds = {}
            for k in p.kinds:
                rk = p.kind(name, k)
                kinds[k] = PublicKind(kind=k, title=rk.title, required_files=rk.required_files, metric=rk.metric,
                                      lower_is_better=rk.lower_is_better, spec=rk.spec.model_dump(mode="json"))
            out[name] = PublicProject(title=p.title, kinds=kinds)
        return cls(projects=out)

    def resolve(self, submission: str) -> tuple[str, PublicKind]:
        """`final` or `conv/final` → (project, kind); a UserError that lists the choices otherwise."""
        project, kind = split_submission(submission)
        if not self.projects:
            raise UserError(f"--submit {submission}: this rai installation has no ranked projects",
                            hint="leave out --submit, or ask your course staff which kinds exist")
        if project is not None:
            p = self.projects.get(project)
            if p is None:
                raise UserError(f"--submit {submission}: no project {project!r}",
                                hint=f"the projects are: {', '.join(sorted(self.projects))}")
            if kind not in p.kinds:
                raise UserError(f"--submit {submission}: project {project} has no submission kind {kind!r}",
                                hint=f"its kinds are: {', '.join(p.kinds)}")
            return project, p.kinds[kind]
        having = [name for name, p in self.projects.items() if kind in p.kinds]
        if not having:
            raise UserError(f"--submit {submission}: unknown submission kind {kind!r}",
                            hint="the kinds are: " + "; ".join(f"{', '.join(p.kinds)} (project {name})"
                                                               for name, p in self.projects.items()))
        if len(having) > 1:
            raise UserError(f"--submit {submission}: several projects have a kind {kind!r}",
                            hint="say which: " + ", ".join(f"--submit {name}/{kind}" for name in having))
        return having[0], self.projects[having[0]].kinds[kind]


def split_submission(submission: str) -> tuple[str | None, str]:
    project, sep, kind = submission.strip().rpartition("/")
    if not kind or (sep and not project):
        raise UserError(f"--submit {submission!r}: give a kind such as final, or project/kind")
    return (project or None), kind


def missing_required_files(directory: Path, required: list[str]) -> list[str]:
    """The required files the project folder lacks, or would leave out (.raiignore), or holds empty."""
    rules = IgnoreRules.for_project(directory)
    missing = []
    for rel in required:
        path = directory / rel
        parts = PurePosixPath(rel).parts
        ignored = rules.ignored(rel, False) or any(rules.ignored("/".join(parts[:i]), True)
                                                   for i in range(1, len(parts)))
        if ignored or not path.is_file() or path.stat().st_size == 0:
            missing.append(rel)
    return missing


def check_submission(public: PublicProjects, directory: Path, submission: str) -> tuple[str, PublicKind]:
    """Before any upload: the kind exists and the folder holds its required files. Returns (project, kind)."""
    project, kind = public.resolve(submission)
    missing = missing_required_files(Path(directory), kind.required_files)
    if missing:
        raise UserError(
            f"a {kind.kind} submission of {project} needs {', '.join(missing)}, and {directory} has "
            + ("none" if len(missing) == 1 else "not all of them") + " (or it is empty)",
            hint=f"add {', '.join(missing)} to the project folder (and check .raiignore does not leave it out), "
                 "then submit again",
        )
    return project, kind


