"""raid answers students' signed queries (rai/queries.py describes the protocol): the anonymised
leaderboard, their own jobs, their team's submissions — nothing else, whatever the query asks.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis

from rai.backends import Backends
from rai.backends.auth import authenticate
from rai.config import Config
from rai.errors import AuthError, UserError
from rai.leaderboard import counting_entries, label_secret, standings, team_label
from rai.models import Account, JobRecord, Query, RankingEntry, utcnow
from rai.projects import pick_kind, pick_project
from rai.queries import (
    GROUP,
    MAX_QUERY_AGE,
    QUERIES,
    REPLY,
    REPLY_TTL,
    History,
    HistoryRow,
    Leaderboard,
    LeaderRow,
    Submitted,
    SubmittedKind,
    SubmittedRow,
    seal,
)

log = logging.getLogger("raid.queries")

MAX_LIMIT = 1000
RECLAIM_IDLE = 4.0  # seconds a taken query may go unanswered before another node answers it
RECLAIM_EVERY = 2.0  # seconds between looks for such queries


class QueryServer:
    """A thread reading `rai:queries` in the `raid` consumer group; each query is answered by one node."""

    def __init__(self, config: Config, backends: Backends, consumer: str, poll: float = 1.0):
        self.config = config
        self.b = backends
        self.consumer = consumer
        self.poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._secret: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve, name="queries", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=5)

    def _ensure_group(self) -> None:
        try:
            self.b.redis.xgroup_create(QUERIES, GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def serve(self) -> None:
        ready = False
        next_reclaim = time.monotonic() + RECLAIM_EVERY
        while not self._stop.is_set():
            try:
                if not ready:
                    self._ensure_group()
                    ready = True
                got = self.b.redis.xreadgroup(GROUP, self.consumer, {QUERIES: ">"}, count=16,
                                              block=int(self.poll * 1000))
            except redis.exceptions.ResponseError as e:  # the stream or group was deleted: make them again
                log.warning("reading queries failed: %s", e)
                ready = False
                self._stop.wait(1)
                continue
            except redis.exceptions.RedisError as e:
                log.warning("reading queries failed: %s", e)
                self._stop.wait(2)
                continue
            for _stream, entries in got or []:
                self._answer_all(entries)
            if time.monotonic() >= next_reclaim:
                next_reclaim = time.monotonic() + RECLAIM_EVERY
                self._answer_all(self._reclaim())

    def _reclaim(self) -> list:
        """Queries a node took and never answered (it died, or lost Redis mid-answer): take them over while
        their client may still be waiting."""
        try:
            got = self.b.redis.xautoclaim(QUERIES, GROUP, self.consumer, min_idle_time=int(RECLAIM_IDLE * 1000),
                                          start_id="0-0", count=16)
        except redis.exceptions.RedisError as e:
            log.warning("reclaiming queries failed: %s", e)
            return []
        return [(entry_id, fields) for entry_id, fields in got[1] if fields]  # trimmed ones come back empty

    def _answer_all(self, entries) -> None:
        for entry_id, fields in entries:
            try:
                raw = fields.get(b"q") or fields.get("q")
                if raw is not None:
                    self.handle(raw)
            except redis.exceptions.RedisError as e:  # the reply could not be written; the client says so
                log.warning("answering a query failed: %s", e)
            finally:
                try:
                    self.b.redis.xack(QUERIES, GROUP, entry_id)
                    self.b.redis.xdel(QUERIES, entry_id)
                except redis.exceptions.RedisError:
                    pass

    def handle(self, raw: bytes | str) -> None:
        """Answer one query (never raises but for Redis errors writing the reply)."""
        try:
            query = Query.from_json(raw)
        except ValueError:
            log.warning("dropping a malformed query")
            return
        try:
            account = self.check(query)
            answer = self.answer(account, query)
            reply = {"ok": True, "box": seal(account.secret_key, query.query_id, answer.model_dump_json().encode())}
        except AuthError as e:
            reply = {"ok": False, "auth": True, "error": e.message, "hint": e.hint}
            log.warning("query of %s refused: %s", query.username, e.message)
        except UserError as e:
            reply = {"ok": False, "error": e.message, "hint": e.hint}
        except Exception as e:  # the client must hear something, whatever broke
            log.exception("answering a %s query of %s failed", query.what, query.username)
            reply = {"ok": False, "error": f"the server could not answer ({type(e).__name__})"}
        key = REPLY + query.query_id
        pipe = self.b.redis.pipeline()
        pipe.rpush(key, json.dumps(reply))
        pipe.expire(key, REPLY_TTL)
        pipe.execute()

    def check(self, query: Query) -> Account:
        account = authenticate(self.b.accounts, query, "query")
        age = (utcnow() - query.asked_at).total_seconds()
        if abs(age) > MAX_QUERY_AGE:  # a replay, or a clock that is off (its client may still be waiting)
            when = "old" if age > 0 else "ahead of the server's clock"
            raise AuthError(f"the query is {abs(age):.0f}s {when}; check your computer's clock")
        return account

    def answer(self, account: Account, query: Query):
        limit = max(1, min(int(query.limit), MAX_LIMIT))
        if query.what == "ranking":
            return self.leaderboard(account, query.project, query.kind, limit)
        if query.what == "history":
            return self.history(account, limit)
        if query.what == "submitted":
            return self.submitted(account, query.project, query.kind, limit)
        raise UserError(f"the server does not answer {query.what!r} questions (is your rai client newer?)")

    # --- the answers ---------------------------------------------------------------------------

    def _label(self, team: str) -> str:
        if self._secret is None:
            self._secret = label_secret(self.config)
        return team_label(self._secret, team)

    def leaderboard(self, account: Account, project: str | None, kind: str | None, limit: int) -> Leaderboard:
        rk = pick_kind(self.config.projects, project, kind)
        mine = account.team or account.username
        rows = standings(self.b.db.list_rankings(rk.project, rk.kind), rk.lower_is_better, rk.counts)

        def row(s) -> LeaderRow:
            yours = s.team == mine
            return LeaderRow(rank=s.rank, team=s.team if yours else self._label(s.team), yours=yours,
                             value=s.entry.value, at=s.entry.at, valid_results=s.valid_results)

        yours = next((row(s) for s in rows if s.team == mine), None)
        return Leaderboard(project=rk.project, kind=rk.kind, kinds=list(self.config.projects[rk.project].kinds),
                           metric=rk.metric,
                           lower_is_better=rk.lower_is_better, counts=rk.counts, teams=len(rows),
                           rows=[row(s) for s in rows[:limit]], yours=yours)

    def _entries(self, jobs: list[JobRecord]) -> dict[str, RankingEntry]:
        """The ranking entries of these jobs, by job id."""
        found: dict[str, RankingEntry] = {}
        for project, kind in {(j.project, j.submission) for j in jobs if j.project and j.submission}:
            wanted = {j.job_id for j in jobs if j.project == project and j.submission == kind}
            found.update({e.job_id: e for e in self.b.db.list_rankings(project, kind) if e.job_id in wanted})
        return found

    def history(self, account: Account, limit: int) -> History:
        jobs = self.b.db.list_jobs(limit=limit, username=account.username)
        entries = self._entries(jobs)
        rows = []
        for j in jobs:
            e = entries.get(j.job_id)
            rows.append(HistoryRow(job_id=j.job_id, state=j.state.value, submitted_at=j.submitted_at,
                                   finished_at=j.finished_at, duration=j.duration, project=j.project,
                                   submission=j.submission, metric=e.metric if e else None,
                                   value=e.value if e else None, valid=e.valid if e else None, message=j.message))
        return History(username=account.username, rows=rows)

    def submitted(self, account: Account, project: str | None, kind: str | None, limit: int) -> Submitted:
        every = list(self.config.projects)
        projects = [pick_project(self.config.projects, project)] if project or len(every) <= 1 else every
        mine = account.team or account.username
        who = {"team": account.team} if account.team else {"username": account.username}
        out = Submitted(team=account.team)
        for name in projects:
            p = self.config.projects[name]
            if kind is not None and kind not in p.kinds:
                if project is not None or len(projects) == 1:
                    raise UserError(f"project {name} has no submission kind {kind!r}",
                                    hint=f"its kinds are: {', '.join(p.kinds)}")
                continue
            for k in ([kind] if kind else list(p.kinds)):
                rk = p.kind(name, k)
                ours = [e for e in self.b.db.list_rankings(name, k) if e.team == mine]
                counting = counting_entries(ours, rk.lower_is_better, rk.counts).get(mine)
                counting_id = counting[0].job_id if counting else None
                jobs = [j for j in self.b.db.list_jobs(limit=max(4 * limit, 50), submission=k, **who)
                        if j.project == name][:limit]
                if counting_id and all(j.job_id != counting_id for j in jobs):
                    job = self.b.db.get_job(counting_id)
                    if job is not None:
                        jobs.append(job)
                by_job = {e.job_id: e for e in ours}
                rows = []
                for j in jobs:
                    e = by_job.get(j.job_id)
                    note = "; ".join(e.details.get("invalid", [])) if e else _no_result(j)
                    rows.append(SubmittedRow(job_id=j.job_id, username=j.username, state=j.state.value,
                                             submitted_at=j.submitted_at, value=e.value if e else None,
                                             valid=e.valid if e else None, counts=j.job_id == counting_id, note=note))
                out.kinds.append(SubmittedKind(project=name, kind=k, metric=rk.metric, counts=rk.counts, rows=rows))
        return out


def _no_result(job: JobRecord) -> str:
    if not job.state.finished:
        return job.state.value
    # the end message carries "<project>/<kind>: not ranked: why" when the result could not be read
    _, sep, why = job.message.partition("not ranked: ")
    return why if sep else job.message
