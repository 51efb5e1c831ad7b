"""The console tells the truth within a second or two (real Redis and SQLite): the header's running count
follows the queue, not a heartbeat seconds old; the Queue view's last hour shows jobs that waited and ran
between two of raid's samples; a new job on top of Jobs leaves the cursor (and enter) on the same job."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from textual.widgets import Sparkline

from rai.domain.models import JobRecord, JobState, NodeHeartbeat, utcnow
from raitui.demo import NOW
from raitui.views.queue import depth_buckets
from tests.fixtures.tui import settle, wait_for
from tests.test_tui_views import SIZE, shown_ids

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def header(app) -> str:
    return str(app.header.render())


async def test_header_stops_counting_a_job_as_running_once_it_ended(tui_env):
    b, queue = tui_env.backends, tui_env.queue
    b.queue.enqueue(queue, json.dumps({"job_id": "j1"}))
    claimed = b.queue.claim(queue, "n1-0", block=1)
    record = JobRecord(job_id="j1", username="ada", queue=queue, state=JobState.running, node="n1",
                       submitted_at=utcnow(), started_at=utcnow())
    b.live.put_job(record, ttl=600)
    # the node's last heartbeat still lists the job, and stays for its whole TTL
    b.live.beat(NodeHeartbeat(node="n1", host="h", arch="amd64", version="0", queue=queue, capacity=1,
                              running=[claimed.message_id]), ttl=600)
    app = tui_env.app(poll_interval=1.0)  # the console's own pace
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await wait_for(pilot, lambda: "1 running" in header(app), what="1 running")
        record.state, record.finished_at, record.duration = JobState.succeeded, utcnow(), 1.0
        b.live.put_job(record, ttl=600)
        b.queue.ack(claimed)  # what raid does as the job ends
        await wait_for(pilot, lambda: "0 running" in header(app), timeout=2.5, what="0 running within 2.5 s")
        assert b.live.nodes()[0].heartbeat.running  # the heartbeat had not caught up


def test_last_hour_counts_jobs_from_their_records_between_samples():
    now = NOW.timestamp()
    flat = depth_buckets([], now)
    assert max(flat) == 0
    # two jobs that waited and ran 10 minutes ago, 20 s each, overlapping; no sample of raid's saw them
    spans = [(now - 600, now - 580), (now - 590, now - 570)]
    values = depth_buckets([], now, spans=spans)
    assert max(values) == 2 and sum(1 for v in values if v) <= 2
    assert values[-1] == 0  # nothing on the queue now
    # raid's samples still count where they say more
    assert max(depth_buckets([(now - 60, 5)], now, spans=spans)) == 5


async def test_queue_view_last_hour_shows_jobs_that_ran(tui_env):
    b, queue = tui_env.backends, tui_env.queue
    now = utcnow()
    b.live.beat(NodeHeartbeat(node="n1", host="h", arch="amd64", version="0", queue=queue, capacity=1), ttl=600)
    for i in range(3):
        r = JobRecord(job_id=f"20990101000000-00000000000{i}", username="ada", queue=queue,
                      state=JobState.succeeded, submitted_at=now - timedelta(seconds=300 + i),
                      started_at=now - timedelta(seconds=299 + i), finished_at=now - timedelta(seconds=290),
                      duration=9.0)
        b.db.save_job(r)
    app = tui_env.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("2")
        spark = app.views["queue"].query_one(Sparkline)
        await wait_for(pilot, lambda: spark.data and max(spark.data) == 3, what="the three jobs in the last hour")


async def test_a_new_job_on_top_leaves_cursor_and_enter_on_the_same_job(demo_env):
    app = demo_env.app(clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        table = app.views["jobs"].table
        top = shown_ids(app)[0]
        assert table.selected_key() == top  # the cursor starts on the newest job
        for i in range(2):  # one, then another, each in its own snapshot
            new = JobRecord(job_id=f"20260314210511-aaaaaaaaaaa{i}", username="ada", team="t01",
                            queue="rai_amd64", submitted_at=NOW + timedelta(seconds=i))
            demo_env.backends.live.put_job(new)
            await wait_for(pilot, lambda n=new: shown_ids(app)[0] == n.job_id, what="the new job on top")
        assert table.selected_key() == top
        await pilot.press("enter")
        assert app.screen.job_id == top
