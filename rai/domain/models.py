"""Versioned JSON messages that cross processes: job requests, log entries, records, heartbeats.

Rules: times are UTC, a field is added and never renamed, readers ignore fields they don't know.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rai.domain.wire import SCHEMA_VERSION, canonical_json


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)
    v: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=False)

    @classmethod
    def from_json(cls, data: str | bytes):
        return cls.model_validate_json(data)


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    timeout = "timeout"
    oom = "oom"
    cancelled = "cancelled"
    refused = "refused"
    error = "error"

    @property
    def finished(self) -> bool:
        return self not in (JobState.queued, JobState.running)


class Signed(Message):
    """A message its sender signs with their secret key (rai.domain.signing) over every other field; each kind
    declares its `signature` last (the fields keep their order on the wire)."""

    def signing_payload(self) -> bytes:
        """The canonical JSON of every field but the signature."""
        return canonical_json(self.model_dump(mode="json", exclude={"signature"}))


class JobRequest(Signed):
    """What `rai submit` enqueues; signed by the submitter's secret key over every other field."""

    job_id: str
    access_key: str
    username: str
    team: str | None = None
    queue: str
    spec: dict[str, Any]
    upload_key: str
    upload_sha256: str
    upload_size: int = 0
    submission: str | None = None  # ranked submission kind (m1, final, ...) when asked
    submitted_at: datetime = Field(default_factory=utcnow)
    client_version: str = ""
    signature: str = ""


class CancelRequest(Signed):
    job_id: str
    access_key: str
    requested_at: datetime = Field(default_factory=utcnow)
    signature: str = ""


class LogKind(str, Enum):
    stdout = "stdout"
    stderr = "stderr"
    status = "status"
    end = "end"


class JobEnd(BaseModel):
    """The final entry of every job: why it ended, how, and where its outputs are."""

    model_config = ConfigDict(extra="ignore", defer_build=True)
    state: JobState
    exit_code: int | None = None
    duration: float = 0.0
    output_key: str | None = None
    output_url: str | None = None
    message: str = ""


class LogEntry(Message):
    """One entry of a job's log stream; stdout/stderr bodies hold many lines (batched)."""

    kind: LogKind
    body: str = ""
    at: datetime = Field(default_factory=utcnow)
    end: JobEnd | None = None


class JobRecord(Message):
    job_id: str
    username: str
    team: str | None = None
    access_key: str = ""
    queue: str = ""
    state: JobState = JobState.queued
    node: str | None = None
    image: str | None = None
    submission: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    duration: float | None = None
    output_key: str | None = None
    upload_key: str | None = None
    message: str = ""
    attempts: int = 0
    project: str | None = None  # ranked submissions: the project whose kind `submission` is (set by raid)
    gpus: int = 0  # GPUs the job asked for (resources.gpu.count): what GPU-hours are counted with


class Role(str, Enum):
    student = "student"
    ta = "ta"
    admin = "admin"


class Account(Message):
    username: str
    email: str
    firstname: str = ""
    lastname: str = ""
    team: str | None = None
    role: str = Role.student.value
    affiliation: str = ""
    access_key: str
    secret_key: str
    created_at: datetime = Field(default_factory=utcnow)
    revoked: bool = False
    revoked_at: datetime | None = None
    credentials_sent_at: datetime | None = None  # when the current secret was last mailed; None: never


class GPUStat(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)
    index: int
    name: str = ""
    utilization: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None


class NodeHeartbeat(Message):
    node: str
    host: str
    arch: str
    version: str
    queue: str
    capacity: int
    running: list[str] = Field(default_factory=list)
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    memory_total: int = 0
    disk_free: int = 0
    disk_total: int = 0
    gpus: list[GPUStat] = Field(default_factory=list)
    gpu_count: int = 0  # GPUs the node offers jobs (raid.gpus, or those nvidia-smi lists at start)
    draining: bool = False
    refusing: str | None = None  # why the node takes no jobs now (disk below raid.min_free_disk)
    started_at: datetime | None = None
    at: datetime = Field(default_factory=utcnow)

    @property
    def offered_gpus(self) -> int:
        """GPUs the node runs jobs on: its configured count, or as many as nvidia-smi reports."""
        return max(self.gpu_count, len(self.gpus))


class RankingEntry(Message):
    project: str
    kind: str
    job_id: str
    username: str
    team: str
    metric: str
    value: float
    valid: bool
    details: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)
