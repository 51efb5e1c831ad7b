"""`rai-admin usage`: accounting from the job records, on SQLite and on MongoDB (mongomock)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from rai.backends.db import SQLiteDatabase
from rai.domain.models import JobRecord, JobState, utcnow
from raid.admin_cli import cli, usage_cmd


def ended(job_id, user, team, node, *, hours_ago, wait_s, run_s, state=JobState.succeeded, gpus=0) -> JobRecord:
    submitted = utcnow() - timedelta(hours=hours_ago)
    started = submitted + timedelta(seconds=wait_s)
    return JobRecord(job_id=job_id, username=user, team=team, node=node, queue="rai_amd64", state=state,
                     submitted_at=submitted, started_at=started, finished_at=started + timedelta(seconds=run_s),
                     duration=run_s, gpus=gpus)


def seed(db) -> None:
    for r in [
        ended("j1", "ada", "t1", "n1", hours_ago=2, wait_s=10, run_s=3600, gpus=2),
        ended("j2", "ada", "t1", "n2", hours_ago=3, wait_s=30, run_s=1800, state=JobState.failed),
        ended("j3", "ada", "t1", "n1", hours_ago=4, wait_s=20, run_s=900, state=JobState.timeout),
        ended("j4", "bob", "t2", "n2", hours_ago=1, wait_s=100, run_s=360, state=JobState.cancelled),
        ended("old", "bob", "t2", "n1", hours_ago=24 * 10, wait_s=5, run_s=7200),  # outside the 7 days
        JobRecord(job_id="w1", username="cy", team="t2", queue="rai_amd64", submitted_at=utcnow()),  # waits
    ]:
        db.save_job(r)


def run_usage(db, *args: str) -> str:
    r = CliRunner().invoke(usage_cmd, list(args), obj=SimpleNamespace(db=db), standalone_mode=False)
    assert r.exception is None, r.output
    return r.output


def rows_of(text: str) -> dict[str, dict[str, str]]:
    return {row["key"]: row for row in csv.DictReader(io.StringIO(text))}


def test_usage_by_user_counts_hours_gpu_hours_failures_and_median_wait(db):
    seed(db)
    rows = rows_of(run_usage(db, "--csv"))
    assert set(rows) == {"ada", "bob", "cy"}  # bob's 10-day-old job is outside the default 7 days
    ada = rows["ada"]
    assert (ada["jobs"], ada["ended"], ada["failures"]) == ("3", "3", "2")  # failed and timeout; not cancelled
    assert float(ada["job_hours"]) == pytest.approx(1.75)
    assert float(ada["gpu_hours"]) == pytest.approx(2.0)  # the 1 h job with 2 GPUs
    assert float(ada["median_wait_s"]) == pytest.approx(20)
    assert rows["bob"]["failures"] == "0" and float(rows["bob"]["job_hours"]) == pytest.approx(0.1)
    assert rows["cy"]["jobs"] == "1" and rows["cy"]["ended"] == "0" and rows["cy"]["median_wait_s"] == ""
    assert list(rows) == ["ada", "bob", "cy"]  # most job-hours first


def test_usage_by_team_and_node_and_a_longer_period(db):
    seed(db)
    teams = rows_of(run_usage(db, "--by", "team", "--since", "30d", "--csv"))
    assert teams["t2"]["jobs"] == "3" and float(teams["t2"]["job_hours"]) == pytest.approx(2.1)
    nodes = rows_of(run_usage(db, "--by", "node", "--csv"))
    assert float(nodes["n1"]["job_hours"]) == pytest.approx(1.25)
    assert float(nodes["n2"]["job_hours"]) == pytest.approx(0.6)
    assert nodes["-"]["jobs"] == "1"  # the waiting job has no node yet


def test_usage_table_and_bad_period(db):
    seed(db)
    text = run_usage(db, "--since", "12h")
    assert "ada" in text and "total" in text and "1.75" in text and "2.00" in text
    r = CliRunner().invoke(usage_cmd, ["--since", "soon"], obj=SimpleNamespace(db=db), standalone_mode=False)
    assert "is not a duration" in str(r.exception) and "7d" in str(r.exception)


def test_rai_admin_usage_reads_the_configured_database(tmp_path):
    """The program as staff run it: the config names the database."""
    db = SQLiteDatabase(tmp_path / "rai.db")
    seed(db)
    db.close()
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(yaml.safe_dump({"database": {"provider": "sqlite", "path": str(tmp_path / "rai.db")},
                                   "pubsub": {"start_local": False}}))
    r = CliRunner().invoke(cli, ["--config", str(cfg), "usage", "--by", "team", "--csv"])
    assert r.exit_code == 0, r.output
    assert rows_of(r.output)["t1"]["failures"] == "2"
