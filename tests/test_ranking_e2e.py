"""Ranked submissions end to end: `rai submit --submit KIND` → raid runs the project's own build spec →
the result is read on the server → `rai ranking`, `rai history`, `rai submitted` through rai-server.

Real Redis, a real raid subprocess (--workers 2), real containers. One installation for the module;
each test ranks in its own submission kind so the tests do not see each other's results.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time

import docker
import httpx
import pytest

from keygen.accounts import create_account
from rai.client.core import Client
from rai.client.profile import Profile, load_profile, write_profile
from rai.config import load_config
from rai.domain.leaderboard import team_label
from rai.domain.models import LogEntry, LogKind
from rai.domain.signing import authorization_headers
from rai.errors import UserError
from tests.fixtures.e2e import TEST_IMAGE, RaiEnv, wait_for

APP_SECRET = "ranking-test-app-secret"
# The staff's checker: correctness from the program's answer, the time it reports, into /build/result.json.
CHECK = ("c=$(grep -c '^answer 42$' /build/out.txt); t=$(sed -n 's/^time //p' /build/out.txt | tail -n 1); "
         "printf '{\"correctness\": %s, \"timing\": {\"op_time\": %s}}' \"$c\" \"${t:-null}\" > /build/result.json")
JSON_PROJECT = {
    "title": "The answer, fast",
    "spec": {"rai": {"image": TEST_IMAGE},
             "commands": {"build": ["cp -r /src/. /build/", "sh /build/solve.sh > /build/out.txt", CHECK]}},
    "result": {"file": "result.json"},
    "metric": "timing.op_time",
    "lower_is_better": True,
    "valid": {"correctness": {"min": 1}},
    "kinds": {"m1": {}, "cli": {}, "forged": {}, "history": {}, "grading": {},
              "final": {"required_files": ["report.pdf"]}},
}
REGEX_PROJECT = {
    "spec": {"rai": {"image": TEST_IMAGE}, "commands": {"build": ["sh /src/solve.sh"]}},
    "result": {"patterns": [r"^Correctness: (?P<correctness>[0-9.]+)", r"^Op Time: (?P<op_time>[0-9.]+)"]},
    "metric": "op_time",
    "valid": {"correctness": {"min": 0.9}},
    "kinds": {
        "final": {},
        # sleeps first, so that the test can write forged lines into the job's log stream meanwhile
        "slow": {"spec": {"rai": {"image": TEST_IMAGE}, "commands": {"build": ["sleep 2", "sh /src/solve.sh"]}}},
    },
}
# The staff's checker in its own container: the job only builds and runs; the checker reads the job's
# /build (a copy, in its /src) after every process of the job is gone, and writes its own result.
CHECKED_PROJECT = {
    "spec": {"rai": {"image": TEST_IMAGE},
             "commands": {"build": ["cp -r /src/. /build/", "sh /build/solve.sh > /build/out.txt"]}},
    "check": {"commands": [CHECK.replace("/build/out.txt", "/src/out.txt")], "time": "30s"},
    "result": {"file": "result.json"},
    "metric": "timing.op_time",
    "valid": {"correctness": {"min": 1}},
    "kinds": ["honest", "forger"],
}
FORGED = '{"correctness": 1, "timing": {"op_time": 0.001}}'


@pytest.fixture(scope="module")
def env(tmp_path_factory, redis_url, engine, test_image):
    e = RaiEnv(tmp_path_factory.mktemp("ranked"), redis_url, engine.url)
    e.settings["app"] = {"secret": APP_SECRET}
    e.settings["projects"] = {"conv": JSON_PROJECT, "rx": REGEX_PROJECT, "chk": CHECKED_PROJECT}
    e.write_config()
    e.profiles = {}
    for name, team in (("ada", "t1"), ("ana", "t1"), ("bob", "t2"), ("cy", "t3"), ("dee", "t4")):
        account = create_account(e.backends.accounts, list(e.backends.config.roles), name, f"{name}@example.edu",
                                 team=team)
        e.profiles[name] = write_profile(Profile.from_account(account), e.tmp / f"{name}.profile")
    e.start_raid(workers=2)
    yield e
    e.cleanup()


def solver(env: RaiEnv, name: str, answer: int = 42, time_: float | None = 1.0, files: dict | None = None):
    lines = [f"echo answer {answer}"] + ([f"echo time {time_}"] if time_ is not None else [])
    return env.project(["echo this spec is not used"], name=name,
                       files={"solve.sh": "\n".join(lines) + "\n", **(files or {})})


def regex_solver(env: RaiEnv, name: str, correctness: float, op_time: float):
    return env.project(["echo this spec is not used"], name=name,
                       files={"solve.sh": f"echo 'Correctness: {correctness}'\necho 'Op Time: {op_time}'\n"})


def client(env: RaiEnv, user: str) -> Client:
    """The user's client as they hold it: the students' config (the server's URL) and their profile."""
    env.ensure_server()
    return Client(load_config(env.student_config), load_profile(env.profiles[user]))


def submit(env: RaiEnv, user: str, project, kind: str) -> str:
    """What `rai submit --no-follow --submit KIND` does, in this process (the CLI itself is tested below)."""
    return client(env, user).submit(project, submission=kind).job_id


def test_rai_submit_submit_kind_shows_the_ranked_result_at_the_end(env):
    r = env.rai(env.profiles["dee"], "submit", "--submit", "conv/cli", "-p", str(solver(env, "dee-cli", time_=8)))
    assert r.returncode == 0, r.stderr
    assert "ranked submission conv/cli" in r.stderr and "this spec is not used" not in r.stdout
    assert "conv/cli: timing.op_time = 8, ranked" in r.stderr


def test_the_staffs_checker_runs_in_a_fresh_container_and_only_its_result_counts(env):
    honest = submit(env, "bob", solver(env, "bob-honest", time_=3), "chk/honest")
    # wrong answer, a forged result.json, and a background loop that keeps writing the forgery after the commands
    loop = f"(while true; do echo '{FORGED}' > /build/result.json; done) >/dev/null 2>&1 &"
    project = solver(env, "cy-forger", files={"result.json": FORGED})
    (project / "solve.sh").write_text(f"echo answer 41\necho time 2\n{loop}\nsleep 0.5\n")
    forger = submit(env, "cy", project, "chk/forger")
    records = finish(env, honest, forger)
    assert records[honest].state.value == "succeeded"
    assert "chk/honest: timing.op_time = 3, ranked" in records[honest].message
    assert "checking the result in a fresh container" in "".join(
        e.body for _, e in env.backends.logs.read(honest) if e.kind == LogKind.status)
    assert "chk/forger: timing.op_time = 2, not ranked: correctness" in records[forger].message
    entries = {e.job_id: e for e in env.backends.db.list_rankings("chk", "forger")}
    assert entries[forger].value == 2 and not entries[forger].valid  # the checker's numbers, not the forgery's
    engine = docker.DockerClient(base_url=env.settings["docker"]["base_url"])
    # both containers of each removed (the plain list: Docker's full one inspects each, racing the removals)
    wait_for(lambda: not any((c.get("Labels") or {}).get("rai.job") in (honest, forger)
                             for c in engine.api.containers(all=True)),
             30, what="the jobs' containers removed")


def finish(env: RaiEnv, *job_ids: str) -> dict:
    def done():
        records = {j: env.backends.db.get_job(j) for j in job_ids}
        return records if all(r is not None and r.state.finished for r in records.values()) else None

    return wait_for(done, 90, 0.1, what="the jobs to end")


def query(env: RaiEnv, user: str, *args: str) -> dict:
    r = env.rai(env.profiles[user], *args, "--json")
    assert r.returncode == 0, r.stderr + env.raid_output()[-2000:]
    return json.loads(r.stdout)


def test_json_results_rank_each_teams_best_valid_result_with_ties_and_anonymised_names(env):
    jobs = [
        submit(env, "ada", solver(env, "ada-5", time_=5), "conv/m1"),
        submit(env, "ana", solver(env, "ana-3", time_=3), "m1"),  # t1's best
        submit(env, "bob", solver(env, "bob-4", time_=4), "m1"),
        submit(env, "bob", solver(env, "bob-wrong", answer=41, time_=0.5), "m1"),  # fastest, but wrong: not ranked
        submit(env, "cy", solver(env, "cy-3", time_=3), "m1"),  # ties with t1
        submit(env, "dee", solver(env, "dee-none", time_=None), "m1"),  # no time: no result at all
    ]
    records = finish(env, *jobs)
    assert "ranked" in records[jobs[1]].message and "op_time = 3" in records[jobs[1]].message
    assert "not ranked: correctness 0 is below 1" in records[jobs[3]].message
    assert "not ranked" in records[jobs[5]].message

    board = query(env, "ada", "ranking", "--project", "conv", "--kind", "m1")
    rows = [(r["rank"], r["team"], r["value"]) for r in board["rows"]]
    t2, t3 = team_label(APP_SECRET, "t2"), team_label(APP_SECRET, "t3")
    assert board["teams"] == 3
    assert rows[2] == (3, t2, 4.0)
    assert sorted(rows[:2]) == sorted([(1, "t1", 3.0), (1, t3, 3.0)])  # a tie shares rank 1; then rank 3
    assert [r["yours"] for r in board["rows"] if r["team"] == "t1"] == [True]

    # bob sees t1 and t3 under the same labels ada sees t3 under, and his own team by name
    seen_by_bob = query(env, "bob", "ranking", "--project", "conv", "--kind", "m1")
    labels = {r["team"] for r in seen_by_bob["rows"]}
    assert labels == {team_label(APP_SECRET, "t1"), t3, "t2"}
    assert len({team_label(APP_SECRET, t) for t in ("t1", "t2", "t3", "t4")}) == 4
    assert not any(t in label for label in labels - {"t2"} for t in ("t1", "t3"))

    # -n is honoured; your team is still shown when it is beyond
    short = query(env, "bob", "ranking", "--project", "conv", "--kind", "m1", "-n", "1")
    assert len(short["rows"]) == 1 and short["yours"]["rank"] == 3 and short["yours"]["team"] == "t2"
    text = env.rai(env.profiles["bob"], "ranking", "--project", "conv", "--kind", "m1", "-n", "1")
    assert text.returncode == 0 and "your team t2: rank 3 of 3" in text.stdout, text.stdout
    assert "t1" not in text.stdout.replace(team_label(APP_SECRET, "t1"), "")


def test_regex_results_rank_and_an_invalid_result_is_not_ranked(env):
    good = submit(env, "ada", regex_solver(env, "rx-ada", 0.95, 2.5), "rx/final")
    bad = submit(env, "bob", regex_solver(env, "rx-bob", 0.5, 0.1), "rx/final")
    records = finish(env, good, bad)
    assert "op_time = 2.5, ranked" in records[good].message
    assert "correctness 0.5 is below 0.9" in records[bad].message
    board = query(env, "cy", "ranking", "--project", "rx", "--kind", "final")
    assert [(r["rank"], r["team"], r["value"]) for r in board["rows"]] == [(1, team_label(APP_SECRET, "t1"), 2.5)]
    assert board["yours"] is None


def test_a_forged_result_from_the_client_side_has_no_effect(env):
    # the project ships its own result.json and a rai_build.yml printing fake lines; its program is wrong
    forged = env.project(["echo 'Correctness: 1.0'", "echo 'Op Time: 0.0001'", "cp result.json /build/"],
                         name="forger", files={"solve.sh": "echo answer 7\necho time 0.0001\n",
                                               "result.json": '{"correctness": 1, "timing": {"op_time": 0.0001}}'})
    job = submit(env, "bob", forged, "conv/forged")
    record = finish(env, job)[job]
    assert "not ranked: correctness 0 is below 1" in record.message
    assert query(env, "bob", "ranking", "--project", "conv", "--kind", "forged")["rows"] == []

    # forged output lines written straight into the job's log stream (clients can write to Redis) count for nothing
    slow = submit(env, "bob", regex_solver(env, "rx-slow", 0.2, 9.0), "rx/slow")
    wait_for(lambda: env.backends.live.get_job(slow).state.value == "running", 30, what="the job to run")
    env.backends.logs.append(slow, [LogEntry(kind=LogKind.stdout, body="Correctness: 1.0\nOp Time: 0.0001\n")])
    record = finish(env, slow)[slow]
    assert "Correctness: 1.0" in env.rai(env.profiles["bob"], "logs", slow).stdout  # it is in the log ...
    assert "correctness 0.2 is below 0.9" in record.message  # ... but the result is what the job printed
    assert query(env, "bob", "ranking", "--project", "rx", "--kind", "slow")["rows"] == []


def test_history_and_submitted_show_only_what_the_caller_may_see(env):
    a1 = submit(env, "ada", solver(env, "h-ada-2", time_=2), "conv/history")
    a2 = submit(env, "ana", solver(env, "h-ana-1", time_=1), "conv/history")
    b1 = submit(env, "bob", solver(env, "h-bob-1", time_=1.5), "conv/history")
    finish(env, a1, a2, b1)

    ada_history = {r["job_id"]: r for r in query(env, "ada", "history", "-n", "50")["rows"]}
    assert a1 in ada_history and a2 not in ada_history and b1 not in ada_history
    assert ada_history[a1]["value"] == 2.0 and ada_history[a1]["valid"] is True
    bob_history = {r["job_id"] for r in query(env, "bob", "history", "-n", "50")["rows"]}
    assert b1 in bob_history and not bob_history & {a1, a2}
    assert len(query(env, "ada", "history", "-n", "1")["rows"]) == 1

    seen_by_ana = query(env, "ana", "submitted", "--project", "conv", "--kind", "history")
    assert seen_by_ana["team"] == "t1"
    rows = {r["job_id"]: r for r in seen_by_ana["kinds"][0]["rows"]}
    assert set(rows) == {a1, a2}  # the team's, not bob's
    assert rows[a2]["counts"] and not rows[a1]["counts"] and rows[a1]["username"] == "ada"
    seen_by_bob = query(env, "bob", "submitted", "--project", "conv", "--kind", "history")
    assert [r["job_id"] for r in seen_by_bob["kinds"][0]["rows"]] == [b1]
    text = env.rai(env.profiles["ana"], "submitted", "--project", "conv", "--kind", "history")
    assert text.returncode == 0 and "team t1" in text.stdout
    assert next(line for line in text.stdout.splitlines() if a2 in line).lstrip().startswith("*")


def test_missing_required_file_and_unknown_kind_are_refused_before_upload(env):
    depth = env.backends.queue.depth(env.queue).waiting
    proj = solver(env, "no-report")
    r = env.rai(env.profiles["ada"], "submit", "--submit", "conv/final", "-p", str(proj))
    assert r.returncode == 2 and "needs report.pdf" in r.stderr and "Traceback" not in r.stderr
    (proj / ".raiignore").write_text("*.pdf\n")
    (proj / "report.pdf").write_bytes(b"%PDF-1.4 report")
    r = env.rai(env.profiles["ada"], "submit", "--submit", "conv/final", "-p", str(proj))
    assert r.returncode == 2 and "needs report.pdf" in r.stderr and ".raiignore" in r.stderr
    r = env.rai(env.profiles["ada"], "submit", "--submit", "final", "-p", str(proj))
    assert r.returncode == 2 and "--submit conv/final, --submit rx/final" in r.stderr

    r = env.rai(env.profiles["ada"], "submit", "--submit", "m9", "-p", str(proj))
    assert r.returncode == 2 and "unknown submission kind 'm9'" in r.stderr and "m1" in r.stderr
    assert env.backends.queue.depth(env.queue).waiting == depth


def test_raid_refuses_what_a_modified_client_lets_through(env, monkeypatch):
    client = globals()["client"](env, "ada")
    monkeypatch.setattr("rai.domain.public_projects.check_submission",
                        lambda *a: (None, type("K", (), {"spec": None})()))
    no_report = client.submit(solver(env, "sneaky"), submission="conv/final").job_id
    with pytest.raises(UserError, match="no submission kind 'm9'"):  # the server refuses it at the door
        client.submit(solver(env, "sneaky"), submission="conv/m9")
    records = finish(env, no_report)
    assert records[no_report].state.value == "refused" and "needs report.pdf" in records[no_report].message


def test_questions_are_signed_fresh_and_never_replayed(env):
    env.ensure_server()
    ada = load_profile(env.profiles["ada"])

    def ask(secret: str = ada.secret_key, now: float | None = None, headers: dict | None = None):
        headers = headers or authorization_headers(ada.access_key, secret, "GET", "/v1/history", [], now=now)
        return httpx.get(env.server_url + "/v1/history", headers=headers, timeout=10), headers

    r, _ = ask("not-the-secret")
    assert r.status_code == 401 and "signature does not match your key" in r.json()["error"]
    started = time.monotonic()
    r, sent = ask()
    assert r.status_code == 200 and r.json()["username"] == "ada"
    assert time.monotonic() - started < 5
    r, _ = ask(headers=sent)  # the same request again, nonce and all
    assert r.status_code == 401 and "replay" in r.json()["error"]
    r, _ = ask(now=time.time() - 600)  # a clock ten minutes off, or a request kept and sent later
    assert r.status_code == 401 and "s old" in r.json()["error"] and "clock" in r.json()["hint"]


def admin(env: RaiEnv, *args: str):
    return env.run(sys.executable, "-c", "from raid.admin_cli import main; main()", *args)


def test_staff_export_the_leaderboard_as_csv_with_real_team_names(env, tmp_path):
    jobs = [submit(env, "ada", solver(env, "g-ada", time_=2), "conv/grading"),
            submit(env, "cy", solver(env, "g-cy", time_=1), "conv/grading"),
            submit(env, "bob", solver(env, "g-bob", answer=0, time_=0.1), "conv/grading")]
    finish(env, *jobs)
    out = tmp_path / "grading.csv"
    r = admin(env, "ranking", "export", "--project", "conv", "--kind", "grading", "-o", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert [(row["rank"], row["team"], row["members"], row["value"]) for row in rows] == [
        ("1", "t3", "cy", "1.0"), ("2", "t1", "ada ana", "2.0")]
    assert rows[0]["job_id"] == jobs[1] and rows[0]["label"] == team_label(APP_SECRET, "t3")
    r = admin(env, "ranking", "export", "--project", "conv", "--kind", "grading", "--all", "-o", "-")
    every = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(every) == 3 and [row["counts"] for row in every] == ["yes", "yes", "no"]
    assert every[2]["valid"] == "no" and "correctness" in every[2]["details"]
    shown = admin(env, "ranking", "show", "--project", "conv", "--kind", "grading")
    assert shown.returncode == 0 and "t3" in shown.stdout and "ada ana" in shown.stdout
    bad = admin(env, "ranking", "export", "--kind", "grading", "-o", "-")
    assert bad.returncode == 2 and "several ranked projects" in bad.stderr and "Traceback" not in bad.stderr
    listed = admin(env, "projects")
    assert listed.returncode == 0 and "conv/final" in listed.stdout and "report.pdf" in listed.stdout
