"""The Database port: SQLite (embedded) and MongoDB (through mongomock; no MongoDB server can be installed
here) pass the same tests."""

from __future__ import annotations

from datetime import timedelta

import mongomock
import pytest

from rai.backends.mongo_db import JOB_INDEXES, MongoDatabase
from rai.config import DatabaseConfig
from rai.domain.models import Account, JobRecord, JobState, RankingEntry, utcnow
from rai.errors import UserError


def account(username="ada", **kw) -> Account:
    base = dict(username=username, email=f"{username.capitalize()}@Example.edu", access_key=f"AK{username.upper()}",
                secret_key=f"secret-{username}", team="t1", role="student", firstname="Ada", lastname="L")
    return Account(**{**base, **kw})


def job(job_id: str, minutes_ago: float = 0, **kw) -> JobRecord:
    base = dict(job_id=job_id, username="ada", team="t1", queue="rai_amd64", state=JobState.succeeded,
                submitted_at=utcnow() - timedelta(minutes=minutes_ago))
    return JobRecord(**{**base, **kw})


def test_account_round_trip_by_username_access_key_and_any_case_email(db):
    a = account()
    db.add_account(a)
    assert db.get_account(username="ada") == a
    assert db.get_account(access_key="AKADA") == a
    assert db.get_account(email="ada@EXAMPLE.edu") == a
    assert db.get_account(username="bob") is None
    assert db.get_account(access_key="nope") is None
    assert db.get_account() is None


@pytest.mark.parametrize("clash,field", [({"email": "x@y.z", "access_key": "AKX"}, "username"),
                                         ({"username": "bob", "email": "bob@y.z", "access_key": "AKADA"}, "access key"),
                                         ({"username": "bob", "access_key": "AKBOB", "email": "ADA@example.EDU"},
                                          "email")])
def test_taken_username_access_key_or_email_is_refused_naming_it(db, clash, field):
    db.add_account(account())
    with pytest.raises(UserError, match=f"this {field} already exists"):
        db.add_account(account(**clash))
    assert len(db.list_accounts()) == 1


def test_update_revoke_and_delete_an_account(db):
    db.add_account(account())
    db.add_account(account("bob"))
    a = account(role="ta", team="t2", revoked=True, revoked_at=utcnow(), secret_key="rotated")
    db.update_account(a)
    assert db.get_account(username="ada") == a
    assert db.get_account(access_key="AKADA").revoked
    with pytest.raises(UserError, match="already exists"):
        db.update_account(account(email="bob@example.edu"))
    db.delete_account("ada")
    assert db.get_account(username="ada") is None and db.get_account(access_key="AKADA") is None
    db.delete_account("ada")  # deleting twice is fine


def test_list_accounts_by_role_and_team_sorted_by_username(db):
    for name, role, team in [("zoe", "student", "t1"), ("bob", "ta", "t2"), ("ada", "student", "t2")]:
        db.add_account(account(name, role=role, team=team))
    assert [a.username for a in db.list_accounts()] == ["ada", "bob", "zoe"]
    assert [a.username for a in db.list_accounts(role="student")] == ["ada", "zoe"]
    assert [a.username for a in db.list_accounts(team="t2")] == ["ada", "bob"]
    assert [a.username for a in db.list_accounts(role="student", team="t2")] == ["ada"]


def test_job_records_round_trip_exactly_and_save_replaces(db):
    r = job("j1", state=JobState.running, node="n1", started_at=utcnow(), attempts=2)
    db.save_job(r)
    assert db.get_job("j1") == r
    r.state, r.exit_code, r.finished_at, r.message = JobState.failed, 3, utcnow(), "exit 3"
    db.save_job(r)
    assert db.get_job("j1") == r
    assert db.get_job("nope") is None
    assert len(db.list_jobs()) == 1


def test_list_jobs_newest_first_with_each_filter_and_limit(db):
    db.save_job(job("j1", 50, username="ada", team="t1", state=JobState.succeeded, submission="m1"))
    db.save_job(job("j2", 40, username="bob", team="t2", state=JobState.failed))
    db.save_job(job("j3", 30, username="ada", team="t1", state=JobState.running))
    db.save_job(job("j4", 20, username="cy", team="t2", state=JobState.succeeded, submission="m1"))
    db.save_job(job("j5", 10, username="ada", team="t1", state=JobState.failed, submission="final"))

    def ids(**kw):
        return [r.job_id for r in db.list_jobs(**kw)]

    assert ids() == ["j5", "j4", "j3", "j2", "j1"]
    assert ids(limit=2) == ["j5", "j4"]
    assert ids(username="ada") == ["j5", "j3", "j1"]
    assert ids(team="t2") == ["j4", "j2"]
    assert ids(state="failed") == ["j5", "j2"]
    assert ids(submission="m1") == ["j4", "j1"]
    assert ids(team="t1", submission="m1") == ["j1"]
    assert ids(since=utcnow() - timedelta(minutes=35)) == ["j5", "j4", "j3"]
    assert ids(username="ada", state="failed", since=utcnow() - timedelta(minutes=35)) == ["j5"]
    assert ids(username="nobody") == []


def test_rankings_by_project_and_kind_one_per_job(db):
    def entry(job_id, kind, value, project="p"):
        return RankingEntry(project=project, kind=kind, job_id=job_id, username="ada", team="t1",
                            metric="op_time", value=value, valid=True, details={"correctness": 0.9})

    db.save_ranking(entry("j1", "m1", 2.5))
    db.save_ranking(entry("j2", "final", 1.5))
    db.save_ranking(entry("j3", "m1", 3.5, project="other"))
    db.save_ranking(entry("j1", "m1", 2.0))  # the same job again replaces its entry
    assert sorted((e.job_id, e.value) for e in db.list_rankings("p")) == [("j1", 2.0), ("j2", 1.5)]
    assert [e.job_id for e in db.list_rankings("p", kind="m1")] == ["j1"]
    assert db.list_rankings("p", kind="m1")[0] == entry("j1", "m1", 2.0).model_copy(
        update={"at": db.list_rankings("p", kind="m1")[0].at})
    assert db.list_rankings("none") == []


# --- MongoDB only: the indexes that keep the console's and client's queries fast at 100 000 jobs

FILTERS = ["username", "team", "state", "submission"]


@pytest.mark.parametrize("used", [(), ("username",), ("team",), ("state",), ("submission",),
                                  ("username", "submission"), ("team", "submission"), ("username", "state")])
def test_every_job_query_the_clients_make_has_an_index(used):
    """An index serves `find(equality filters).sort(newest)` when its keys are those fields, then the sort."""
    query = MongoDatabase.job_query(**{f: "x" for f in used})
    wanted = sorted(query)
    covering = [name for name, keys in JOB_INDEXES.items()
                if sorted(k for k, _ in keys[: len(wanted)]) == wanted
                and [k for k, _ in keys[len(wanted):]] == ["submitted_ts", "_id"]]
    assert covering, f"no index serves a job query on {wanted}"


def test_mongo_creates_unique_indexes_for_username_access_key_email_and_job_id():
    d = MongoDatabase(DatabaseConfig(provider="mongodb", name="rai_idx"), client=mongomock.MongoClient())
    acc = d.accounts.index_information()
    assert acc["accounts_access_key"]["unique"] and acc["accounts_email"]["unique"]
    assert "_id_" in acc and "_id_" in d.jobs.index_information()  # username and job id are the _id
    assert set(JOB_INDEXES) <= set(d.jobs.index_information())
