"""What an operator does from the console, checked in Redis: cancel (asked first, signed by an admin,
honoured by raid's own check) and drain/resume a node."""

from __future__ import annotations

import threading

import pytest

from rai.domain.models import JobRecord, JobState, NodeHeartbeat
from rai.domain.signing import verify
from raitui.components.confirm import ConfirmScreen
from raitui.components.job_tail import JobTailScreen
from raitui.data import OPERATOR
from raitui.demo import NOW
from tests.fixtures.tui import wait_for

pytestmark = pytest.mark.anyio
SIZE = (130, 30)
JOB = "20260314210000-0123456789ab"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def running_job(b, job_id: str = JOB, state: JobState = JobState.running) -> JobRecord:
    record = JobRecord(job_id=job_id, username="ada", team="t1", queue="rai_amd64", state=state, node="n1",
                       submitted_at=NOW, started_at=NOW)
    b.live.put_job(record)
    b.db.save_job(record)
    return record


def shown(app) -> list[str]:
    return [r.key.value for r in app.views["jobs"].table.ordered_rows]


async def test_cancel_asks_then_lands_signed_by_an_admin(tui_env):
    b = tui_env.backends
    running_job(b)
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == [JOB], what="the job")
        await pilot.press("ctrl+d")
        assert isinstance(app.screen, ConfirmScreen)
        assert JOB in app.screen.question and "ada" in app.screen.question
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.pause(0.2)
        assert b.live.cancel_request(JOB) is None  # "no" sends nothing
        await pilot.press("ctrl+d", "y")
        req = await wait_for(pilot, lambda: b.live.cancel_request(JOB), what="the cancel request in Redis")
    account = b.accounts.by_access_key(req.access_key)
    assert account.username == OPERATOR and account.role == "admin"
    assert verify(req, account.secret_key)
    # raid's JobRunner, which checks every cancel request, honours it.
    from raid.job_runner import JobRunner

    runner = JobRunner(b, executor=None, node="n1", stopping=threading.Event())
    assert runner._cancel_reason(JOB) == f"cancelled by {OPERATOR}"


async def test_cancel_from_the_tail_and_not_for_ended_jobs(tui_env):
    b = tui_env.backends
    running_job(b)
    running_job(b, "20260314200000-0123456789ab", JobState.succeeded)
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(shown(app)) == 2, what="the jobs")
        await pilot.press("down", "ctrl+d")  # the ended one: nothing to ask
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("up", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobTailScreen), what="the tail")
        await wait_for(pilot, lambda: app.screen.record is not None, what="the job's record")
        await pilot.press("ctrl+d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: b.live.cancel_request(JOB), what="the cancel request")
        assert isinstance(app.screen, JobTailScreen)
    # The operator account is made once and reused.
    first = b.accounts.get(OPERATOR)
    app.data.cancel(JOB)
    assert b.accounts.get(OPERATOR).access_key == first.access_key


async def test_drain_and_resume_a_node(tui_env):
    b = tui_env.backends
    for name in ("n1", "n2"):
        b.live.beat(NodeHeartbeat(node=name, host=name, arch="amd64", version="0.1.0", queue="rai_amd64",
                                  capacity=2), ttl=600)
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.views["nodes"].query_one("LiveTable")
        await wait_for(pilot, lambda: table.row_count == 2, what="the nodes")
        await pilot.press("down", "d")
        await wait_for(pilot, lambda: b.live.is_draining("n2"), what="n2 draining in Redis")
        assert not b.live.is_draining("n1")
        await wait_for(pilot, lambda: "draining" in str(table.get_cell("n2", "state")), what="the state shown")
        await pilot.press("d")
        await wait_for(pilot, lambda: not b.live.is_draining("n2"), what="n2 resumed")
        await wait_for(pilot, lambda: "active" in str(table.get_cell("n2", "state")), what="active again")
