"""rai-server's log events as they go on the wire: each entry one event (its id the stream entry's id),
written without re-encoding its JSON, read in replies of about a MiB whatever the entries' size."""

from __future__ import annotations

import secrets

import httpx
from httpx_sse import EventSource

from keygen.accounts import create_account
from rai.backends import Backends
from rai.config import Config
from rai.models import JobEnd, JobRecord, JobState, LogEntry, LogKind, new_job_id
from rai.signing import EMPTY_SHA256, authorization_headers
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


def test_a_log_of_small_then_big_entries_arrives_whole_and_in_order(tmp_path, redis_url, serve):
    cfg = Config.model_validate({
        "pubsub": {"url": redis_url, "start_local": False},
        "broker": {"queue": f"rai_test_{secrets.token_hex(4)}"},
        "store": {"path": str(tmp_path / "store")},
        "database": {"path": str(tmp_path / "rai.db")},
    })
    b = Backends(cfg)
    ada = create_account(b.accounts, ["student"], f"ada{secrets.token_hex(3)}", "ada@example.edu")
    job_id = new_job_id()
    small = [LogEntry(kind=LogKind.stdout, body=f"{i}\n") for i in range(3 * BATCH)]
    big = [LogEntry(kind=LogKind.stderr if i % 2 else LogKind.stdout, body=f"{i}:" + "x" * 65000 + "\n")
           for i in range(40)]
    b.logs.append(job_id, [*small, *big, *small[:7]])
    b.logs.append(job_id, [LogEntry(kind=LogKind.end, end=JobEnd(state=JobState.succeeded, exit_code=0))])
    b.live.put_job(JobRecord(job_id=job_id, username=ada.username, state=JobState.succeeded), ttl=600)
    written = [entry_id for entry_id, _ in b.logs.read(job_id, count=10_000)]

    server = serve(cfg, b)
    path = f"/v1/jobs/{job_id}/log"
    headers = authorization_headers(ada.access_key, ada.secret_key, "GET", path, [], EMPTY_SHA256)
    with httpx.Client(base_url=server.url, timeout=30) as http, http.stream("GET", path, headers=headers) as r:
        assert r.status_code == 200, r.read()
        got = [(e.event, e.id, e.data) for e in EventSource(r).iter_sse()]
    assert [i for _, i, _ in got] == written  # every entry once, in order, each event's id its entry's
    entries = [LogEntry.model_validate_json(data) for _, _, data in got]
    assert [e.body for e in entries[:-1]] == [e.body for e in [*small, *big, *small[:7]]]
    assert [event for event, _, _ in got][-1] == "end" and entries[-1].end.state == JobState.succeeded
