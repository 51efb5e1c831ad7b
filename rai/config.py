"""The config file shared by every program (`--config`, `RAI_CONFIG`, `~/.rai_config.yml`).

An absent file means the embedded defaults: local Redis, SQLite, a local store and an outbox
folder under the user's data directory. Section names follow the original RAI where they fit.
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Literal

import yaml
from platformdirs import user_data_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rai.config_file import (
    DEFAULT_CLIENT_TIMEOUT,
    DEFAULT_SERVER_PORT,
    DEFAULT_SERVER_URL,
    config_path,
    named_explicitly,
)
from rai.domain.projects import ProjectConfig
from rai.domain.spec import fields_at, format_loc, unknown_name
from rai.errors import UserError
from rai.units import parse_duration, parse_size

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def data_dir() -> Path:
    """Where the embedded defaults keep their files (`RAI_DATA_DIR` overrides)."""
    return Path(os.environ.get("RAI_DATA_DIR") or user_data_dir("rai", appauthor=False))


def machine_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class AppConfig(Section):
    name: str = "rai"
    secret: str | None = None  # app secret: decrypts `==AESGCM==` values, anonymises rankings


RECORD_OUTLIVES_LOG = 30 * 86400  # a job's status answers for this long after its log has gone


class PubSubConfig(Section):
    url: str = DEFAULT_REDIS_URL
    start_local: bool = True  # start a local redis-server when the URL is local and nothing answers
    retention: float = 7 * 86400  # seconds a job's log stream is kept after its end
    max_entries: int = 100_000  # entries kept per job log stream (each entry is up to 64 KB)
    max_log_bytes: int = 64 * 1024**2  # output bytes kept per job log; past it the log keeps its head and tail

    _dur = field_validator("retention", mode="before")(lambda v: parse_duration(v))
    _size = field_validator("max_log_bytes", mode="before")(lambda v: parse_size(v))

    @property
    def record_ttl(self) -> float:
        """Seconds a job's live record (`rai status`) is kept: a month past its log's `retention`."""
        return self.retention + RECORD_OUTLIVES_LOG


class BrokerConfig(Section):
    provider: Literal["redis", "sqs"] = "redis"
    queue: str | None = None  # default rai_<arch>
    visibility_timeout: float = 60.0  # a claimed job not kept alive this long goes back to the queue
    max_attempts: int = 3
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    dead_letter_queue: str | None = None  # SQS: one dead-letter queue for all; default <queue>_dead per queue
    queue_prefix: str = "rai_"  # SQS: the queues raid, the console and upload credentials may use
    create_queues: bool = True  # SQS: raid creates a missing queue (and its dead-letter queue) at first use

    _dur = field_validator("visibility_timeout", mode="before")(lambda v: parse_duration(v))

    def queue_name(self) -> str:
        return self.queue or f"rai_{machine_arch()}"


class StoreConfig(Section):
    provider: Literal["local", "s3"] = "local"
    path: str | None = None
    bucket: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    url_expiry: float = 7 * 86400
    upload_credentials: float = 15 * 60  # STS lifetime for client uploads
    # Read but no longer used: clients upload through rai-server, which holds the store's credentials.
    upload_role_arn: str | None = None
    sts_endpoint_url: str | None = None
    client_credentials: Literal["vended", "static"] = "vended"
    vend_timeout: float = 15.0
    uploads_retention: float = 30 * 86400  # S3 lifecycle: uploads/ deleted after this (rai-aws setup)
    outputs_retention: float = 90 * 86400  # S3 lifecycle: outputs/ deleted after this (rai-aws setup)
    multipart_chunk: int = 8 * 1024**2  # S3: part size of multipart uploads

    _dur = field_validator("url_expiry", "upload_credentials", "vend_timeout", "uploads_retention",
                           "outputs_retention", mode="before")(lambda v: parse_duration(v))
    _size = field_validator("multipart_chunk", mode="before")(lambda v: parse_size(v))

    def local_path(self) -> Path:
        return Path(self.path).expanduser() if self.path else data_dir() / "store"


class DatabaseConfig(Section):
    provider: Literal["sqlite", "mongodb"] = "sqlite"
    path: str | None = None
    url: str | None = None
    name: str = "rai"

    def sqlite_path(self) -> Path:
        return Path(self.path).expanduser() if self.path else data_dir() / "rai.db"

    def where(self) -> str:
        """Where the database is, as an operator reads it: the SQLite file, else the provider's name."""
        return str(self.sqlite_path()) if self.provider == "sqlite" else self.provider


class AuthConfig(Section):
    provider: Literal["database", "auth0"] = "database"
    domain: str | None = None
    base_url: str | None = None  # Auth0 Management API base, for tests and private tenants
    client_id: str | None = None
    client_secret: str | None = None
    token: str | None = None
    connection: str = "Username-Password-Authentication"
    audience: str | None = None  # Management API audience, default https://<domain>/api/v2/


class EmailConfig(Section):
    provider: Literal["outbox", "mailgun"] = "outbox"
    outbox: str | None = None
    domain: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    sender: str = "rai <rai@localhost>"
    template: str | None = None
    client_url: str = "pip install rai"

    def outbox_path(self) -> Path:
        return Path(self.outbox).expanduser() if self.outbox else data_dir() / "outbox"


class DockerConfig(Section):
    base_url: str | None = None  # default: DOCKER_HOST, then the usual Docker/Podman sockets
    image: str = "localhost/rai-test:latest"  # used when a spec names none
    time_limit: float = 3600.0
    memory_limit: int = 16 * 1024**3
    pids_limit: int = 4096
    output_limit: int = 1024**3
    upload_limit: int = 4 * 1024**3  # bytes a project may unpack to (the archive's content, not its size)
    max_files: int = 100_000  # files and folders a project archive may hold
    max_depth: int = 64  # folders deep a path in a project archive may go
    nofile: int = 1024
    nproc: int = 4096
    allow_network: bool = True  # a spec may ask for network when its role allows it
    gpu_driver: str = "nvidia"
    cpu_limit: float | None = Field(default=None, gt=0)  # CPUs a job may use at most (resources.limits.cpus capped)
    allowed_images: list[str] = Field(default_factory=lambda: ["*"])  # glob patterns; a role's own list wins
    image_keep: float | None = 7 * 86400  # images raid used or built, unused this long, are pruned; None: kept
    build_budget: int | None = None  # bytes the images built from projects may take; past it the oldest go
    build_memory_limit: int = 4 * 1024**3  # memory a project's image build may use
    prune_interval: float = 3600.0  # seconds between two prunes of the node's images

    _dur = field_validator("time_limit", "prune_interval", mode="before")(lambda v: parse_duration(v))
    _keep = field_validator("image_keep", mode="before")(lambda v: None if v is None else parse_duration(v))
    _size = field_validator("memory_limit", "output_limit", "upload_limit", "build_memory_limit",
                            mode="before")(lambda v: parse_size(v))
    _budget = field_validator("build_budget", mode="before")(lambda v: None if v is None else parse_size(v))


class RaidConfig(Section):
    workers: int = 2
    node: str | None = None
    heartbeat_interval: float = 5.0
    max_request_age: float = 7 * 86400  # a signed request older than this is refused
    work_dir: str | None = None
    gpus: int | None = Field(default=None, ge=0)  # GPUs this node offers jobs; None: as many as nvidia-smi lists
    min_free_disk: int | None = 2 * 1024**3  # below this free in work_dir the node takes no jobs; None: no check

    _free = field_validator("min_free_disk", mode="before")(lambda v: None if v is None else parse_size(v))
    _dur = field_validator("heartbeat_interval", "max_request_age", mode="before")(
        lambda v: parse_duration(v)
    )

    def node_name(self) -> str:
        return self.node or socket.gethostname()

    def work_path(self) -> Path:
        return Path(self.work_dir).expanduser() if self.work_dir else data_dir() / "work"


class ServerConfig(Section):
    """rai-server, the HTTP(S) API every client talks to; the students' config holds only `url` (and `ca_bundle`)."""

    listen: str = f"127.0.0.1:{DEFAULT_SERVER_PORT}"  # HOST:PORT rai-server binds
    url: str = DEFAULT_SERVER_URL  # where clients reach it (https://... behind TLS)
    tls_cert: str | None = None  # PEM certificate (chain) rai-server serves; with tls_key, HTTPS
    tls_key: str | None = None
    ca_bundle: str | None = None  # clients: a PEM bundle to verify a private CA's certificate
    max_upload: int = 512 * 1024**2  # bytes a project archive may have; more is refused (413)
    rate_limits: dict[str, int | None] = Field(default_factory=lambda: {"student": 10, "ta": 60, "admin": None})
    request_window: float = 300.0  # seconds a signed request may be off the server's clock
    timeout: float = DEFAULT_CLIENT_TIMEOUT  # clients: seconds to wait for the server to answer one request
    metrics_token: str | None = None  # set: GET /metrics wants `Authorization: Bearer <token>`; unset: open

    _size = field_validator("max_upload", mode="before")(lambda v: parse_size(v))
    _dur = field_validator("request_window", "timeout", mode="before")(lambda v: parse_duration(v))

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http:// or https:// URL")
        return v.rstrip("/")

    def listen_address(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise UserError(f"server.listen {self.listen!r} is not HOST:PORT", hint="e.g. 0.0.0.0:8443")
        return host.strip("[]") or "0.0.0.0", int(port)

    def submissions_per_minute(self, role: str) -> int | None:
        """The role's submissions a minute; None: no limit. A role not named gets the student's."""
        if role in self.rate_limits:
            return self.rate_limits[role]
        return self.rate_limits.get("student")


class UserQuota(Section):
    """One user's quota, overriding their role's (a key left out keeps the role's; null: no limit)."""

    jobs_per_hour: int | None = Field(default=None, ge=0)
    gpu_hours_per_day: float | None = Field(default=None, ge=0)


class SchedulerConfig(Section):
    """Which waiting job a node takes next (rai/domain/fairshare.py has the arithmetic)."""

    policy: Literal["fair", "fifo"] = "fair"  # fair: the least recent usage first; fifo: submission order
    half_life: float = 3600.0  # seconds after which a job's usage counts half
    by: Literal["user", "team"] = "user"  # whose usage is compared: each user's, or each team's
    age_weight: float = Field(default=0.01, ge=0)  # usage-seconds a second of waiting is worth (no starving)
    quotas: dict[str, UserQuota] = Field(default_factory=dict)  # username -> quota overriding the role's

    def quota(self, roles: dict, role: str, username: str) -> tuple[int | None, float | None]:
        """(jobs_per_hour, gpu_hours_per_day) for `username` of `role`: their override, else the role's."""
        limits = roles.get(role)
        jobs = limits.jobs_per_hour if limits else None
        gpu = limits.gpu_hours_per_day if limits else None
        mine = self.quotas.get(username)
        if mine is not None:
            jobs = mine.jobs_per_hour if "jobs_per_hour" in mine.model_fields_set else jobs
            gpu = mine.gpu_hours_per_day if "gpu_hours_per_day" in mine.model_fields_set else gpu
        return jobs, gpu

    _dur = field_validator("half_life", mode="before")(lambda v: parse_duration(v))


class RoleLimits(Section):
    time_limit: float | None = None
    memory_limit: int | None = None
    gpus: int | None = None
    network: bool = False
    queues: list[str] | None = None  # None: any queue
    jobs_at_once: int | None = None
    allowed_images: list[str] | None = None  # glob patterns; None: docker.allowed_images
    jobs_per_hour: int | None = Field(default=None, ge=0)  # submissions an hour; more are refused at submit
    gpu_hours_per_day: float | None = Field(default=None, ge=0)  # GPU-hours of ended jobs in the last 24 h

    _dur = field_validator("time_limit", mode="before")(lambda v: None if v is None else parse_duration(v))
    _size = field_validator("memory_limit", mode="before")(lambda v: None if v is None else parse_size(v))


def default_roles() -> dict[str, RoleLimits]:
    return {
        "student": RoleLimits(network=False, jobs_at_once=2),
        "ta": RoleLimits(network=True),
        "admin": RoleLimits(network=True),
    }


class Config(BaseModel):
    # a misspelt section is refused with the nearest name (load_config); the schema is built at first use
    model_config = ConfigDict(extra="forbid", defer_build=True)
    app: AppConfig = Field(default_factory=AppConfig)
    pubsub: PubSubConfig = Field(default_factory=PubSubConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    docker: DockerConfig = Field(default_factory=DockerConfig)
    raid: RaidConfig = Field(default_factory=RaidConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    roles: dict[str, RoleLimits] = Field(default_factory=default_roles)
    projects: dict[str, ProjectConfig] = Field(default_factory=dict)  # ranked submissions (rai/domain/projects.py)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)  # fair share or fifo (rai/domain/fairshare.py)
    source: str | None = None  # the file this was read from, None for embedded defaults

    def app_secret(self) -> str | None:
        return os.environ.get("RAI_APP_SECRET") or self.app.secret


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read the config; a missing default file gives the embedded defaults, a missing named file is an error."""
    from rai.crypto import decrypt_tree

    p = config_path(path)
    if not p.exists():
        if named_explicitly(path):
            raise UserError(f"config file {p} does not exist", hint="check --config or RAI_CONFIG")
        return Config()
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"config file {p} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise UserError(f"config file {p} must be a YAML mapping of sections (pubsub:, broker:, ...)")
    app = raw.get("app")
    secret = os.environ.get("RAI_APP_SECRET") or (app.get("secret") if isinstance(app, dict) else None)
    raw = decrypt_tree(raw, secret)
    problems = []
    for key in [k for k in raw if k in INTERNAL_FIELDS]:  # set by load_config, not by the file
        problems.append(f"  {key}: {unknown_name(key, SECTIONS, 'section')}")
        raw = {k: v for k, v in raw.items() if k != key}
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        problems.append(format_validation_error(e))
    if problems:
        raise UserError(f"config file {p} is invalid:\n" + "\n".join(problems)) from None
    cfg.source = str(p)
    return cfg


INTERNAL_FIELDS = ("source",)
SECTIONS = [name for name in Config.model_fields if name not in INTERNAL_FIELDS]  # what a config file may hold


def format_validation_error(e: ValidationError, model: type[BaseModel] = Config) -> str:
    """One line per error: where (`docker.memory_limit`, `projects.p.spec.commands.build[0]`) and what is wrong;
    an unknown key names the nearest valid one, or lists them."""
    lines = []
    for err in e.errors():
        loc = err["loc"]
        where = format_loc(loc, model) or "(top)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            names = fields_at(model, loc[:-1]) or []
            if model is Config and len(loc) == 1:
                msg = unknown_name(loc[0], SECTIONS, "section")
            else:
                msg = unknown_name(loc[-1], [n for n in names if n not in INTERNAL_FIELDS], of=format_loc(loc[:-1]))
        lines.append(f"  {where} {msg}" if err["type"] == "not_a_command" else f"  {where}: {msg}")
    return "\n".join(lines)
