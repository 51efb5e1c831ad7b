"""The JSON bodies of rai-server's answers (versioned under /v1/; a field is added, never renamed)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from rai.domain.models import JobRecord
from rai.domain.public_projects import PublicProjects


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Problem(Body):
    """Every refusal: what is wrong and, where it helps, what to do."""

    error: str
    hint: str | None = None


class Whoami(Body):
    username: str
    team: str | None = None
    role: str
    default_queue: str | None = None  # the server's broker.queue; None: rai_<architecture of the spec>
    projects: PublicProjects
    max_upload: int


class Uploaded(Body):
    upload_key: str
    sha256: str
    size: int


class Waiting(Body):
    ahead: int  # jobs that run before this one (under fair share: in the order the scheduler will take them)
    on_queue: int
    eta_seconds: float | None = None  # when it may start, from recent durations and the nodes' job slots
    eta: str | None = None  # the same in words: "about 6 min"; None when no node serves the queue


class Submitted(Body):
    job_id: str
    queue: str
    notice: str | None = None  # why the job may not start soon (no node on the queue, all drained, no GPUs)


class JobStatus(Body):
    job: JobRecord
    waiting: Waiting | None = None


class Health(Body):
    ok: bool
    redis: str
    version: str
