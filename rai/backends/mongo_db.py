"""Database on MongoDB (pymongo): accounts, job records, ranking entries.

Collections hold each record as its JSON fields (readable in the mongo shell), keyed by `_id`:
- `accounts`: `_id` = username; unique indexes on access_key and on the lower-cased email.
- `jobs`: `_id` = job id; `submitted_ts` (a BSON date) beside the JSON's ISO string for range queries
  and sorting; one compound index per query the console and the client make (`JOB_INDEXES`), each
  ending in (submitted_ts, _id) descending so "newest first, limit N" reads N index entries.
- `rankings`: `_id` = job id; indexed by (project, kind).
`database.url: mongomock://NAME` gives an in-process mongomock database (tests and demos only: it
lives in one process and scans instead of using indexes).
"""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import datetime, timezone

import pymongo
import pymongo.errors
from pymongo import ASCENDING, DESCENDING

from rai.config import DatabaseConfig
from rai.domain.models import Account, JobRecord, RankingEntry
from rai.errors import ServiceUnavailable, UserError

NEWEST = [("submitted_ts", DESCENDING), ("_id", DESCENDING)]
# name -> keys; list_jobs filters on equality fields and sorts by NEWEST, so each index is
# (equality fields..., submitted_ts desc, _id desc). tests/contract checks every filter is covered.
JOB_INDEXES: dict[str, list[tuple[str, int]]] = {
    "jobs_newest": NEWEST,
    "jobs_by_user": [("username", ASCENDING), *NEWEST],
    "jobs_by_team": [("team", ASCENDING), *NEWEST],
    "jobs_by_state": [("state", ASCENDING), *NEWEST],
    "jobs_by_submission": [("submission", ASCENDING), *NEWEST],
    "jobs_by_user_submission": [("username", ASCENDING), ("submission", ASCENDING), *NEWEST],
    "jobs_by_team_submission": [("team", ASCENDING), ("submission", ASCENDING), *NEWEST],
    "jobs_by_user_state": [("username", ASCENDING), ("state", ASCENDING), *NEWEST],
}
ACCOUNT_INDEXES: dict[str, tuple[list[tuple[str, int]], bool]] = {
    "accounts_access_key": ([("access_key", ASCENDING)], True),
    "accounts_email": ([("email_key", ASCENDING)], True),
    "accounts_by_role": ([("role", ASCENDING), ("_id", ASCENDING)], False),
    "accounts_by_team": ([("team", ASCENDING), ("_id", ASCENDING)], False),
}
RANKING_INDEXES = {"rankings_by_project": [("project", ASCENDING), ("kind", ASCENDING)]}

_mock_clients: dict[str, object] = {}
_mock_lock = threading.Lock()


def _mock_client(url: str):
    """One mongomock client per URL in this process, so every Backends of a test shares its data."""
    import mongomock

    with _mock_lock:
        if url not in _mock_clients:
            _mock_clients[url] = mongomock.MongoClient(tz_aware=True)
        return _mock_clients[url]


def bson_time(t: datetime | None) -> datetime | None:
    """A datetime as MongoDB stores it: UTC, naive, milliseconds."""
    if t is None:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _doc(model, _id: str, **extra) -> dict:
    return {**json.loads(model.model_dump_json()), "_id": _id, **extra}


def _fields(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("_id", "email_key", "submitted_ts")}


class MongoDatabase:
    """The Database port on MongoDB; one client per process (pymongo pools and is thread-safe)."""

    def __init__(self, cfg: DatabaseConfig, client=None):
        url = cfg.url or "mongodb://127.0.0.1:27017"
        self.mock = client is None and url.startswith("mongomock://")
        self._owns_client = client is None and not self.mock
        if client is not None:
            self.client = client
        elif self.mock:
            self.client = _mock_client(url)
        else:
            self.client = pymongo.MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000, appname="rai")
        self.shown_url = url.split("@")[-1]  # never show a password
        # mongomock is not thread-safe; a real server needs no lock
        self._lock = threading.RLock() if (self.mock or client is not None and _is_mock(client)) else None
        self.db = self.client[cfg.name]
        self.accounts = self.db["accounts"]
        self.jobs = self.db["jobs"]
        self.rankings = self.db["rankings"]
        with self._guard("creating indexes"):
            for name, (keys, unique) in ACCOUNT_INDEXES.items():
                self.accounts.create_index(keys, name=name, unique=unique)
            for name, keys in JOB_INDEXES.items():
                self.jobs.create_index(keys, name=name)
            for name, keys in RANKING_INDEXES.items():
                self.rankings.create_index(keys, name=name)

    @contextlib.contextmanager
    def _guard(self, what: str):
        lock = self._lock or contextlib.nullcontext()
        try:
            with lock:
                yield
        except pymongo.errors.DuplicateKeyError:
            raise
        except (pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError) as e:
            raise ServiceUnavailable(f"MongoDB does not answer at {self.shown_url} ({what}): {e}",
                                     hint="check database.url in the config and that the server runs") from None
        except pymongo.errors.OperationFailure as e:
            raise ServiceUnavailable(f"MongoDB refused {what}: {e}",
                                     hint="check the user and its roles in database.url") from None

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # accounts
    def _account_doc(self, account: Account) -> dict:
        return _doc(account, account.username, email_key=account.email.lower())

    def _taken(self, account: Account, but: str | None = None) -> str:
        checks = (("username", {"_id": account.username}), ("access key", {"access_key": account.access_key}),
                  ("email", {"email_key": account.email.lower()}))
        for field, query in checks:
            found = self.accounts.find_one(query, {"_id": 1})
            if found is not None and found["_id"] != but:
                return field
        return "username, email or access key"

    def add_account(self, account: Account) -> None:
        try:
            with self._guard(f"adding {account.username}"):
                self.accounts.insert_one(self._account_doc(account))
        except pymongo.errors.DuplicateKeyError:
            with self._guard("checking a duplicate"):
                field = self._taken(account)
            raise UserError(f"an account with this {field} already exists") from None

    def get_account(self, username=None, access_key=None, email=None) -> Account | None:
        if username is not None:
            query = {"_id": username}
        elif access_key is not None:
            query = {"access_key": access_key}
        elif email is not None:
            query = {"email_key": email.lower()}
        else:
            return None
        with self._guard("reading an account"):
            doc = self.accounts.find_one(query)
        return Account.model_validate(_fields(doc)) if doc else None

    def update_account(self, account: Account) -> None:
        try:
            with self._guard(f"updating {account.username}"):
                self.accounts.replace_one({"_id": account.username}, self._account_doc(account))
        except pymongo.errors.DuplicateKeyError:
            with self._guard("checking a duplicate"):
                field = self._taken(account, but=account.username)
            raise UserError(f"an account with this {field} already exists") from None

    def delete_account(self, username: str) -> None:
        with self._guard(f"deleting {username}"):
            self.accounts.delete_one({"_id": username})

    def list_accounts(self, role=None, team=None) -> list[Account]:
        query = {k: v for k, v in (("role", role), ("team", team)) if v}
        with self._guard("listing accounts"):
            docs = list(self.accounts.find(query).sort("_id", ASCENDING))
        return [Account.model_validate(_fields(d)) for d in docs]

    # jobs
    def save_job(self, record: JobRecord) -> None:
        doc = _doc(record, record.job_id, submitted_ts=bson_time(record.submitted_at))
        with self._guard(f"saving job {record.job_id}"):
            self.jobs.replace_one({"_id": record.job_id}, doc, upsert=True)

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._guard(f"reading job {job_id}"):
            doc = self.jobs.find_one({"_id": job_id})
        return JobRecord.model_validate(_fields(doc)) if doc else None

    @staticmethod
    def job_query(username=None, team=None, state=None, submission=None, since=None) -> dict:
        query: dict = {k: v for k, v in (("username", username), ("team", team), ("state", state),
                                          ("submission", submission)) if v is not None}
        if since is not None:
            query["submitted_ts"] = {"$gte": bson_time(since)}
        return query

    def list_jobs(self, limit=100, username=None, team=None, state=None, submission=None, since=None):
        query = self.job_query(username, team, state, submission, since)
        with self._guard("listing jobs"):
            docs = list(self.jobs.find(query).sort(NEWEST).limit(int(limit)))
        return [JobRecord.model_validate(_fields(d)) for d in docs]

    # rankings
    def save_ranking(self, entry: RankingEntry) -> None:
        with self._guard(f"saving the ranking of {entry.job_id}"):
            self.rankings.replace_one({"_id": entry.job_id}, _doc(entry, entry.job_id), upsert=True)

    def list_rankings(self, project: str, kind: str | None = None) -> list[RankingEntry]:
        query = {"project": project, **({"kind": kind} if kind is not None else {})}
        with self._guard("listing rankings"):
            docs = list(self.rankings.find(query))
        return [RankingEntry.model_validate(_fields(d)) for d in docs]


def _is_mock(client) -> bool:
    return type(client).__module__.startswith("mongomock")
