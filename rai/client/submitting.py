"""A submit, from a project folder to a queued job, over one connection to rai-server (rai/client/channel.py):

1. the project is packed in a thread of its own from the start (rai/client/packing.py), while
2. whoami asks the server for its default queue and upload limit, as
3. rai_build.yml is checked (or, for a ranked submission, the spec of its kind taken from whoami's answer):
   by pydantic's models the first time, from the client's cache (rai/client/spec_cache.py) while the file is
   unchanged;
4. the packed bytes are uploaded as they come (no archive on disk), their digest and size computed on the way
   and compared with what the server measured;
5. the job request, signed with the user's secret key over the upload's digest, is sent (written by
   rai/domain/wire.py: a submit of a checked spec loads no pydantic).

A bad spec, a project with nothing to upload or a file that cannot be read is said before anything is
uploaded; an upload that would pass the server's limit is stopped with the server's words.
`rai submit` calls `submit_project` straight from the command line, before the rest of the client loads;
rai.client.core.Client.submit calls it too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rai import __version__
from rai.client import spec_cache
from rai.client.channel import Channel
from rai.client.packing import PackStream
from rai.client.settings import ServerSettings
from rai.domain.job_ids import new_job_id
from rai.domain.object_keys import upload_key
from rai.domain.wire import job_request_json
from rai.errors import UserError
from rai.units import format_size

if TYPE_CHECKING:  # the spec's models load only when a spec is checked
    from rai.domain.spec import JobSpec

UPLOAD_CHUNK = 1 << 20  # the most one piece of the upload holds (zstd hands out a whole job's output at once)
SPEC_FILE = "rai_build.yml"  # rai.domain.spec.SPEC_FILE (tests/test_spec.py): that module loads pydantic


@dataclass
class Submission:
    job_id: str
    queue: str
    spec_fields: dict[str, Any]  # what runs: the checked spec, as the job request carries it
    files: int
    size: int
    notice: str | None = None  # the server's word on why the job may not start soon


@dataclass(frozen=True)
class Credentials:
    """Who submits: the profile's fields a job request carries and is signed with."""

    username: str
    access_key: str
    secret_key: str
    team: str | None = None

    @classmethod
    def of(cls, profile: Any) -> Credentials:
        """From a Profile (rai.client.profile.load_profile) or its fields (read_profile)."""
        fields = profile if isinstance(profile, Mapping) else vars(profile)
        return cls(str(fields["username"]), str(fields["access_key"]), str(fields["secret_key"]),
                   fields.get("team"))


def submit_project(
    server: ServerSettings,
    who: Credentials,
    directory: Path,
    queue: str | None = None,
    submission: str | None = None,
    exclude: tuple[Path, ...] = (),
    on_progress: Callable[[str], None] = lambda _: None,
    spec: JobSpec | None = None,
    upload_progress: Callable[[int, int | None], None] | None = None,
    packing: PackStream | None = None,
    me: dict | None = None,
) -> Submission:
    """Validate, pack, upload and enqueue `directory`; returns as soon as the job is queued.

    `packing`: the PackStream of `directory` already started by the caller, closed here whatever happens.
    `upload_progress(bytes_just_sent, None)` is called as the upload goes (its total is not known before
    the end). `me`: the server's whoami answer when the caller has it already."""
    directory = Path(directory)
    packing = packing or PackStream(directory, exclude=exclude)
    channel = Channel(server, who.access_key, who.secret_key)
    try:
        with packing:
            return _submit(channel, who, directory, queue, submission, on_progress, spec, upload_progress,
                           packing, me)
    finally:
        channel.close()


def _submit(channel: Channel, who: Credentials, directory: Path, queue: str | None, submission: str | None,
            on_progress: Callable[[str], None], spec: JobSpec | None,
            upload_progress: Callable[[int, int | None], None] | None, stream: PackStream,
            me: dict | None) -> Submission:
    whoami = (lambda: me) if me is not None else channel.later("GET", "/v1/whoami")
    if submission:  # a ranked submission: refused here, before any upload, for an unknown kind or a missing file
        from rai.domain.public_projects import PublicProjects, check_submission
        from rai.domain.spec import parse_spec

        public = PublicProjects.model_validate(whoami()["projects"])
        _project, kind = check_submission(public, directory, submission)
        if spec is None and kind.spec is not None:
            spec = parse_spec(kind.spec, f"the build spec of {submission}")  # what raid will run
    try:
        fields = spec.model_dump(mode="json") if spec is not None else checked_spec(directory)
    except BaseException:
        try:  # the spec's own error is what the user sees; the channel is free again once whoami is back
            whoami()
        except BaseException:  # noqa: BLE001, S110 - unreachable or refused: the spec comes first
            pass
        raise
    answer = whoami()
    queue = queue or answer.get("default_queue") or f"rai_{fields['resources']['cpu']['architecture']}"
    job_id = new_job_id()
    on_progress(f"packing {directory} (uploading as it packs)")
    chunks = iter(stream)
    first = next(chunks, b"")  # nothing to upload, or a file that cannot be read: said before any request
    body = _upload_body(first, chunks, answer.get("max_upload"), upload_progress)
    uploaded = channel.request("PUT", f"/v1/uploads/{job_id}", body=body, content_type="application/zstd",
                               timeout=max(channel.timeout, 600))
    packed = stream.result
    if packed is None:  # the server answered before it had the whole stream (a server that does not wait)
        raise UserError("the server answered before the whole project was uploaded", hint="submit again")
    if uploaded.get("sha256") != packed.sha256 or uploaded.get("size", packed.size) != packed.size:
        raise UserError("the server received a different archive than the one sent", hint="submit again")
    on_progress(f"uploaded {packed.files} files ({packed.size} bytes)")
    request = job_request_json(
        job_id=job_id,
        access_key=who.access_key,
        username=who.username,
        team=who.team,
        queue=queue,
        spec=fields,
        upload_key=uploaded.get("upload_key") or upload_key(who.username, job_id),
        upload_sha256=packed.sha256,
        upload_size=packed.size,
        submission=submission,
        client_version=__version__,
        secret_key=who.secret_key,
    )
    queued = channel.request("POST", "/v1/jobs", body=request, content_type="application/json")
    return Submission(job_id, queued["queue"], fields, packed.files, packed.size, queued.get("notice"))


def checked_spec(directory: Path) -> dict[str, Any]:
    """`directory`'s rai_build.yml, checked, as the job request carries it: from the cache while the file is
    unchanged since it last passed, else checked by the spec's models (and refused in their words)."""
    path = directory / SPEC_FILE
    try:
        raw = path.read_bytes()
    except OSError:
        raw = None  # not there, or a folder: load_spec says so
    fields = spec_cache.checked(raw) if raw is not None else None
    if fields is not None:
        return fields
    from rai.domain.spec import load_spec, load_spec_text, spec_text

    spec = load_spec(directory) if raw is None else load_spec_text(spec_text(raw, str(path)), str(path))
    fields = spec.model_dump(mode="json")
    if raw is not None:
        spec_cache.remember(raw, fields)
    return fields


def _upload_body(first: bytes, rest: Iterator[bytes], cap: int | None,
                 progress: Callable[[int, int | None], None] | None) -> Iterator[bytes | memoryview]:
    """The PUT body: the compressed chunks as the packer makes them (the total is not known before the end:
    `progress(n, None)`); stopped with the server's own words once they would pass its `max_upload`."""
    sent = 0
    for packed in itertools.chain((first,), rest):
        view = memoryview(packed)
        for at in range(0, len(packed), UPLOAD_CHUNK):
            chunk = view[at:at + UPLOAD_CHUNK]
            if cap is not None and sent + len(chunk) > cap:
                raise UserError(f"the packed project is over the server's limit of {format_size(cap)} "
                                f"(stopped after {format_size(sent)} of it)",
                                hint="leave large data and build outputs out with .raiignore")
            sent += len(chunk)
            if progress is not None:
                progress(len(chunk), None)
            yield chunk
