"""The console's views on a real Redis and SQLite: navigation, the jobs table, filtering, the palette,
help, and what it does when Redis does not answer."""

from __future__ import annotations

import socket

import pytest
from textual.widgets import Input

from rai.domain.models import JobRecord, JobState
from raitui.components.goto import GotoScreen
from raitui.components.help import HelpScreen
from raitui.components.live_table import LiveTable
from raitui.demo import NOW
from raitui.views import VIEWS, load_views
from raitui.views.jobs import JobsView
from tests.fixtures.tui import TuiEnv, settle, wait_for

pytestmark = pytest.mark.anyio
SIZE = (130, 34)


@pytest.fixture
def anyio_backend():
    return "asyncio"  # Textual runs on asyncio


def shown_ids(app) -> list[str]:
    table = app.views["jobs"].table
    return [row.key.value for row in table.ordered_rows]


def test_every_registered_view_loads():
    classes = load_views()
    assert [c.view_name for c in classes][:4] == ["jobs", "queue", "nodes", "daemon"]
    assert len(classes) == len(VIEWS)
    assert len({c.view_name for c in classes}) == len(classes)


async def test_number_keys_and_colon_switch_views(demo_env):
    app = demo_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.current_view == "jobs"
        for key, name in (("2", "queue"), ("3", "nodes"), ("4", "daemon"), ("1", "jobs")):
            await pilot.press(key)
            assert app.current_view == name
            assert app.switcher.current == f"view-{name}"
        await pilot.press("colon")
        assert isinstance(app.screen, GotoScreen)
        await pilot.press(*"no", "right", "enter")  # completes to "nodes"
        assert app.current_view == "nodes"
        for typed, expected in ((":queue", "queue"), ("nope", "queue")):  # a typed colon is fine; unknown: no change
            await pilot.press("colon")
            app.screen.query_one(Input).value = typed
            await pilot.press("enter")
            assert app.current_view == expected
        await pilot.press("colon", "escape")
        assert not isinstance(app.screen, GotoScreen)


async def test_jobs_newest_first_with_live_queued_jobs(demo_env):
    app = demo_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        ids = shown_ids(app)
        # Queued jobs exist only in Redis (the client writes no database row): they must show too.
        assert ids[0] == "20260314210458-9e1d44ab07c2"
        assert ids == sorted(ids, reverse=True)
        assert len(ids) == 14


async def test_rows_update_in_place(demo_env):
    app = demo_env.app(clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        table = app.views["jobs"].table
        job_id = "20260314210219-b04c6e1f9a37"
        row_key = next(r.key for r in table.ordered_rows if r.key.value == job_id)
        await pilot.press("down", "down")  # the cursor on the job
        assert table.selected_key() == job_id
        record = demo_env.backends.live.get_job(job_id)
        record.state, record.node, record.started_at = JobState.running, "gpu-03", NOW
        demo_env.backends.live.put_job(record)
        await wait_for(pilot, lambda: str(table.get_cell(row_key, "state")) == "running", what="the new state")
        assert table.get_cell(row_key, "node") == "gpu-03"
        assert table.selected_key() == job_id  # same row object, cursor still on it
        # A new job goes on top; the cursor stays on the job it was on.
        new = JobRecord(job_id="20260314210511-aaaaaaaaaaaa", username="ada", team="t01", queue="rai_amd64",
                        submitted_at=NOW)
        demo_env.backends.live.put_job(new)
        await wait_for(pilot, lambda: shown_ids(app)[0] == new.job_id, what="the new job on top")
        assert table.selected_key() == job_id


async def test_filter_by_user_state_and_id(demo_env):
    app = demo_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("slash", *"ada")
        await wait_for(pilot, lambda: set(shown_ids(app)) == {"20260314205731-5c2e81f04a9d",
                                                              "20260314203355-0b9c8d7e6f5a"}, what="ada's jobs")
        await pilot.press("enter")  # keeps the filter, back to the table
        assert app.focused is app.views["jobs"].table
        assert app.job_filter.text == "ada"
        box = app.views["jobs"].query_one(Input)
        await pilot.press("slash")
        box.value = "state:running"
        running = {"20260314205731-5c2e81f04a9d", "20260314205502-e8a39d17c640"}
        await wait_for(pilot, lambda: set(shown_ids(app)) == running, what="the running jobs")
        box.value = "4d9e07"
        await wait_for(pilot, lambda: shown_ids(app) == ["20260314204218-4d9e07b1c5f3"], what="one id")
        await pilot.press("escape")  # clears the filter
        await wait_for(pilot, lambda: len(shown_ids(app)) == 14, what="all jobs again")
        assert app.job_filter.text == ""


def empty_hint(app) -> str:
    hint = app.views["jobs"].query_one("#jobs-empty")
    return str(hint.render()) if hint.display else ""


async def test_an_empty_jobs_table_says_how_to_submit_then_gives_way_to_the_job(tmp_path, redis_client, redis_url):
    env = TuiEnv(tmp_path, redis_url)
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "rai submit -p examples/hello" in empty_hint(app), what="the newcomer's hint")
        env.backends.live.put_job(JobRecord(job_id="20260314210000-cccccccccccc", username="ada",
                                            state=JobState.queued, submitted_at=NOW))
        await wait_for(pilot, lambda: shown_ids(app) == ["20260314210000-cccccccccccc"], what="the job")
        assert empty_hint(app) == ""


async def test_a_filter_that_matches_nothing_says_so(demo_env):
    app = demo_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert empty_hint(app) == ""
        await pilot.press("slash", *"nobody-at-all")
        await wait_for(pilot, lambda: "No job matches “nobody-at-all”" in empty_hint(app), what="the no-match hint")
        assert "rai submit" not in empty_hint(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: empty_hint(app) == "" and len(shown_ids(app)) == 14, what="all jobs again")


async def test_header_counts(demo_env):
    app = demo_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        text = str(app.header.render())
        assert "3 waiting" in text and "2 running" in text
        assert "3 up" in text and "1 lost" in text


async def test_help_and_palette_list_every_action(demo_env):
    app = demo_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = " ".join(b.description for _title, bindings, _note in app.screen.sections for b in bindings)
        for words in ("Filter", "Cancel job", "Drain/resume", "Start raid", "Stop raid", "Follow on/off", "Resume"):
            assert words in help_text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        names = [name for name, _help, _cb in app.palette_commands(app.screen)]
        for cls in load_views():
            assert f"Go to {cls.title}" in names
            for b in cls.BINDINGS:
                if b.show:
                    assert f"{cls.title}: {b.description}" in names
        assert "Quit" in names
        # Running one from the palette does what the key does.
        dict((n, cb) for n, _h, cb in app.palette_commands(app.screen))["Go to Nodes"]()
        await pilot.pause()
        assert app.current_view == "nodes"


async def test_command_palette_finds_and_runs_an_action(demo_env):
    from textual.command import CommandPalette

    app = demo_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        await pilot.press(*"drain")
        await pilot.pause(0.3)
        await pilot.press("enter")  # "Nodes: Drain/resume": goes to Nodes and acts on the selected node
        await wait_for(pilot, lambda: app.current_view == "nodes", what="the Nodes view")
        await wait_for(pilot, lambda: demo_env.backends.live.is_draining("cpu-01"), what="cpu-01 draining")


async def test_enter_opens_the_tail_and_esc_comes_back(demo_env):
    app = demo_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("down", "down", "down", "enter")
        from raitui.components.job_tail import JobTailScreen

        assert isinstance(app.screen, JobTailScreen)
        assert app.screen.job_id == "20260314205731-5c2e81f04a9d"
        await wait_for(pilot, lambda: app.screen.log_view.line_count >= 40, what="the demo log")
        await pilot.press("escape")
        assert isinstance(app.views["jobs"], JobsView) and app.screen is app.screen_stack[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_redis_says_so_and_recovers(tmp_path, redis_client, redis_url):
    env = TuiEnv(tmp_path, f"redis://127.0.0.1:{closed_port()}/0")
    app = env.app(retry_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.banner.display, what="the banner")
        banner = str(app.banner.render())
        assert "does not answer" in banner and "retrying" in banner
        assert "?" in str(app.header.render())
        for key in ("2", "3", "4", "1"):  # every view still opens
            await pilot.press(key)
        assert app.is_running
        # The database still answers: its jobs still show.
        env.backends.db.save_job(JobRecord(job_id="20260314210000-bbbbbbbbbbbb", username="ada", submitted_at=NOW))
        await wait_for(pilot, lambda: shown_ids(app) == ["20260314210000-bbbbbbbbbbbb"], what="db jobs")
        # Redis comes back (same config, now pointing at a live server): the banner goes.
        env.config.pubsub.url = redis_url
        env.backends.__dict__.pop("redis", None)
        for name in ("live", "queue", "logs"):
            env.backends.__dict__.pop(name, None)
        await wait_for(pilot, lambda: not app.banner.display, timeout=10, what="the banner to go")


async def test_unreachable_database_says_so(tmp_path, redis_client, redis_url):
    env = TuiEnv(tmp_path, redis_url)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database folder should be")
    env.config.database.path = str(blocker / "rai.db")
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.banner.display, what="the banner")
        assert "database" in str(app.banner.render())
        assert app.snapshot.redis_error is None
        await pilot.press("3")
        assert app.is_running


async def test_live_table_keeps_cursor_key(demo_env):
    app = demo_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("3")
        table = app.views["nodes"].query_one(LiveTable)
        await wait_for(pilot, lambda: table.row_count == 4, what="the nodes")
        assert [r.key.value for r in table.ordered_rows] == ["cpu-01", "gpu-01", "gpu-02", "gpu-03"]


def test_nodes_gpu_cell_shows_readings_or_the_offered_count():
    from rai.domain.models import GPUStat, NodeHeartbeat
    from raitui.views.nodes import gpu_text

    base = dict(node="n", host="h", arch="amd64", version="0", queue="q", capacity=2)
    assert str(gpu_text(NodeHeartbeat(**base))) == "-"
    assert str(gpu_text(NodeHeartbeat(**base, gpu_count=2))) == "2× (no readings)"
    two = [GPUStat(index=i, name="H200", utilization=u, memory_used=8 * 1024**3, memory_total=141 * 1024**3)
           for i, u in enumerate((30.0, 50.0))]
    assert str(gpu_text(NodeHeartbeat(**base, gpus=two, gpu_count=2))) == "2× 40% 16/282G"


async def test_a_waiting_job_shows_its_place_in_line_and_when_it_may_start(demo_env):
    app = demo_env.app(clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        table = app.views["jobs"].table

        def cells(job_id: str) -> tuple[str, str]:
            row = table.get_row(job_id)
            return str(row[3]), str(row[6])  # STATE, STARTED

        # rai_amd64: margaret has waited longest (no one's usage differs), then dennis; the GPU queue has ken
        assert cells("20260314210219-b04c6e1f9a37") == ("queued 1st", "in <1 min")
        assert cells("20260314210458-9e1d44ab07c2") == ("queued 2nd", "in <1 min")
        assert cells("20260314210431-27bf90e6d1a8")[0] == "queued 1st"
        assert cells("20260314205502-e8a39d17c640")[0] == "running"  # only waiting jobs have a place
        demo_env.backends.usage.charge("margaret", 1000.0)  # she ran a lot meanwhile: fair share puts dennis first
        await wait_for(pilot, lambda: cells("20260314210219-b04c6e1f9a37")[0] == "queued 2nd", what="the new order")
        assert cells("20260314210458-9e1d44ab07c2")[0] == "queued 1st"
