"""Ranked submissions without containers: the projects config, leaderboards, labels, result reading."""

from __future__ import annotations

import csv
import io
import json
import stat
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest

from rai.config import Config, load_config
from rai.domain.leaderboard import label_secret, standings, team_label, write_csv
from rai.domain.models import RankingEntry, utcnow
from rai.domain.projects import Condition, lookup
from rai.domain.public_projects import PublicProjects, check_submission, missing_required_files
from rai.errors import UserError
from raid.ranking import OutputTap, match_patterns, read_result_file

SPEC = {"rai": {"image": "img"}, "commands": {"build": ["make"]}}


def entry(team: str, value: float, valid: bool = True, minutes_ago: float = 0, job: str | None = None):
    return RankingEntry(project="p", kind="final", job_id=job or f"{team}-{value}-{minutes_ago}", username=team,
                        team=team, metric="t", value=value, valid=valid, at=utcnow() - timedelta(minutes=minutes_ago))


# --- leaderboards -------------------------------------------------------------------------------

def test_each_teams_best_valid_result_ranks_and_ties_share_a_rank():
    rows = standings([entry("a", 5), entry("a", 3), entry("b", 4), entry("b", 1, valid=False), entry("c", 3),
                      entry("d", 9), entry("e", float("nan"))])
    assert [(s.rank, s.team, s.entry.value) for s in rows] == [(1, "a", 3), (1, "c", 3), (3, "b", 4), (4, "d", 9)]
    assert rows[0].valid_results == 2 and rows[2].valid_results == 1


def test_higher_is_better_and_latest_counts():
    entries = [entry("a", 5, minutes_ago=10), entry("a", 2, minutes_ago=1), entry("b", 4)]
    assert [(s.rank, s.team) for s in standings(entries, lower_is_better=False)] == [(1, "a"), (2, "b")]
    latest = standings(entries, lower_is_better=False, counts="last")
    assert [(s.team, s.entry.value) for s in latest] == [("b", 4), ("a", 2)]


def test_a_tie_within_a_team_keeps_the_earlier_result():
    early, late = entry("a", 3, minutes_ago=5, job="early"), entry("a", 3, minutes_ago=1, job="late")
    assert standings([late, early])[0].entry.job_id == "early"


def test_team_labels_are_stable_distinct_and_keyed_by_the_secret():
    labels = {team_label("s", f"team{i}") for i in range(300)}
    assert len(labels) == 300
    assert team_label("s", "t1") == team_label("s", "t1") != team_label("other", "t1")
    adjective, noun, tail = team_label("s", "t1").split("-")
    assert adjective.isalpha() and noun.isalpha() and len(tail) == 4 and "t1" not in team_label("s", "t1")


def test_without_an_app_secret_labels_use_a_private_key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RAI_APP_SECRET", raising=False)
    first = label_secret(Config())
    assert first == label_secret(Config()) and len(first) == 64
    key = tmp_path / "team-labels.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and not list(tmp_path.glob("*.tmp"))
    monkeypatch.setenv("RAI_APP_SECRET", "app")
    assert label_secret(Config()) == "app"


def test_csv_for_grading_one_row_per_team_or_every_result():
    entries = [entry("a", 3), entry("a", 5), entry("b", 1, valid=False)]
    rows = standings(entries)
    buf = io.StringIO()
    assert write_csv(buf, "p", "final", rows, label_secret="s", members={"a": ["ada", "ana"]}) == 1
    (only,) = csv.DictReader(io.StringIO(buf.getvalue()))
    assert (only["rank"], only["team"], only["members"], only["value"], only["label"]) == (
        "1", "a", "ada ana", "3.0", team_label("s", "a"))
    buf = io.StringIO()
    write_csv(buf, "p", "final", rows, entries=entries)
    assert [(r["rank"], r["counts"], r["valid"]) for r in csv.DictReader(io.StringIO(buf.getvalue()))] == [
        ("1", "yes", "yes"), ("", "no", "yes"), ("", "no", "no")]


# --- the projects config ------------------------------------------------------------------------

def config(tmp_path: Path, projects: dict) -> Config:
    p = tmp_path / "cfg.yml"
    p.write_text(json.dumps({"projects": projects}))
    return load_config(p)


def test_kinds_inherit_the_project_and_override_it(tmp_path):
    cfg = config(tmp_path, {"conv": {
        "spec": SPEC, "required_files": ["report.pdf"], "result": {"file": "result.json"}, "metric": "t",
        "valid": {"correct": {"equals": True}},
        "kinds": {"m1": {"required_files": [], "metric": "speed", "lower_is_better": False}, "final": None}}})
    p = cfg.projects["conv"]
    m1, final = p.kind("conv", "m1"), p.kind("conv", "final")
    assert (m1.required_files, m1.metric, m1.lower_is_better) == ([], "speed", False)
    assert (final.required_files, final.metric, final.lower_is_better) == (["report.pdf"], "t", True)
    assert final.spec.rai.image == "img" and final.name == "conv/final" and final.counts == "best"
    listed = config(tmp_path, {"x": {"spec": SPEC, "result": {"file": "r.json"}, "metric": "t",
                                     "kinds": ["m1", "m2", "final"]}})
    assert list(listed.projects["x"].kinds) == ["m1", "m2", "final"]


@pytest.mark.parametrize("project, words", [
    ({"result": {"file": "r.json"}, "metric": "t", "kinds": ["m1"]}, "spec missing"),
    ({"spec": SPEC, "result": {"file": "r.json", "patterns": ["(?P<t>.)"]}, "metric": "t", "kinds": ["m1"]},
     "either file"),
    ({"spec": SPEC, "result": {"patterns": ["time (.*)"]}, "metric": "t", "kinds": ["m1"]}, "named group"),
    ({"spec": SPEC, "result": {"patterns": ["(?P<time>.*)"]}, "metric": "t", "kinds": ["m1"]},
     "t is not a named group"),
    ({"spec": SPEC, "result": {"patterns": ["(?P<t>[(]"]}, "metric": "t", "kinds": ["m1"]}, "not a valid regular"),
    ({"spec": SPEC, "result": {"file": "../r.json"}, "metric": "t", "kinds": ["m1"]}, "relative path"),
    ({"spec": SPEC, "result": {"file": "r.json"}, "metric": "t", "kinds": []}, "at least one"),
    ({"spec": SPEC, "result": {"file": "r.json"}, "metric": "t", "kinds": ["a b"]}, "kind 'a b'"),
    ({"spec": SPEC, "result": {"file": "r.json"}, "metric": "t", "valid": {"c": {}}, "kinds": ["m1"]}, "min, max"),
    ({"spec": {"rai": {"image": "x"}}, "result": {"file": "r.json"}, "metric": "t", "kinds": ["m1"]},
     "projects.p.spec.commands"),
])
def test_a_bad_project_says_where(tmp_path, project, words):
    with pytest.raises(UserError) as e:
        config(tmp_path, {"p": project})
    assert words in str(e.value)


def test_conditions_and_key_paths():
    values = {"correctness": "0.95", "timing": {"runs": [1.5, 2.5]}, "a.b": 3, "ok": True}
    assert lookup(values, "timing.runs.1") == 2.5 and lookup(values, "a.b") == 3 and lookup(values, "nope") is None
    assert Condition(min=0.9).problem("correctness", values["correctness"]) is None
    assert Condition(min=0.99).problem("correctness", "0.95") == "correctness 0.95 is below 0.99"
    assert Condition(max=2).problem("t", 2.5) == "t 2.5 is above 2"
    assert Condition(min=1).problem("c", None) == "c is missing from the result"
    assert Condition(min=1).problem("c", "fast") == "c is 'fast', not a number"
    assert Condition(equals=True).problem("ok", True) is None
    assert Condition(equals=1).problem("n", "1.0") is None


def test_the_client_resolves_kinds_and_names_the_choices():
    public = PublicProjects.model_validate({"projects": {
        "a": {"kinds": {"m1": {"kind": "m1"}, "final": {"kind": "final"}}},
        "b": {"kinds": {"final": {"kind": "final"}}}}})
    assert public.resolve("m1")[0] == "a" and public.resolve("b/final")[0] == "b"
    with pytest.raises(UserError, match="several projects") as e:
        public.resolve("final")
    assert "--submit a/final" in e.value.hint
    with pytest.raises(UserError, match="unknown submission kind 'm9'"):
        public.resolve("m9")
    with pytest.raises(UserError, match="no project 'c'"):
        public.resolve("c/final")
    with pytest.raises(UserError, match="no ranked projects"):
        PublicProjects().resolve("final")


def test_required_files_must_be_there_non_empty_and_not_ignored(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "report.pdf").write_bytes(b"%PDF")
    (tmp_path / "empty.txt").write_text("")
    assert missing_required_files(tmp_path, ["docs/report.pdf", "empty.txt", "nope"]) == ["empty.txt", "nope"]
    (tmp_path / ".raiignore").write_text("docs/\n")
    assert missing_required_files(tmp_path, ["docs/report.pdf"]) == ["docs/report.pdf"]
    public = PublicProjects.model_validate({"projects": {"a": {"kinds": {"final": {
        "kind": "final", "required_files": ["docs/report.pdf"]}}}}})
    with pytest.raises(UserError, match="needs docs/report.pdf") as e:
        check_submission(public, tmp_path, "final")
    assert ".raiignore" in e.value.hint


# --- reading results on the server --------------------------------------------------------------

def build_tar(tmp_path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    path = tmp_path / "build.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        for name, target in (links or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tar.addfile(ti)
    return path


def test_the_result_file_is_read_from_the_build_archive(tmp_path):
    good = build_tar(tmp_path, {"build/out.txt": b"x", "build/result.json": b'{"t": 1.5}'})
    assert read_result_file(good, "result.json") == ({"t": 1.5}, "")
    assert read_result_file(good, "other.json")[1] == "the job wrote no /build/other.json"
    assert "not valid JSON" in read_result_file(build_tar(tmp_path, {"build/r.json": b"{"}), "r.json")[1]
    assert "JSON object" in read_result_file(build_tar(tmp_path, {"build/r.json": b"[1]"}), "r.json")[1]
    linked = build_tar(tmp_path, {}, links={"build/r.json": "/etc/passwd"})
    assert "not a regular file" in read_result_file(linked, "r.json")[1]
    assert "could not be copied" in read_result_file(tmp_path / "none.tar", "r.json")[1]


def test_patterns_take_the_last_match_of_each():
    text = "Correctness: 0.5\nwarm-up\nCorrectness: 0.97 Model: big\nOp Time: 12.5 ms\nOp Time: 11.0 ms\n"
    values = match_patterns([r"Correctness: (?P<c>[0-9.]+) Model: (?P<model>\w+)", r"Op Time: (?P<t>[0-9.]+)"],
                            text)
    assert values == {"c": 0.97, "model": "big", "t": 11.0}
    assert match_patterns([r"^Nope: (?P<x>.*)$"], text) == {}


def test_the_output_tap_passes_everything_on_and_keeps_the_last_bytes():
    got = []

    class Writer:
        def output(self, kind, data):
            got.append((kind, data))

        def status(self, text):
            got.append(("status", text))

    tap = OutputTap(Writer(), ("stdout",), limit=10)
    for i in range(30):
        tap.output("stdout", f"{i:02d}\n".encode())
    tap.output("stderr", b"not kept\n")
    tap.status("$ make")
    assert len(got) == 32 and got[-1] == ("status", "$ make")
    assert tap.text() == "".join(f"{i:02d}\n" for i in range(30))[-10:]
