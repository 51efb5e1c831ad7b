"""The Users view (`:users`) on the demo evening (real Redis and SQLite): decayed usage from the job
records, running and waiting now, order and filter; and its picture."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rai.domain.fairshare import DEFAULT_HALF_LIFE as HALF_LIFE
from rai.domain.models import JobRecord, JobState
from raitui.demo import NOW
from raitui.user_usage import ran_hours, user_usage
from raitui.views.users import UsersView
from tests.fixtures.tui import SNAPSHOT_SIZE, core_views, settle, wait_for

SIZE = SNAPSHOT_SIZE


@pytest.fixture
def anyio_backend():
    return "asyncio"


def console(demo_app):
    return demo_app(views=[*core_views(), UsersView])


async def open_users(pilot, app) -> UsersView:
    await settle(pilot, app)
    await pilot.press("colon")
    app.screen.query_one("Input").value = "users"
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.current_view == "users", what="the users view")
    view = app.views["users"]
    await wait_for(pilot, lambda: view.table.row_count > 0, what="the users")
    return view


def rows(view) -> list[str]:
    return [r.key.value for r in view.table.ordered_rows]


def test_usage_halves_every_hour_and_counts_only_the_last_day():
    hour = timedelta(hours=1)

    def ran(start, end, half_life=HALF_LIFE):
        record = JobRecord(job_id="j", username="ada", state=JobState.succeeded, started_at=start, finished_at=end)
        return ran_hours(record, NOW, half_life)

    assert ran(NOW - hour, NOW, half_life=float("inf")) == pytest.approx(1.0)
    recent = ran(NOW - hour, NOW)
    an_hour_ago = ran(NOW - 2 * hour, NOW - hour)
    assert an_hour_ago == pytest.approx(recent / 2)
    assert recent == pytest.approx(HALF_LIFE / 3600 / 0.6931471805599453 * 0.5)
    assert ran(NOW - timedelta(days=3), NOW - timedelta(days=2)) == 0.0


def test_a_gpu_job_counts_its_gpus_in_the_fair_share_usage():
    def job(i, gpus):
        return JobRecord(job_id=f"j{i}", username=f"u{i}", state=JobState.succeeded, gpus=gpus,
                         started_at=NOW - timedelta(hours=1), finished_at=NOW)
    out = {u.username: u for u in user_usage([job(0, 0), job(1, 1), job(2, 4)], NOW)}
    assert out["u0"].usage == pytest.approx(out["u1"].usage)
    assert out["u2"].usage == pytest.approx(4 * out["u1"].usage)
    assert out["u2"].hours == pytest.approx(1.0)  # plain job-hours stay plain


def test_user_usage_counts_running_waiting_and_what_ran():
    def job(i, user, state, started_h=None, ran_h=None):
        started = NOW - timedelta(hours=started_h) if started_h is not None else None
        finished = started + timedelta(hours=ran_h) if ran_h is not None else None
        return JobRecord(job_id=f"j{i}", username=user, state=state, submitted_at=NOW - timedelta(hours=5),
                         started_at=started, finished_at=finished)
    out = {u.username: u for u in user_usage([
        job(1, "ada", JobState.succeeded, 3, 1), job(2, "ada", JobState.running, 1),
        job(3, "bob", JobState.queued), job(4, "bob", JobState.queued), job(5, "cy", JobState.failed, 4, 2)], NOW)}
    assert (out["ada"].running, out["ada"].waiting, out["bob"].waiting) == (1, 0, 2)
    assert out["ada"].hours == pytest.approx(2.0) and out["cy"].hours == pytest.approx(2.0)
    assert out["ada"].usage > out["cy"].usage > out["bob"].usage == 0  # ada ran most recently


@pytest.mark.anyio
async def test_users_view_orders_and_filters(demo_app):
    app = console(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_users(pilot, app)
        users = {u.username: u for u in view.users}
        assert set(rows(view)) == {"ada", "grace", "linus", "barbara", "alan", "margaret", "ken", "dennis"}
        assert users["ada"].running == 1 and users["dennis"].waiting == 1
        by_usage = rows(view)
        assert [users[n].usage for n in by_usage] == sorted((u.usage for u in view.users), reverse=True)
        await pilot.press("o")  # by waiting
        assert users[rows(view)[0]].waiting == 1
        for _ in range(3):
            await pilot.press("o")  # ... running, jobs, user
        assert rows(view) == sorted(rows(view))
        await pilot.press("slash")
        await pilot.press(*"t02")
        assert sorted(rows(view)) == ["grace", "ken"]
        await pilot.press("escape")
        assert len(rows(view)) == 8


def test_users_snapshot(demo_app, snap_compare):
    app = console(demo_app)

    async def run_before(pilot) -> None:
        await open_users(pilot, app)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.anyio
async def test_quota_left_follows_the_quota_config_and_the_submissions(demo_app, demo_env):
    from rai.config import UserQuota
    from rai.live.quotas import QuotaBook

    config = demo_env.config  # the demo counted each of its jobs as a submission of this hour
    config.roles["student"].jobs_per_hour, config.roles["student"].gpu_hours_per_day = 5, None
    config.scheduler.quotas["ken"] = UserQuota(jobs_per_hour=1, gpu_hours_per_day=2.0)  # his own, over the role's
    app = console(demo_app)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_users(pilot, app)
        users = {u.username: u for u in view.users}
        assert users["ada"].quota_left == "3 jobs" and not users["ada"].over_quota  # 2 of 5 submitted
        assert users["ken"].quota_left == "0 jobs · 2.0 GPU-h" and users["ken"].over_quota
        assert str(view.table.get_row("ken")[-1]) == "0 jobs · 2.0 GPU-h"
        QuotaBook(demo_env.backends.redis).count_submission("ada", "a3")
        await wait_for(pilot, lambda: str(view.table.get_row("ada")[-1]) == "2 jobs", what="ada's next submission")
