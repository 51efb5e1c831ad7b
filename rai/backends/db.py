"""Database port: accounts, job records, ranking entries.

Embedded backend: SQLite in WAL mode, safe across processes (`SQLiteDatabase`). Production:
MongoDB (`rai.backends.mongo_db.MongoDatabase`). Both pass tests/test_db_contract.py.
Records are stored as their JSON with the columns the queries need beside it.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Protocol

from rai.domain.models import Account, JobRecord, RankingEntry
from rai.errors import ServiceUnavailable, UserError


class Database(Protocol):
    def add_account(self, account: Account) -> None:
        """Raises UserError when the username, email or access key is already taken."""

    def get_account(
        self, username: str | None = None, access_key: str | None = None, email: str | None = None
    ) -> Account | None: ...

    def update_account(self, account: Account) -> None: ...

    def delete_account(self, username: str) -> None: ...

    def list_accounts(self, role: str | None = None, team: str | None = None) -> list[Account]: ...

    def save_job(self, record: JobRecord) -> None:
        """Insert or replace the record with this job id."""

    def get_job(self, job_id: str) -> JobRecord | None: ...

    def list_jobs(
        self,
        limit: int = 100,
        username: str | None = None,
        team: str | None = None,
        state: str | None = None,
        submission: str | None = None,
        since: datetime | None = None,
    ) -> list[JobRecord]:
        """Newest first."""

    def save_ranking(self, entry: RankingEntry) -> None: ...

    def list_rankings(self, project: str, kind: str | None = None) -> list[RankingEntry]: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY,
    access_key TEXT UNIQUE NOT NULL,
    email TEXT UNIQUE NOT NULL,
    role TEXT NOT NULL,
    team TEXT,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    team TEXT,
    state TEXT NOT NULL,
    submission TEXT,
    submitted_at TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (submitted_at DESC);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs (username, submitted_at DESC);
CREATE INDEX IF NOT EXISTS jobs_by_team ON jobs (team, submitted_at DESC);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, submitted_at DESC);
CREATE TABLE IF NOT EXISTS rankings (
    job_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    kind TEXT NOT NULL,
    team TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rankings_by_project ON rankings (project, kind);
"""


class SQLiteDatabase:
    """One SQLite file in WAL mode; a connection per thread, busy waits instead of errors."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the database folder {self.path.parent}: {e.strerror}") from None
        self._local = threading.local()
        with self._conn() as c:
            c.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as e:
                raise ServiceUnavailable(f"cannot open the database {self.path}: {e}") from None
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # accounts
    def add_account(self, account: Account) -> None:
        try:
            self._conn().execute(
                "INSERT INTO accounts (username, access_key, email, role, team, data) VALUES (?,?,?,?,?,?)",
                (account.username, account.access_key, account.email.lower(), account.role, account.team,
                 account.to_json()),
            )
        except sqlite3.IntegrityError as e:
            raise _taken(e) from None

    def get_account(self, username=None, access_key=None, email=None) -> Account | None:
        if username is not None:
            row = self._conn().execute("SELECT data FROM accounts WHERE username=?", (username,)).fetchone()
        elif access_key is not None:
            row = self._conn().execute("SELECT data FROM accounts WHERE access_key=?", (access_key,)).fetchone()
        elif email is not None:
            row = self._conn().execute("SELECT data FROM accounts WHERE email=?", (email.lower(),)).fetchone()
        else:
            return None
        return Account.from_json(row[0]) if row else None

    def update_account(self, account: Account) -> None:
        try:
            self._conn().execute(
                "UPDATE accounts SET access_key=?, email=?, role=?, team=?, data=? WHERE username=?",
                (account.access_key, account.email.lower(), account.role, account.team, account.to_json(),
                 account.username),
            )
        except sqlite3.IntegrityError as e:
            raise _taken(e) from None

    def delete_account(self, username: str) -> None:
        self._conn().execute("DELETE FROM accounts WHERE username=?", (username,))

    def list_accounts(self, role=None, team=None) -> list[Account]:
        sql = "SELECT data FROM accounts WHERE 1=1"
        args: list[str] = []
        if role:
            sql, args = sql + " AND role=?", [*args, role]
        if team:
            sql, args = sql + " AND team=?", [*args, team]
        rows = self._conn().execute(sql + " ORDER BY username", args).fetchall()
        return [Account.from_json(r[0]) for r in rows]

    # jobs
    def save_job(self, record: JobRecord) -> None:
        submitted = record.submitted_at.isoformat() if record.submitted_at else None
        self._conn().execute(
            "INSERT OR REPLACE INTO jobs (job_id, username, team, state, submission, submitted_at, data)"
            " VALUES (?,?,?,?,?,?,?)",
            (record.job_id, record.username, record.team, record.state.value, record.submission, submitted,
             record.to_json()),
        )

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._conn().execute("SELECT data FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return JobRecord.from_json(row[0]) if row else None

    def list_jobs(self, limit=100, username=None, team=None, state=None, submission=None, since=None):
        sql, args = "SELECT data FROM jobs WHERE 1=1", []
        for col, val in (("username", username), ("team", team), ("state", state), ("submission", submission)):
            if val is not None:
                sql += f" AND {col}=?"
                args.append(val)
        if since is not None:
            sql += " AND submitted_at>=?"
            args.append(since.isoformat())
        sql += " ORDER BY submitted_at DESC, job_id DESC LIMIT ?"
        args.append(limit)
        return [JobRecord.from_json(r[0]) for r in self._conn().execute(sql, args).fetchall()]

    # rankings
    def save_ranking(self, entry: RankingEntry) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO rankings (job_id, project, kind, team, data) VALUES (?,?,?,?,?)",
            (entry.job_id, entry.project, entry.kind, entry.team, entry.to_json()),
        )

    def list_rankings(self, project: str, kind: str | None = None) -> list[RankingEntry]:
        if kind is None:
            rows = self._conn().execute("SELECT data FROM rankings WHERE project=?", (project,)).fetchall()
        else:
            rows = self._conn().execute(
                "SELECT data FROM rankings WHERE project=? AND kind=?", (project, kind)
            ).fetchall()
        return [RankingEntry.from_json(r[0]) for r in rows]


def _taken(e: sqlite3.IntegrityError) -> UserError:
    field = str(e).rsplit(".", 1)[-1]  # "UNIQUE constraint failed: accounts.access_key"
    return UserError(f"an account with this {field.replace('_', ' ')} already exists")
