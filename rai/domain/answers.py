"""What a user may read of the rankings and the job records, answered from the database by rai-server:
the leaderboard with every other team anonymised, their own jobs, their team's submissions.

The team is the account's, on the server; nothing a client sends sets it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from rai.config import Config
from rai.domain.leaderboard import counting_entries, label_secret, standings, team_label
from rai.domain.models import Account, JobRecord, RankingEntry
from rai.domain.projects import pick_kind, pick_project
from rai.errors import UserError

MAX_LIMIT = 1000


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LeaderRow(_Answer):
    rank: int
    team: str  # your team's real name; any other team's anonymous label
    yours: bool = False
    value: float
    at: datetime | None = None  # when the counting result was recorded
    valid_results: int = 1


class Leaderboard(_Answer):
    project: str
    kind: str
    kinds: list[str] = Field(default_factory=list)  # the project's kinds, for the next question
    metric: str
    lower_is_better: bool = True
    counts: str = "best"
    teams: int = 0  # teams with a valid result
    rows: list[LeaderRow] = Field(default_factory=list)  # the first -n
    yours: LeaderRow | None = None  # your team's row, wherever it stands


class HistoryRow(_Answer):
    job_id: str
    state: str
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    project: str | None = None
    submission: str | None = None
    metric: str | None = None
    value: float | None = None
    valid: bool | None = None
    message: str = ""


class History(_Answer):
    username: str
    rows: list[HistoryRow] = Field(default_factory=list)


class SubmittedRow(_Answer):
    job_id: str
    username: str
    state: str
    submitted_at: datetime | None = None
    value: float | None = None
    valid: bool | None = None
    counts: bool = False  # the result that ranks for the team in this kind
    note: str = ""  # why the result is not valid, or why there is none


class SubmittedKind(_Answer):
    project: str
    kind: str
    metric: str
    counts: str = "best"
    rows: list[SubmittedRow] = Field(default_factory=list)


class Submitted(_Answer):
    team: str | None = None
    kinds: list[SubmittedKind] = Field(default_factory=list)


ANSWERS: dict[str, type[_Answer]] = {"ranking": Leaderboard, "history": History, "submitted": Submitted}


class Answers:
    """Answers to one account's questions, from `db` (the database port) and the server's `projects:`."""

    def __init__(self, config: Config, db):
        self.config = config
        self.db = db
        self._secret: str | None = None

    def answer(self, account: Account, what: str, project: str | None = None, kind: str | None = None,
               limit: int = 10):
        limit = max(1, min(int(limit), MAX_LIMIT))
        if what == "ranking":
            return self.leaderboard(account, project, kind, limit)
        if what == "history":
            return self.history(account, limit)
        if what == "submitted":
            return self.submitted(account, project, kind, limit)
        raise UserError(f"the server does not answer {what!r} questions (is your rai client newer?)")

    def _label(self, team: str) -> str:
        if self._secret is None:
            self._secret = label_secret(self.config)
        return team_label(self._secret, team)

    def leaderboard(self, account: Account, project: str | None, kind: str | None, limit: int) -> Leaderboard:
        rk = pick_kind(self.config.projects, project, kind)
        mine = account.team or account.username
        rows = standings(self.db.list_rankings(rk.project, rk.kind), rk.lower_is_better, rk.counts)

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
            found.update({e.job_id: e for e in self.db.list_rankings(project, kind) if e.job_id in wanted})
        return found

    def history(self, account: Account, limit: int) -> History:
        jobs = self.db.list_jobs(limit=limit, username=account.username)
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
                ours = [e for e in self.db.list_rankings(name, k) if e.team == mine]
                counting = counting_entries(ours, rk.lower_is_better, rk.counts).get(mine)
                counting_id = counting[0].job_id if counting else None
                jobs = [j for j in self.db.list_jobs(limit=max(4 * limit, 50), submission=k, **who)
                        if j.project == name][:limit]
                if counting_id and all(j.job_id != counting_id for j in jobs):
                    job = self.db.get_job(counting_id)
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
