"""raid's side of ranked submissions (`rai submit --submit KIND`): the project's build spec replaces the
submitter's `rai_build.yml`, its required files are checked in the archive, and the result is read from
what the job itself produced under that spec and recorded as a ranking entry. With a `check:` (the
staff's checker), the result is what the checker wrote or printed in a second, fresh container that
ran on a copy of the job's /build after every process of the job was gone.

Nothing a client sends can set a ranking: the client sends only a tar and the kind's name. The result
comes from the /build archive raid copied out of the container, or from the job's output as raid
captured it from the container (not read back from the Redis log stream, which clients can write to).
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections import deque
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from rai.backends.db import Database
from rai.domain.models import JobRecord, JobRequest, JobState, RankingEntry
from rai.domain.projects import ProjectConfig, RankedKind, as_number, lookup
from rai.domain.public_projects import PublicProjects
from rai.errors import UserError
from raid.verify import Refused

if TYPE_CHECKING:
    from rai.domain.projects import CheckConfig
    from rai.domain.spec import JobSpec
    from raid.executor import Executor, OutputSink, RunSpec

log = logging.getLogger("raid.ranking")

CAPTURE_LIMIT = 8 * 1024 * 1024  # bytes of the job's output kept for result patterns (the last ones)
RESULT_FILE_LIMIT = 1024 * 1024  # a result file larger than this is not read
DETAILS_LIMIT = 16 * 1024  # result values kept in an entry's details, as JSON


class RankedSubmissions:
    """Shared by every worker slot of a node; `open` gives the per-job `RankedRun` of a ranked submission."""

    def __init__(self, projects: dict[str, ProjectConfig], db: Database):
        self.projects = projects
        self.db = db

    def resolve(self, submission: str) -> RankedKind:
        try:
            project, kind = PublicProjects.from_config(self.projects).resolve(submission)
        except UserError as e:
            raise Refused("refused: " + e.message.replace("--submit ", "submission ", 1)
                          + (f" ({e.hint})" if e.hint else "")) from None
        return self.projects[project].kind(project, kind.kind)

    def open(self, req: JobRequest, record: JobRecord) -> RankedRun | None:
        """None for an ordinary job; for a ranked one, the run (its `kind` goes into the job's record, its
        `spec` replaces the user's). Raises Refused for a kind this server does not have."""
        if not req.submission:
            return None
        return RankedRun(self.resolve(req.submission), self.db, req, record)


class OutputTap:
    """Passes a job's output on to the log writer and keeps the last CAPTURE_LIMIT bytes of the streams asked."""

    def __init__(self, writer: OutputSink, streams: tuple[str, ...], limit: int = CAPTURE_LIMIT):
        self.writer = writer
        self.streams = streams
        self.limit = limit
        self.captured = bytearray()

    def output(self, kind: str, data: bytes) -> None:
        self.writer.output(kind, data)
        if getattr(kind, "value", kind) in self.streams:
            self.captured += data
            if len(self.captured) > 2 * self.limit:  # trim now and then, not on every chunk
                del self.captured[:-self.limit]

    def status(self, text: str) -> None:
        self.writer.status(text)

    def text(self) -> str:
        return bytes(self.captured[-self.limit:]).decode("utf-8", errors="replace")


class RankedRun:
    """One ranked job: checks its archive, taps its output, and records its ranking entry at the end."""

    def __init__(self, kind: RankedKind, db: Database, req: JobRequest, record: JobRecord):
        self.kind = kind
        self.db = db
        self.req = req
        self.record = record
        self.tap: OutputTap | None = None

    @property
    def spec(self) -> JobSpec:
        return self.kind.spec

    def check_source(self, source_tar: Path) -> None:
        """Raise Refused when the project archive lacks one of the kind's required files (or holds it empty)."""
        if not self.kind.required_files:
            return
        present = set()
        with tarfile.open(source_tar, mode="r:") as tar:
            for m in tar:
                if m.isfile() and m.size > 0:
                    present.add(PurePosixPath(m.name.removeprefix("./")).as_posix())
        missing = [f for f in self.kind.required_files if f not in present]
        if missing:
            raise Refused(f"refused: a {self.kind.kind} submission of {self.kind.project} needs "
                          f"{', '.join(missing)} in the project folder, and the upload has none; "
                          "add it and submit again")

    def _streams(self) -> tuple[str, ...]:
        return {"stdout": ("stdout",), "stderr": ("stderr",), "both": ("stdout", "stderr")}[self.kind.result.stream]

    def watch(self, writer: OutputSink) -> OutputSink:
        """The sink the executor writes the job's output to (it goes on to `writer`)."""
        writer.status(f"ranked submission {self.kind.name}: the project's build spec runs "
                      "(your rai_build.yml is not used)")
        if self.kind.check is not None:  # the result comes from the checker's container, not from this output
            return writer
        self.tap = OutputTap(writer, self._streams())
        return self.tap

    def finish(self, state: JobState, build_tar: Path, executor: Executor, job_spec: RunSpec, sink: OutputSink,
               should_cancel: Callable[[], str | None]) -> str:
        """Rank the job that ended in `state` with /build in `build_tar`: through the staff's checker in a
        fresh container when the kind has one, else from the job's own /build or output. Returns a line for
        the job's end message; never raises."""
        check = self.kind.check
        if check is None:
            return self.record_result(state, build_tar)
        try:
            checked = self._run_check(check, build_tar, executor, job_spec, sink, should_cancel)
        except Exception as e:  # the job's own end must not suffer from this
            log.exception("the checker of job %s failed to run", self.req.job_id)
            return (f"{self.kind.name}: not ranked: the checker could not run ({type(e).__name__}); "
                    "ask your course staff")
        if isinstance(checked, str):
            return f"{self.kind.name}: not ranked: {checked}"
        return self.record_result(state, checked)

    def _run_check(self, check: CheckConfig, build_tar: Path, executor: Executor, job_spec: RunSpec,
                   sink: OutputSink, should_cancel: Callable[[], str | None]) -> Path | str:
        """The checker's /build archive, or why there is none."""
        from dataclasses import replace

        if not build_tar.exists():
            return "/build could not be copied from the job's container"
        source = build_tar.with_name("checked-build.tar")
        strip_top(build_tar, source, "build")
        sink.status(f"checking the result in a fresh container: {'; '.join(check.commands)}")
        spec: RunSpec = replace(job_spec, image=check.image or job_spec.image, commands=list(check.commands),
                                source_tar=source, network=False, time_limit=check.time, gpus=job_spec.gpus,
                                memory_limit=check.memory or job_spec.memory_limit,
                                labels={**job_spec.labels, "rai.check": "1"})
        self.tap = OutputTap(sink, self._streams())
        out = build_tar.with_name("checker-build.tar")
        result = executor.run(spec, self.tap, should_cancel, out)
        if result.state != JobState.succeeded:
            return f"the checker ended {result.state.value}: {result.message}"
        return out

    def record_result(self, state: JobState, build_tar: Path) -> str:
        """Read the result, save the ranking entry; returns a line for the job's end message. Never raises."""
        try:
            return self._record(state, build_tar)
        except Exception as e:  # the job's own end must not suffer from this
            log.exception("ranking job %s failed", self.req.job_id)
            return f"{self.kind.name}: not ranked: the server could not record the result ({type(e).__name__}); " \
                   "ask your course staff"

    def _record(self, state: JobState, build_tar: Path) -> str:
        k = self.kind
        values, problem = self.read_values(build_tar)
        if values is None:
            return f"{k.name}: not ranked: {problem}"
        raw = lookup(values, k.metric)
        value = as_number(raw)
        if value is None:
            why = "is missing from the result" if raw is None else f"is {raw!r}, not a number"
            return f"{k.name}: not ranked: {k.metric} {why}"
        reasons = [] if state == JobState.succeeded else [f"the job ended {state.value}"]
        reasons += [p for key, rule in k.valid.items() if (p := rule.problem(key, lookup(values, key)))]
        details: dict[str, Any] = {"result": values}
        if len(json.dumps(values, default=str)) > DETAILS_LIMIT:
            details = {"result": {key: lookup(values, key) for key in (k.metric, *k.valid)}}
        if reasons:
            details["invalid"] = reasons
        entry = RankingEntry(project=k.project, kind=k.kind, job_id=self.req.job_id, username=self.record.username,
                             team=self.record.team or self.record.username, metric=k.metric, value=value,
                             valid=not reasons, details=details)
        self.db.save_ranking(entry)
        log.info("job %s: %s %s = %g (%s)", self.req.job_id, k.name, k.metric, value,
                 "valid" if not reasons else "; ".join(reasons))
        if reasons:
            return f"{k.name}: {k.metric} = {value:g}, not ranked: {'; '.join(reasons)}"
        return f"{k.name}: {k.metric} = {value:g}, ranked (see `rai ranking`)"

    def read_values(self, build_tar: Path) -> tuple[dict[str, Any] | None, str]:
        """The result values, or None and why there are none."""
        source = self.kind.result
        if source.file is not None:
            return read_result_file(build_tar, source.file)
        text = self.tap.text() if self.tap is not None else ""
        values = match_patterns(source.patterns, text)
        if not values:
            return None, "no line of the output matches the result patterns"
        return values, ""


def read_result_file(build_tar: Path, name: str) -> tuple[dict[str, Any] | None, str]:
    """The JSON object at /build/`name` in the job's /build archive (paths `build/...`)."""
    if not build_tar.exists():
        return None, "/build could not be copied from the container"
    wanted = f"build/{name}"
    try:
        with tarfile.open(build_tar, mode="r:") as tar:
            for m in tar:
                if PurePosixPath(m.name.removeprefix("./")).as_posix() != wanted:
                    continue
                if not m.isfile():
                    return None, f"/build/{name} is not a regular file"
                if m.size > RESULT_FILE_LIMIT:
                    return None, f"/build/{name} is larger than {RESULT_FILE_LIMIT // 1024} KiB"
                f = tar.extractfile(m)
                data = f.read() if f is not None else b""
                break
            else:
                return None, f"the job wrote no /build/{name}"
    except tarfile.TarError as e:
        return None, f"the /build archive cannot be read ({e})"
    try:
        values = json.loads(data)
    except ValueError as e:
        return None, f"/build/{name} is not valid JSON ({e})"
    if not isinstance(values, dict):
        return None, f"/build/{name} must hold a JSON object"
    return values, ""


def match_patterns(patterns: list[str], text: str) -> dict[str, Any]:
    """Named groups of each pattern's last match in `text`; numbers become floats."""
    values: dict[str, Any] = {}
    for p in patterns:
        last = deque(re.finditer(p, text, re.MULTILINE), maxlen=1)
        if not last:
            continue
        for name, raw in last[0].groupdict().items():
            if raw is not None:
                number = as_number(raw)
                values[name] = number if number is not None else raw
    return values


def strip_top(src: Path, dest: Path, top: str) -> None:
    """Copy the tar `src` to `dest` without its leading folder `top/` (a job's /build archive → /src)."""
    with tarfile.open(src, mode="r:") as inp, tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as out:
        for m in inp:
            parts = PurePosixPath(m.name).parts
            if parts and parts[0] == top:
                parts = parts[1:]
            if not parts:
                continue
            m.name = PurePosixPath(*parts).as_posix()
            out.addfile(m, inp.extractfile(m) if m.isfile() else None)
