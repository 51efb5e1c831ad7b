"""The console's reads and writes on the backends, without any widget: call these from worker threads.
Views reach the backends only through `ConsoleData` (accounts: `ConsoleData.accounts`, raitui/account_desk.py).

Every call here may block (Redis, the database, a remote API); none raises for a backend that does
not answer. A snapshot carries what it could read and, per service, why the rest is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from rai.backends import Backends
from rai.backends.queue import QueueDepth
from rai.domain.leaderboard import Board, label_secret, load_board, team_members
from rai.domain.models import Account, CancelRequest, JobRecord, JobState, LogEntry, Role, utcnow
from rai.domain.projects import RankedKind
from rai.domain.signing import sign
from rai.live.board import NodeView
from rai.live.places import Place, place_in, read_order
from rai.live.quotas import QuotaBook
from raitui.account_desk import AccountDesk
from raitui.user_usage import USAGE_WINDOW, UserUsage, quota_words, user_usage

OPERATOR = "raitui-operator"  # the admin account the console signs operator actions with
HOUR = 3600.0
HISTORY_MAX_AGE = 10.0  # seconds a queue's depth history is reused (raid samples it every few seconds)
RATE_WINDOW = 600.0  # seconds over which jobs/min is measured
USAGE_JOBS = 100_000  # job records the Users view reads at most (a day of a large class)


def describe_error(e: BaseException) -> str:
    """One line for the operator: what failed, no traceback."""
    text = getattr(e, "message", None) or str(e) or type(e).__name__
    return text.splitlines()[0].strip()


@dataclass(frozen=True)
class JobFilter:
    """What `/` typed: `user:ada state:running 2024` — `key:value` terms match one field, bare words any.

    Keys: user (u), team (t), state (s), node (n), id, queue (q). Every term must match.
    """

    text: str = ""

    FIELDS = {"user": "username", "u": "username", "team": "team", "t": "team", "state": "state",
              "s": "state", "node": "node", "n": "node", "id": "job_id", "queue": "queue", "q": "queue"}

    def terms(self) -> list[tuple[str | None, str]]:
        out: list[tuple[str | None, str]] = []
        for word in self.text.split():
            key, sep, value = word.partition(":")
            if sep and key.lower() in self.FIELDS and value:
                out.append((self.FIELDS[key.lower()], value.lower()))
            elif word:
                out.append((None, word.lower()))
        return out

    def exact(self, name: str) -> str | None:
        """A term the database can filter on itself (a whole user name or state)."""
        for key, value in self.terms():
            if key == name and (name != "state" or value in JobState._value2member_map_):
                return value
        return None

    def matches(self, record: JobRecord) -> bool:
        fields = {
            "username": record.username.lower(),
            "team": (record.team or "").lower(),
            "state": record.state.value,
            "node": (record.node or "").lower(),
            "job_id": record.job_id.lower(),
            "queue": record.queue.lower(),
        }
        for key, value in self.terms():
            if key is None:
                if not any(value in v for v in fields.values()):
                    return False
            elif key in ("username", "state"):
                if not fields[key].startswith(value):
                    return False
            elif value not in fields[key]:
                return False
        return True


@dataclass
class QueueRow:
    name: str
    waiting: int
    running: int
    oldest_waiting_age: float | None
    per_minute: float  # jobs ended per minute over the last RATE_WINDOW seconds
    history: list[tuple[float, int]]  # (unix time, waiting) over the last hour, as raid sampled it
    # (submitted, ended or now) in unix time of the queue's jobs in the last hour, from their records:
    # what the sparkline counts, so a job shows even when it waited and ran between two samples
    spans: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class RedisMemory:
    used: int  # bytes (INFO used_memory)
    limit: int  # maxmemory, or the machine's memory when Redis has no maxmemory (what it will run out of)
    has_maxmemory: bool

    @property
    def fraction(self) -> float:
        return self.used / self.limit if self.limit else 0.0


@dataclass
class ClusterSnapshot:
    """What every view shows, read at once; `*_error` says why a part is missing (None: it answered)."""

    taken_at: datetime
    jobs: list[JobRecord] = field(default_factory=list)
    queues: list[QueueRow] = field(default_factory=list)
    nodes: list[NodeView] = field(default_factory=list)
    redis_memory: RedisMemory | None = None
    places: dict[str, Place] = field(default_factory=dict)  # job id -> where a waiting job stands, and its ETA
    redis_error: str | None = None
    db_error: str | None = None

    @property
    def waiting(self) -> int:
        return sum(q.waiting for q in self.queues)

    @property
    def running(self) -> int:
        """Jobs claimed and not yet acknowledged, as the queues say now: raid acknowledges a job as it ends.
        The nodes' heartbeats (seconds old by design) count only where no queue is known."""
        if self.queues:
            return sum(q.running for q in self.queues)
        return sum(len(n.heartbeat.running) for n in self.nodes if n.heartbeat)

    @property
    def nodes_up(self) -> int:
        return sum(1 for n in self.nodes if n.heartbeat is not None)

    @property
    def nodes_lost(self) -> int:
        return sum(1 for n in self.nodes if n.heartbeat is None)


def job_span(r: JobRecord, now: float) -> tuple[float, float] | None:
    """When the job was on its queue (submitted to ended, or to now while it waits or runs); None if unknown."""
    if r.submitted_at is None:
        return None
    if r.state.finished:
        end = r.finished_at or r.started_at or r.submitted_at
        return (r.submitted_at.timestamp(), end.timestamp())
    return (r.submitted_at.timestamp(), now)


def _newest_first(record: JobRecord) -> tuple[str, str]:
    at = record.submitted_at.isoformat() if record.submitted_at else ""
    return (at, record.job_id)


class ConsoleData:
    """The backends as the console uses them. Thread-safe as far as the backends are."""

    def __init__(self, backends: Backends, clock: Callable[[], datetime] = utcnow, job_limit: int = 500):
        self.b = backends
        self.clock = clock
        self.job_limit = job_limit
        self._history: dict[str, tuple[float, list[tuple[float, int]]]] = {}

    @property
    def config(self):
        return self.b.config

    # the periodic read behind every view
    def snapshot(self, job_filter: JobFilter | None = None) -> ClusterSnapshot:
        job_filter = job_filter or JobFilter()
        snap = ClusterSnapshot(taken_at=self.clock())
        db_jobs: list[JobRecord] = []
        live_jobs: list[JobRecord] = []
        try:
            db_jobs = self.b.db.list_jobs(limit=self.job_limit, username=job_filter.exact("username"),
                                          state=job_filter.exact("state"))
        except Exception as e:  # any failure of the database is shown, never raised
            snap.db_error = describe_error(e)
        merged: dict[str, JobRecord] = {}
        try:
            live_jobs = self._live_jobs()
            merged = {r.job_id: r for r in db_jobs}
            merged.update((r.job_id, r) for r in live_jobs)  # the live record is the current one
            snap.nodes = self.b.live.nodes()
            snap.queues = self._queues(snap.nodes, list(merged.values()))
            snap.redis_memory = self.redis_memory()
            snap.places = self.places(snap.queues)
        except Exception as e:
            snap.redis_error = describe_error(e)
        if not merged:
            merged = {r.job_id: r for r in db_jobs}
        jobs = [r for r in merged.values() if job_filter.matches(r)]
        jobs.sort(key=_newest_first, reverse=True)
        snap.jobs = jobs[: self.job_limit]
        return snap

    def _live_jobs(self) -> list[JobRecord]:
        """Current records in Redis, newest first."""
        return self.b.live.recent_jobs(self.job_limit)

    def _queues(self, nodes: list[NodeView], jobs: list[JobRecord]) -> list[QueueRow]:
        names = set(self.b.queue.queues())
        names.update(n.heartbeat.queue for n in nodes if n.heartbeat)
        now = self.clock()
        since = now - timedelta(seconds=RATE_WINDOW)
        ended: dict[str, set[str]] = {}
        spans: dict[str, list[tuple[float, float]]] = {}
        hour_ago = now.timestamp() - HOUR
        for r in jobs:
            if r.state.finished and r.finished_at and r.finished_at >= since:
                ended.setdefault(r.queue, set()).add(r.job_id)
            span = job_span(r, now.timestamp())
            if span is not None and span[1] >= hour_ago:
                spans.setdefault(r.queue, []).append(span)
        rows = []
        for name in sorted(names):
            depth: QueueDepth = self.b.queue.depth(name)
            history = self._depth_history(name, now.timestamp())
            rows.append(QueueRow(name, depth.waiting, depth.running, depth.oldest_waiting_age,
                                 len(ended.get(name, ())) / (RATE_WINDOW / 60), history, spans.get(name, [])))
        return rows

    def redis_memory(self) -> RedisMemory:
        info = self.b.redis.info("memory")
        limit = int(info.get("maxmemory") or 0)
        if limit:
            return RedisMemory(int(info.get("used_memory", 0)), limit, True)
        return RedisMemory(int(info.get("used_memory", 0)), int(info.get("total_system_memory") or 0), False)

    def users(self, now: datetime | None = None) -> list[UserUsage]:
        """Each user with a job in the last day or one waiting/running now: fair-share usage (the scheduler's
        half-life), running, waiting, and what the quota config leaves them."""
        now = now or self.clock()
        since = now - timedelta(seconds=USAGE_WINDOW)
        records = {r.job_id: r for r in self.b.db.list_jobs(limit=USAGE_JOBS, since=since)}
        records.update((r.job_id, r) for r in self._live_jobs())
        users = user_usage(records.values(), now, self.config.scheduler.half_life)
        self._quotas_left(users)
        return users

    def _quotas_left(self, users: list[UserUsage]) -> None:
        """Fill in each user's quota left (their role's or their own, as rai-server checks it at submit)."""
        config = self.config
        if not config.scheduler.quotas and not any(
                r.jobs_per_hour is not None or r.gpu_hours_per_day is not None for r in config.roles.values()):
            return  # no quota configured: nothing to read
        roles = {a.username: a.role for a in self.accounts.list()}
        book = QuotaBook(self.b.redis)
        for u in users:
            if u.username not in roles:
                continue  # no account any more: no submission to refuse
            jobs, gpu = config.scheduler.quota(config.roles, roles[u.username], u.username)
            if jobs is None and gpu is None:
                continue
            jobs_left, gpu_left = book.left(u.username, jobs, gpu, now=time.time())  # scored by the wall clock
            u.quota_left = quota_words(jobs_left, gpu_left)
            u.over_quota = jobs_left == 0 or gpu_left == 0

    def places(self, queues: list[QueueRow]) -> dict[str, Place]:
        """Where each waiting job stands on its queue and when it may start: the rule rai status uses."""
        out: dict[str, Place] = {}
        for q in queues:
            if not q.waiting:
                continue
            try:
                order = read_order(self.b, q.name)
            except Exception:  # noqa: BLE001 - only advice: the jobs show without their places
                continue
            for job_id in order.places:
                place = place_in(order, job_id)
                if place is not None:
                    out[job_id] = place
        return out

    @cached_property
    def accounts(self) -> AccountDesk:
        """Accounts and their keygen actions."""
        return AccountDesk(self.b)

    def leaderboard(self, kind: RankedKind) -> tuple[Board, dict[str, list[str]], str]:
        """The kind's leaderboard, each team's members, and the key of the labels students see."""
        b = self.b
        return (load_board(b.db, b.config.projects, kind.project, kind.kind), team_members(b.accounts),
                label_secret(b.config))

    def _depth_history(self, queue: str, now: float) -> list[tuple[float, int]]:
        read_at, history = self._history.get(queue, (0.0, []))
        if time.monotonic() - read_at > HISTORY_MAX_AGE:
            history = [(t, int(w)) for t, w in self.b.live.depth_history(queue)]
            self._history[queue] = (time.monotonic(), history)
        return [(t, w) for t, w in history if t >= now - HOUR]

    def connected_redis(self) -> Any:
        """The console's own Redis client, None when it never connected (asking would connect)."""
        return self.b.__dict__.get("redis")

    # one job
    def job(self, job_id: str) -> JobRecord | None:
        record = self.b.live.get_job(job_id)
        return record if record is not None else self.b.db.get_job(job_id)

    def read_log(self, job_id: str, after: str = "0", block: float | None = None,
                 count: int = 1000) -> list[tuple[str, LogEntry]]:
        return self.b.logs.read(job_id, after=after, block=block, count=count)

    # operator actions
    def operator_account(self) -> Account:
        """The admin account operator actions are signed with; created on first use."""
        accounts = self.b.accounts
        account = accounts.get(OPERATOR)
        if account is not None and not account.revoked and account.role == Role.admin.value:
            return account
        from keygen.accounts import new_access_key, new_secret_key

        if account is not None:  # revoked or demoted: give it fresh keys and the admin role back
            account.role = Role.admin.value
            account.revoked = False
            account.revoked_at = None
            account.access_key = new_access_key()
            account.secret_key = new_secret_key()
            accounts.update(account)
            return account
        account = Account(username=OPERATOR, email=f"{OPERATOR}@rai.local", role=Role.admin.value,
                          firstname="raitui", lastname="operator", access_key=new_access_key(),
                          secret_key=new_secret_key())
        accounts.add(account)
        return account

    def cancel(self, job_id: str) -> str:
        """Ask raid to cancel the job, signed by the operator account; returns what happened, in words."""
        record = self.job(job_id)
        if record is not None and record.state.finished:
            return f"job {job_id} already ended ({record.state.value})"
        account = self.operator_account()
        req = CancelRequest(job_id=job_id, access_key=account.access_key, requested_at=utcnow())
        sign(req, account.secret_key)
        self.b.live.request_cancel(req)
        return f"cancel requested for job {job_id}"

    def node_alive(self, node: str) -> bool:
        """Whether a raid beats under this node name now (False when Redis does not answer)."""
        try:
            return any(n.name == node and n.heartbeat is not None for n in self.b.live.nodes())
        except Exception:
            return False

    def set_draining(self, node: str, draining: bool) -> None:
        self.b.live.set_draining(node, draining)

