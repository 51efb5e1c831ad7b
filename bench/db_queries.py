"""The console's and client's database queries at 100 000 jobs, on SQLite and on MongoDB (mongomock).

    python bench/db_queries.py [--jobs 100000] [--repeat 20]

Prints the median time of each query per backend, SQLite's query plan (which index it uses), and the
MongoDB index that serves each query on a real server. mongomock evaluates every query in Python over
all documents and ignores indexes: its times show the cost of a full scan, not MongoDB's. No MongoDB
server can be installed here; `tests/contract/test_db_contract.py` checks every query shape has its index.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mongomock  # noqa: E402

from rai.backends.db import SQLiteDatabase  # noqa: E402
from rai.backends.mongo_db import JOB_INDEXES, MongoDatabase, _doc, bson_time  # noqa: E402
from rai.config import DatabaseConfig  # noqa: E402
from rai.domain.models import Account, JobRecord, JobState, utcnow  # noqa: E402

USERS = 300
TEAMS = 100
ENDED = [JobState.succeeded] * 70 + [JobState.failed] * 22 + [JobState.timeout] * 4 + [JobState.oom] * 2 + \
        [JobState.cancelled] * 2
RUNNING = 16  # the newest jobs are running (16 worker slots), the rest of the history has ended


def make_jobs(n: int, seed: int = 7) -> list[JobRecord]:
    rnd = random.Random(seed)
    now = utcnow()
    jobs = []
    for i in range(n):
        user = rnd.randrange(USERS)
        at = now - timedelta(seconds=rnd.uniform(0, 120 * 86400))
        jobs.append(JobRecord(
            job_id=at.strftime("%Y%m%d%H%M%S") + f"-{i:012x}", username=f"user{user:03d}",
            team=f"team{user % TEAMS:02d}",
            queue="rai_amd64", state=rnd.choice(ENDED), node=f"node{rnd.randrange(8)}", image="rai/cuda:12",
            submission=rnd.choice(["m1", "m2", "final"]) if rnd.random() < 0.1 else None, submitted_at=at,
            started_at=at, finished_at=at + timedelta(seconds=rnd.uniform(1, 600)), exit_code=0, duration=12.5,
        ))
    for job in sorted(jobs, key=lambda j: j.submitted_at)[-RUNNING:]:
        job.state, job.finished_at = JobState.running, None
    return jobs


def load_sqlite(path: Path, jobs: list[JobRecord], accounts: list[Account]) -> SQLiteDatabase:
    db = SQLiteDatabase(path)
    conn = db._conn()
    conn.execute("BEGIN")
    for job in jobs:
        db.save_job(job)
    conn.execute("COMMIT")
    for a in accounts:
        db.add_account(a)
    return db


def load_mongo(jobs: list[JobRecord], accounts: list[Account]) -> MongoDatabase:
    db = MongoDatabase(DatabaseConfig(provider="mongodb", name="bench"), client=mongomock.MongoClient(tz_aware=True))
    db.jobs.insert_many([_doc(j, j.job_id, submitted_ts=bson_time(j.submitted_at)) for j in jobs])
    for a in accounts:
        db.add_account(a)
    return db


def queries(jobs: list[JobRecord]) -> list[tuple[str, dict, str]]:
    """(what, list_jobs arguments or a special, who asks)."""
    sample = jobs[len(jobs) // 2]
    return [
        ("latest 100 jobs", {"limit": 100}, "console jobs view"),
        ("running jobs", {"state": "running", "limit": 100}, "console jobs view"),
        ("failed, last 100", {"state": "failed", "limit": 100}, "console filter"),
        ("a user's last 10", {"username": sample.username, "limit": 10}, "rai history"),
        ("a team's last 5 finals", {"team": sample.team, "submission": "final", "limit": 5}, "rai submitted"),
        ("a user's running jobs", {"username": sample.username, "state": "running", "limit": 1000},
         "raid jobs_at_once"),
        ("last hour", {"since": utcnow() - timedelta(hours=1), "limit": 1000}, "console"),
        ("one job by id", {"_get": sample.job_id}, "rai status, raid"),
        ("account by access key", {"_key": "AKUSER150"}, "raid, every job"),
    ]


def run(db, args: dict) -> int:
    if "_get" in args:
        return int(db.get_job(args["_get"]) is not None)
    if "_key" in args:
        return int(db.get_account(access_key=args["_key"]) is not None)
    return len(db.list_jobs(**args))


def median_ms(db, args: dict, repeat: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = run(db, args)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), n


def sqlite_plan(db: SQLiteDatabase, args: dict) -> str:
    if "_get" in args:
        sql, params = "SELECT data FROM jobs WHERE job_id=?", [args["_get"]]
    elif "_key" in args:
        sql, params = "SELECT data FROM accounts WHERE access_key=?", [args["_key"]]
    else:
        sql, params = "SELECT data FROM jobs WHERE 1=1", []
        for col in ("username", "team", "state", "submission"):
            if args.get(col) is not None:
                sql += f" AND {col}=?"
                params.append(args[col])
        if args.get("since") is not None:
            sql += " AND submitted_at>=?"
            params.append(args["since"].isoformat())
        sql += " ORDER BY submitted_at DESC, job_id DESC LIMIT ?"
        params.append(args.get("limit", 100))
    rows = db._conn().execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return "; ".join(r[-1] for r in rows)


def mongo_index(args: dict) -> str:
    if "_get" in args:
        return "_id_"
    if "_key" in args:
        return "accounts_access_key"
    wanted = sorted(MongoDatabase.job_query(**{k: v for k, v in args.items() if k != "limit"}))
    if wanted == ["submitted_ts"]:
        return "jobs_newest (range on submitted_ts)"
    for name, keys in JOB_INDEXES.items():
        if sorted(k for k, _ in keys[: len(wanted)]) == wanted and [k for k, _ in keys[len(wanted):]] == [
                "submitted_ts", "_id"]:
            return name
    return "NONE"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    opts = parser.parse_args()
    jobs = make_jobs(opts.jobs)
    accounts = [Account(username=f"user{i:03d}", email=f"user{i:03d}@example.edu", access_key=f"AKUSER{i:03d}",
                        secret_key="s", team=f"team{i % TEAMS:02d}") for i in range(USERS)]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sqlite = load_sqlite(Path(tmp) / "bench.db", jobs, accounts)
        t_sqlite = time.perf_counter() - t0
        t0 = time.perf_counter()
        mongo = load_mongo(jobs, accounts)
        t_mongo = time.perf_counter() - t0
        print(f"{opts.jobs} jobs, {USERS} users, {TEAMS} teams; loaded in {t_sqlite:.1f}s (SQLite), "
              f"{t_mongo:.1f}s (mongomock); median of {opts.repeat} runs (mongomock: one run)\n")
        print(f"{'query':<26} {'asked by':<20} {'rows':>5} {'SQLite ms':>10} {'mongomock ms':>13}  MongoDB index")
        plans = []
        for what, args, who in queries(jobs):
            s_ms, n = median_ms(sqlite, args, opts.repeat)
            m_ms, m_n = median_ms(mongo, args, 1)
            assert n == m_n, f"{what}: SQLite found {n}, mongomock {m_n}"
            print(f"{what:<26} {who:<20} {n:>5} {s_ms:>10.2f} {m_ms:>13.1f}  {mongo_index(args)}")
            plans.append((what, sqlite_plan(sqlite, args)))
        print("\nSQLite query plans:")
        for what, plan in plans:
            print(f"  {what:<26} {plan}")
        sqlite.close()


if __name__ == "__main__":
    main()
