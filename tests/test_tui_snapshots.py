"""What each view shows, as SVG snapshots (pytest-textual-snapshot), on the demo evening: real Redis and
SQLite seeded at fixed times. Update after a deliberate change with `pytest --snapshot-update`."""

from __future__ import annotations

from pathlib import Path

from raitui.components.job_tail import JobTailScreen
from raitui.demo import NOW, TAIL_JOB, write_raid_log
from tests.fixtures.tui import SNAPSHOT_SIZE, TuiEnv, core_views, wait_for


async def shown(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.snapshot is not None, what="the first snapshot")
    await pilot.pause(0.2)


def press_then(*keys: str, until=None):
    async def run_before(pilot) -> None:
        await shown(pilot)
        if keys:
            await pilot.press(*keys)
        if until is not None:
            await wait_for(pilot, lambda: until(pilot.app), what="the picture's content")
        await pilot.pause(0.3)

    return run_before


def test_jobs_view(snap_compare, demo_app):
    assert snap_compare(demo_app(), terminal_size=SNAPSHOT_SIZE, run_before=press_then())


def test_jobs_view_filtered(snap_compare, demo_app):
    app = demo_app()
    assert snap_compare(app, terminal_size=SNAPSHOT_SIZE,
                        run_before=press_then("slash", *"state:fail", "enter", until=lambda a: a.views["jobs"].table
                                              .row_count == 1))


def test_queue_view(snap_compare, demo_app):
    assert snap_compare(demo_app(), terminal_size=SNAPSHOT_SIZE, run_before=press_then("2"))


def test_nodes_view(snap_compare, demo_app):
    assert snap_compare(demo_app(), terminal_size=SNAPSHOT_SIZE, run_before=press_then("3"))


def test_daemon_view(snap_compare, demo_app):
    app = demo_app()
    assert snap_compare(app, terminal_size=SNAPSHOT_SIZE,
                        run_before=press_then("4", until=lambda a: len(a.views["daemon"].query_one("#daemon-log")
                                                                       .lines) >= 8))


def test_job_tail(snap_compare, demo_app):
    app = demo_app()

    def tail_done(a) -> bool:
        return isinstance(a.screen, JobTailScreen) and a.screen.log_view.line_count >= 40

    assert snap_compare(app, terminal_size=SNAPSHOT_SIZE,
                        run_before=press_then("down", "down", "down", "enter", until=tail_done))


def test_job_tail_paused_with_waiting_lines(snap_compare, demo_app, demo_env):
    app = demo_app()

    async def run_before(pilot) -> None:
        await shown(pilot)
        await pilot.press("down", "down", "down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobTailScreen) and app.screen.log_view.line_count >= 40,
                       what="the log")
        await pilot.press("s")
        from rai.domain.models import LogEntry, LogKind

        demo_env.backends.logs.append(TAIL_JOB, [LogEntry(kind=LogKind.stdout, body="more\n" * 1234, at=NOW)])
        await wait_for(pilot, lambda: app.screen.log_view.pending == 1234, what="the waiting lines")
        # The arrival rate shows while lines come; the picture is taken once it has settled.
        await wait_for(pilot, lambda: "lines/s" not in app.screen.status_plain, what="a quiet log")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SNAPSHOT_SIZE, run_before=run_before)


def test_cancel_confirmation(snap_compare, demo_app):
    assert snap_compare(demo_app(), terminal_size=SNAPSHOT_SIZE,
                        run_before=press_then("down", "down", "down", "ctrl+d"))


def test_help(snap_compare, demo_app):
    assert snap_compare(demo_app(), terminal_size=SNAPSHOT_SIZE, run_before=press_then("question_mark"))


def test_redis_unreachable(snap_compare, tmp_path, utc_display, redis_client, redis_url):
    env = TuiEnv(tmp_path, "redis://127.0.0.1:1/0", pinned=True)  # nothing listens on port 1
    log = Path("/tmp/rai-demo/raid.log")
    write_raid_log(log)
    app = env.app(clock=lambda: NOW, log_path=log, views=core_views())
    assert snap_compare(app, terminal_size=SNAPSHOT_SIZE,
                        run_before=press_then(until=lambda a: a.banner.display))
