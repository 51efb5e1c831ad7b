"""rai-server's log events as they go on the wire: each entry one event (its id the stream entry's id),
written without re-encoding its JSON, read in replies of about a MiB whatever the entries' size."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import httpx
from httpx_sse import EventSource

from keygen.accounts import create_account
from rai.backends import Backends
from rai.config import Config
from rai.domain.job_ids import new_job_id
from rai.domain.models import JobEnd, JobRecord, JobState, LogEntry, LogKind, utcnow
from rai.domain.signing import EMPTY_SHA256, authorization_headers
from raiserver.logs import BATCH, READ_BYTES, entry_event, entry_kind, next_count


def parsed(chunk: bytes) -> list:
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunk)
    return list(EventSource(response).iter_sse())


def test_an_entry_is_one_event_with_its_json_as_it_is():
    raw = LogEntry(kind=LogKind.stdout, body='two\nlines "quoted" \r and é\n').to_json().encode()
    chunk = entry_event(b"1700000000000-3", entry_kind(raw), raw)
    assert isinstance(chunk, bytes) and chunk.endswith(b"\n\n") and b"\r" not in chunk
    [event] = parsed(chunk)
    assert (event.id, event.event, event.data) == ("1700000000000-3", "stdout", raw.decode())


def test_an_entry_with_line_breaks_is_split_into_data_lines_and_read_back_whole():
    raw = b'{"kind":"stderr","body":"not\nwhat raid writes"}'
    [event] = parsed(entry_event(b"5-0", entry_kind(raw), raw).encode())
    assert (event.id, event.event, event.data) == ("5-0", "stderr", raw.decode())


def test_the_read_count_follows_the_entries_size():
    assert next_count(16, 16 * 64 * 1024) == READ_BYTES // (64 * 1024)  # raid's full entries: 16 a reply
    assert next_count(500, 500 * 100) == BATCH  # short lines: as many as a reply may hold
    assert next_count(1, 8 * READ_BYTES) == 1
    assert next_count(3, 0) == BATCH  # entries without a body


def installation(tmp_path, redis_url):
    cfg = Config.model_validate({
        "pubsub": {"url": redis_url, "start_local": False},
        "broker": {"queue": f"rai_test_{secrets.token_hex(4)}"},
        "store": {"path": str(tmp_path / "store")},
        "database": {"path": str(tmp_path / "rai.db")},
    })
    b = Backends(cfg)
    return cfg, b, create_account(b.accounts, ["student"], f"ada{secrets.token_hex(3)}", "ada@example.edu")


def events(server, account, job_id: str, stop_after: int | None = None) -> list[tuple[str, str, str]]:
    path = f"/v1/jobs/{job_id}/log"
    headers = authorization_headers(account.access_key, account.secret_key, "GET", path, [], EMPTY_SHA256)
    got = []
    with httpx.Client(base_url=server.url, timeout=30) as http, http.stream("GET", path, headers=headers) as r:
        assert r.status_code == 200, r.read()
        for e in EventSource(r).iter_sse():
            got.append((e.event, e.id, e.data))
            if len(got) == stop_after:
                break
    return got


def test_a_waiting_job_s_log_tells_its_place_in_the_queue(tmp_path, redis_url, serve, monkeypatch):
    monkeypatch.setattr("raiserver.logs.QUIET_MS", 100)
    cfg, b, ada = installation(tmp_path, redis_url)
    queue = cfg.broker.queue
    ids = [new_job_id() for _ in range(3)]
    for n, job_id in enumerate(ids):
        b.live.put_job(JobRecord(job_id=job_id, username=ada.username, queue=queue, submitted_at=utcnow()
                                 + timedelta(seconds=n)), ttl=600)
    b.logs.append(ids[2], [LogEntry(kind=LogKind.status, body="queued")])
    got = events(serve(cfg, b), ada, ids[2], stop_after=2)
    assert got[0][:2] == ("status", b.logs.last_id(ids[2]))
    assert got[1][0] == "waiting" and json.loads(got[1][2]) == {"ahead": 2, "on_queue": 3}


def test_a_log_of_small_then_big_entries_arrives_whole_and_in_order(tmp_path, redis_url, serve):
    cfg, b, ada = installation(tmp_path, redis_url)
    job_id = new_job_id()
    small = [LogEntry(kind=LogKind.stdout, body=f"{i}\n") for i in range(3 * BATCH)]
    big = [LogEntry(kind=LogKind.stderr if i % 2 else LogKind.stdout, body=f"{i}:" + "x" * 65000 + "\n")
           for i in range(40)]
    b.logs.append(job_id, [*small, *big, *small[:7]])
    b.logs.append(job_id, [LogEntry(kind=LogKind.end, end=JobEnd(state=JobState.succeeded, exit_code=0))])
    b.live.put_job(JobRecord(job_id=job_id, username=ada.username, state=JobState.succeeded), ttl=600)
    written = [entry_id for entry_id, _ in b.logs.read(job_id, count=10_000)]

    got = events(serve(cfg, b), ada, job_id)
    assert [i for _, i, _ in got] == written  # every entry once, in order, each event's id its entry's
    entries = [LogEntry.model_validate_json(data) for _, _, data in got]
    assert [e.body for e in entries[:-1]] == [e.body for e in [*small, *big, *small[:7]]]
    assert [event for event, _, _ in got][-1] == "end" and entries[-1].end.state == JobState.succeeded
