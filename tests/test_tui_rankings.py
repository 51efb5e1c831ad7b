"""The console's Rankings view, driven by the pilot on a real Redis and SQLite: real team names, ties,
every result, sorting, switching kinds, a job's log from a row, CSV export, and its picture."""

from __future__ import annotations

import csv
from datetime import timedelta

import pytest

from rai.config import Config
from rai.domain.leaderboard import team_label
from rai.domain.models import RankingEntry
from raitui.components.job_tail import JobTailScreen
from raitui.demo import NOW
from raitui.views.rankings import RankingsView
from tests.fixtures.tui import core_views, settle, wait_for

SIZE = (130, 34)
SECRET = "demo-app-secret"
SPEC = {"rai": {"image": "localhost/rai-test:latest"}, "commands": {"build": ["make", "./check"]}}
PROJECTS = {"conv": {
    "title": "Convolution, fast", "spec": SPEC, "result": {"file": "result.json"}, "metric": "op_time",
    "valid": {"correctness": {"min": 0.9}}, "required_files": ["report.pdf"], "kinds": ["m2", "final"]}}
# team, user, demo job id, op_time, valid, minutes before the demo's time
ENTRIES = [
    ("t03", "linus", "20260314205347-13f7a2c9be05", 0.412, True, 11),
    ("t01", "ada", "20260314203355-0b9c8d7e6f5a", 0.53, True, 31),
    ("t02", "grace", "20260314202741-6e5d4c3b2a19", 0.53, True, 37),
    ("t01", "barbara", "20260314205110-a6d0e4b83f21", 0.9, True, 14),
    ("t05", "margaret", "20260314204520-c3b8f6a2d147", 0.2, False, 20),
    ("t04", "alan", "20260314204833-7f25c1d9e0ba", 0.71, True, 17),
]


@pytest.fixture
def anyio_backend():
    return "asyncio"  # Textual runs on asyncio


def console(demo_app):
    """The console with the core views and this one (so that other views' changes leave its picture alone)."""
    return demo_app(views=[*core_views(), RankingsView])


def seed_rankings(env) -> None:
    env.config.app.secret = SECRET
    env.config.projects = Config.model_validate({"projects": PROJECTS}).projects
    for team, user, job_id, value, valid, ago in ENTRIES:
        details = {"result": {"op_time": value, "correctness": 0.97 if valid else 0.61}}
        if not valid:
            details["invalid"] = ["correctness 0.61 is below 0.9"]
        env.backends.db.save_ranking(RankingEntry(project="conv", kind="final", job_id=job_id, username=user,
                                                  team=team, metric="op_time", value=value, valid=valid,
                                                  details=details, at=NOW - timedelta(minutes=ago)))


@pytest.fixture
def ranked_env(demo_env):
    seed_rankings(demo_env)
    return demo_env


async def open_rankings(pilot, app) -> RankingsView:
    await settle(pilot, app)
    await pilot.press("colon")
    app.screen.query_one("Input").value = "rankings"
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.current_view == "rankings", what="the rankings view")
    view = app.views["rankings"]
    if view.kind is not None and view.kind.kind != "final":
        await pilot.press("right_square_bracket")
    await wait_for(pilot, lambda: view.board is not None and view.table.row_count > 0, what="the leaderboard")
    return view


def column(view: RankingsView, key: str) -> list[str]:
    table = view.table
    return [table.get_cell(row.key, key).plain if hasattr(table.get_cell(row.key, key), "plain")
            else str(table.get_cell(row.key, key)) for row in table.ordered_rows]


@pytest.mark.anyio
async def test_real_team_names_best_result_per_team_and_ties(ranked_env, demo_app):
    app = console(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_rankings(pilot, app)
        assert column(view, "team") == ["t03", "t02", "t01", "t04"]  # a tie: the earlier result first
        assert column(view, "rank") == ["1", "2", "2", "4"]  # ... and both rank 2
        assert column(view, "value") == ["0.412", "0.53", "0.53", "0.71"]
        assert column(view, "members") == ["dennis linus", "grace ken", "ada barbara", "alan"]
        assert column(view, "label")[0] == team_label(SECRET, "t03")
        assert column(view, "results") == ["1", "1", "2", "1"]

        await pilot.press("a")  # every result: t01's second one and t05's invalid one too
        assert len(column(view, "team")) == 6
        assert column(view, "rank")[-2:] == ["-", "-"]
        note = dict(zip(column(view, "by"), column(view, "note"), strict=True))
        assert note["margaret"] == "correctness 0.61 is below 0.9" and note["barbara"] == "not counting"


@pytest.mark.anyio
async def test_sorting_by_key_header_and_reverse(ranked_env, demo_app):
    app = console(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_rankings(pilot, app)
        await pilot.press("s")  # rank -> team
        assert view.sort_column == "team" and column(view, "team") == ["t01", "t02", "t03", "t04"]
        await pilot.press("r")
        assert column(view, "team") == ["t04", "t03", "t02", "t01"]
        columns = list(view.table.columns.values())
        x = 2 + sum(c.get_render_width(view.table) for c in columns[:[c.key.value for c in columns].index("recorded")])
        await pilot.click("#rankings-table", offset=(x, 1))  # the RECORDED header (under the border)
        await wait_for(pilot, lambda: view.sort_column == "recorded", what="sorting by the clicked header")
        assert column(view, "by") == ["grace", "ada", "alan", "linus"]
        view.sort_column, view.descending = "results", True
        view.show_board()
        assert column(view, "team")[0] == "t01"


@pytest.mark.anyio
async def test_switching_kinds_and_no_projects(ranked_env, demo_app, demo_env):
    app = console(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_rankings(pilot, app)
        await pilot.press("right_square_bracket")
        assert view.kind.kind == "m2"
        await wait_for(pilot, lambda: view.board is not None and view.board.kind.kind == "m2", what="m2")
        assert view.table.row_count == 0 and "conv/m2" in view.table.border_title
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: view.table.row_count == 4, what="final again")

    demo_env.config.projects = {}
    app = console(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        view = app.views["rankings"]
        app.action_show_view("rankings")
        await pilot.pause(0.1)
        assert view.kind is None and "no ranked projects" in str(view.query_one("#rankings-title").render())


@pytest.mark.anyio
async def test_enter_opens_the_jobs_log_and_e_exports_the_csv(ranked_env, demo_app, tmp_path):
    app = console(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_rankings(pilot, app)
        view.export_dir = tmp_path
        await pilot.press("e")
        exported = tmp_path / "ranking-conv-final.csv"
        await wait_for(pilot, exported.exists, what="the CSV")
        await pilot.pause(0.1)
        rows = list(csv.DictReader(exported.open()))
        assert [(r["rank"], r["team"], r["members"]) for r in rows] == [
            ("1", "t03", "dennis linus"), ("2", "t02", "grace ken"), ("2", "t01", "ada barbara"), ("4", "t04", "alan")]
        await pilot.press("a", "e")
        await wait_for(pilot, (tmp_path / "ranking-conv-final-all.csv").exists, what="the full CSV")

        await pilot.press("a", "enter")
        assert isinstance(app.screen, JobTailScreen)
        assert app.screen.job_id == "20260314205347-13f7a2c9be05"


def test_rankings_snapshot(ranked_env, demo_app, snap_compare):
    app = console(demo_app)

    async def run_before(pilot) -> None:
        view = await open_rankings(pilot, app)
        await pilot.press("a")
        await wait_for(pilot, lambda: view.table.row_count == len(ENTRIES), what="every result")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
