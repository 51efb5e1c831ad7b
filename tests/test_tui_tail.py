"""A job's live tail in the console, on a real Redis log stream: complete replay, stdout and stderr
told apart, follow on/off with the count of waiting lines, End to resume, a bounded ring."""

from __future__ import annotations

import pytest

from rai.domain.models import JobEnd, JobRecord, JobState, LogEntry, LogKind
from raitui.components.job_tail import JobTailScreen, LineSplitter
from raitui.components.log_view import LineKind, LineRing
from raitui.demo import NOW
from tests.fixtures.tui import wait_for

pytestmark = pytest.mark.anyio
SIZE = (120, 30)
JOB = "20260314210000-0123456789ab"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def out(lines: list[str], kind: LogKind = LogKind.stdout) -> LogEntry:
    return LogEntry(kind=kind, body="".join(f"{line}\n" for line in lines))


def end(state: str = "succeeded", code: int = 0) -> LogEntry:
    return LogEntry(kind=LogKind.end, end=JobEnd(state=JobState(state), exit_code=code, duration=1.5))


def status_text(app) -> str:
    return app.screen.status_plain


async def open_tail(app, pilot, job_id: str = JOB) -> JobTailScreen:
    await wait_for(pilot, lambda: app.snapshot is not None, what="the first snapshot")
    app.open_tail(job_id)
    await wait_for(pilot, lambda: isinstance(app.screen, JobTailScreen) and app.screen.is_mounted, what="the tail")
    return app.screen


# the pieces
def test_ring_keeps_the_newest_lines_and_counts_the_rest():
    ring = LineRing(100)
    for start in range(0, 1000, 7):
        texts = [f"l{i}" for i in range(start, min(start + 7, 1000))]
        ring.extend(texts, bytes(len(texts)))
    kept = ring.texts[ring.visible_start():]
    assert kept == [f"l{i}" for i in range(900, 1000)]
    assert ring.dropped + ring.visible_start() == 900
    assert len(ring.texts) <= 125  # trimmed in quarter-capacity chunks
    big = LineRing(10)
    big.extend([str(i) for i in range(25)], bytes(25))
    assert big.texts == [str(i) for i in range(15, 25)] and big.dropped == 15


def test_splitter_joins_lines_cut_across_entries_and_marks_kinds():
    s = LineSplitter()
    texts, kinds = s.entry(LogEntry(kind=LogKind.stdout, body="one\ntw"))
    assert texts == ["one"]
    texts, kinds = s.entry(LogEntry(kind=LogKind.stderr, body="oops\n"))
    assert texts == ["oops"] and kinds == bytearray([LineKind.stderr])
    texts, kinds = s.entry(LogEntry(kind=LogKind.stdout, body="o\r\nthree\n"))
    assert texts == ["two", "three"] and set(kinds) == {LineKind.stdout}
    texts, kinds = s.entry(LogEntry(kind=LogKind.stdout, body="no newline"))
    assert texts == []
    texts, kinds = s.entry(end("failed", 3))
    assert texts[0] == "no newline"  # an unfinished line shows before the end
    assert texts[1].startswith("■ failed · exit 3") and kinds[1] == LineKind.end_bad


# on a real log stream
async def test_complete_replay_of_5000_lines_with_stderr_apart(tui_env):
    b = tui_env.backends
    expected, entries = [], []
    for chunk in range(50):
        lines = [f"line {chunk * 100 + i:05d} " + "x" * (i % 40) for i in range(100)]
        kind = LogKind.stderr if chunk % 5 == 4 else LogKind.stdout
        entries.append(out(lines, kind))
        expected += [(line, LineKind.stderr if kind == LogKind.stderr else LineKind.stdout) for line in lines]
    b.logs.append(JOB, [LogEntry(kind=LogKind.status, body="running on node-1"), *entries, end()])
    b.live.put_job(JobRecord(job_id=JOB, username="ada", state=JobState.succeeded, submitted_at=NOW))
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        tail = await open_tail(app, pilot)
        view = tail.log_view
        await wait_for(pilot, lambda: view.line_count == 5002, what="every line")
        lines = view.text_lines()
        kinds = view.ring.kinds[view.ring.visible_start():]
        assert lines[0] == "» running on node-1"
        assert list(zip(lines[1:-1], kinds[1:-1], strict=True)) == expected
        assert lines[-1].startswith("■ succeeded · exit 0")
        await wait_for(pilot, lambda: "log complete" in status_text(app), what="the complete mark")
        assert view.follow and view.scroll_y == view.max_scroll_y  # showing the end
        assert "ada" in str(tail.query_one("#tail-summary").render())


async def test_follow_off_counts_waiting_lines_and_end_resumes(tui_env):
    b = tui_env.backends
    b.logs.append(JOB, [out([f"first {i}" for i in range(100)])])
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        tail = await open_tail(app, pilot)
        view = tail.log_view
        await wait_for(pilot, lambda: view.line_count == 100, what="the first lines")
        assert "FOLLOW" in status_text(app)
        await pilot.press("s")
        assert not view.follow
        assert "PAUSED" in status_text(app)
        top = view.scroll_y
        b.logs.append(JOB, [out([f"then {i}" for i in range(150)]), out(["err"], LogKind.stderr)])
        await wait_for(pilot, lambda: view.pending == 151, what="151 waiting lines")
        await wait_for(pilot, lambda: "151 new lines waiting" in status_text(app), what="the count shown")
        assert view.line_count == 100 and view.scroll_y == top  # what the reader reads stays put
        await pilot.press("end")
        assert view.follow and view.pending == 0 and view.line_count == 251
        await pilot.pause(0.05)
        assert view.scroll_y == view.max_scroll_y
        assert view.text_lines()[-1] == "err"
        # Scrolling up stops following; `s` starts it again.
        await pilot.press("pageup")
        assert not view.follow
        await pilot.press("s")
        assert view.follow
        # Lines that come while following show at once.
        b.logs.append(JOB, [out(["last"]), end()])
        await wait_for(pilot, lambda: view.text_lines()[-2:-1] == ["last"], what="the last line")


async def test_ring_bounds_memory_and_says_what_it_dropped(tui_env):
    b = tui_env.backends
    b.logs.append(JOB, [out([f"n{i}" for i in range(i0, i0 + 500)]) for i0 in range(0, 5000, 500)] + [end()])
    app = tui_env.app(tail_capacity=1000)
    async with app.run_test(size=SIZE) as pilot:
        tail = await open_tail(app, pilot)
        view = tail.log_view
        await wait_for(pilot, lambda: view.lines_written == 5001, what="every line read")
        assert view.line_count == 1000
        assert view.text_lines()[0] == "n4001" and view.text_lines()[-2] == "n4999"
        await wait_for(pilot, lambda: "dropped" in status_text(app), what="the dropped note")


async def test_tail_of_a_queued_job_waits_for_its_output(tui_env):
    b = tui_env.backends
    b.live.put_job(JobRecord(job_id=JOB, username="ada", submitted_at=NOW))
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        tail = await open_tail(app, pilot)
        await wait_for(pilot, lambda: "no output yet" in status_text(app), what="the waiting note")
        b.logs.append(JOB, [out(["hello"])])
        await wait_for(pilot, lambda: tail.log_view.text_lines() == ["hello"], what="the first line")


async def test_tail_says_when_redis_goes_away_and_goes_on_when_it_is_back(tmp_path):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tests.fixtures.redis import start_redis
    from tests.fixtures.tui import TuiEnv

    server = start_redis(tmp_path / "redis")
    try:
        env = TuiEnv(tmp_path, server.url)
        # A client that reports a lost connection at once (the project's own rides out ~10 s of blips first).
        env.backends.__dict__["redis"] = redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0))
        env.backends.logs.append(JOB, [out(["before"])])
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            tail = await open_tail(app, pilot)
            await wait_for(pilot, lambda: tail.log_view.text_lines() == ["before"], what="the first line")
            server.stop()
            await wait_for(pilot, lambda: "retrying" in status_text(app), what="the trouble shown")
            assert app.is_running
            server.start()
            env.backends.logs.append(JOB, [out(["after"])])
            await wait_for(pilot, lambda: tail.log_view.text_lines() == ["before", "after"], timeout=15,
                           what="reading again from where it was")
            await wait_for(pilot, lambda: "retrying" not in status_text(app), what="the trouble gone")
    finally:
        server.stop()
