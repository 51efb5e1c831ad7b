"""RedisLogStream and LogWriter on a real redis-server: replay, live follow, batching, UTF-8, blips."""

from __future__ import annotations

import random
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rai.backends.log_writer import LogWriter
from rai.backends.redis_logs import RedisLogStream
from rai.domain.models import JobEnd, JobState, LogEntry, LogKind
from rai.errors import ServiceUnavailable
from tests.fixtures.redis import start_redis, wait_until

JOB = "20260101000000-abcdef012345"


@pytest.fixture
def logs(redis_client):
    return RedisLogStream(redis_client)


def out(body: str) -> LogEntry:
    return LogEntry(kind=LogKind.stdout, body=body)


def end_entry(state: JobState = JobState.succeeded) -> LogEntry:
    return LogEntry(kind=LogKind.end, end=JobEnd(state=state, exit_code=0, duration=1.5))


def merged(pieces) -> list[tuple[str, str]]:
    """(kind, text) with consecutive pieces of one kind joined: what a reader of the log sees."""
    result: list[tuple[str, str]] = []
    for kind, text in pieces:
        if result and result[-1][0] == kind:
            result[-1] = (kind, result[-1][1] + text)
        else:
            result.append((kind, text))
    return result


def output_of(entries) -> list[tuple[str, str]]:
    return merged((e.kind.value, e.body) for e in entries if e.kind in (LogKind.stdout, LogKind.stderr))


def test_replay_from_the_start_after_the_end(logs):
    last = logs.append(JOB, [out("one\n"), LogEntry(kind=LogKind.status, body="running"), out("two\n")])
    end_id = logs.append(JOB, [end_entry()])
    assert end_id > last
    entries = list(logs.follow(JOB, idle=5))
    assert [e.kind for e in entries] == [LogKind.stdout, LogKind.status, LogKind.stdout, LogKind.end]
    assert [e.body for e in entries[:3]] == ["one\n", "running", "two\n"]
    assert entries[-1].end.state == JobState.succeeded and entries[-1].end.duration == 1.5
    assert logs.length(JOB) == 4

    rows = logs.read(JOB, count=2)
    assert [e.body for _, e in rows] == ["one\n", "running"]
    rest = logs.read(JOB, after=rows[-1][0])
    assert [e.kind for _, e in rest] == [LogKind.stdout, LogKind.end]
    assert logs.read(JOB, after=rest[-1][0]) == []
    assert logs.read("no-such-job") == []


def test_follow_returns_silently_after_idle(logs):
    logs.append(JOB, [out("only\n")])
    started = time.monotonic()
    assert [e.body for e in logs.follow(JOB, idle=0.3)] == ["only\n"]
    assert 0.25 <= time.monotonic() - started < 3


def test_follow_from_dollar_sees_only_new_entries(logs):
    logs.append(JOB, [out("old\n")])
    got = []
    t = threading.Thread(target=lambda: got.extend(logs.follow(JOB, after="$", idle=5)))
    t.start()
    wait_until(lambda: any(c.get("cmd") == "xread" for c in logs.r.client_list()), what="the follower to block")
    logs.append(JOB, [out("new\n"), end_entry()])
    t.join(5)
    assert [e.body for e in got[:-1]] == ["new\n"] and got[-1].kind == LogKind.end


def test_follow_live_while_a_writer_writes(logs):
    lines = [f"line {i}\n".encode() for i in range(200)]

    def write():
        w = LogWriter(logs, JOB, max_delay=0.01)
        w.status("started")
        for i, line in enumerate(lines):
            w.output("stdout", line)
            if i % 50 == 0:
                time.sleep(0.05)  # output in bursts, as programs do
        w.end(JobEnd(state=JobState.succeeded, exit_code=0))
        w.close()

    t = threading.Thread(target=write)
    t.start()  # the follower may start before or after the first entry: both must work
    entries = list(logs.follow(JOB, idle=10))
    t.join(10)
    assert entries[0].kind == LogKind.status and entries[0].body == "started"
    assert entries[-1].kind == LogKind.end
    assert output_of(entries) == [("stdout", b"".join(lines).decode())]
    assert 1 < len(entries) - 2 < len(lines)  # live: several entries, but batched


def test_20000_lines_arrive_complete_in_order_with_stdout_and_stderr_apart(logs):
    rng = random.Random(7)
    pieces: list[tuple[str, bytes]] = []
    kind = "stdout"
    for i in range(20_000):
        if rng.random() < 0.01:  # runs of about 100 lines of one kind
            kind = "stderr" if kind == "stdout" else "stdout"
        pieces.append((kind, f"{kind} line {i} {'x' * rng.randrange(0, 80)}\n".encode()))
    # the writer gets chunks that cut lines anywhere, as a pipe delivers them
    chunks: list[tuple[str, bytes]] = []
    for kind, group in merged((k, d.decode()) for k, d in pieces):
        data = group.encode()
        pos = 0
        while pos < len(data):
            n = rng.randrange(1, 9000)
            chunks.append((kind, data[pos:pos + n]))
            pos += n
    w = LogWriter(logs, JOB, max_bytes=4096)
    for kind, data in chunks:
        w.output(kind, data)
    w.end(JobEnd(state=JobState.failed, exit_code=1))
    w.close()

    entries = [e for _, e in logs.read(JOB, count=100_000)]
    assert entries[-1].kind == LogKind.end and entries[-1].end.exit_code == 1
    assert output_of(entries) == merged((k, d.decode()) for k, d in pieces)
    bodies = [e for e in entries if e.kind != LogKind.end]
    assert all(len(e.body.encode()) <= 4096 for e in bodies)
    # an entry is cut at a newline when there is one near the limit
    full = [e for e in bodies if len(e.body.encode()) > 4096 * 3 // 4]
    assert full and sum(e.body.endswith("\n") for e in full) >= len(full) * 0.9


def test_batching_really_batches(logs):
    w = LogWriter(logs, JOB)  # 64 KiB entries, 50 ms delay
    for i in range(20_000):
        w.output("stdout", f"{i}\n".encode())
    w.close()
    entries = [e for _, e in logs.read(JOB, count=100_000)]
    assert "".join(e.body for e in entries) == "".join(f"{i}\n" for i in range(20_000))
    assert len(entries) <= 20  # 109 KB of output: a few entries, not 20 000


def test_output_is_written_within_max_delay_without_a_flush(logs):
    w = LogWriter(logs, JOB, max_delay=0.05)
    try:
        started = time.monotonic()
        w.output("stdout", b"prompt> ")
        wait_until(lambda: logs.length(JOB) == 1, timeout=5, what="the delayed flush")
        assert time.monotonic() - started < 2
        assert logs.read(JOB)[0][1].body == "prompt> "
    finally:
        w.close()


def test_status_and_end_keep_their_place_among_the_output(logs):
    w = LogWriter(logs, JOB, max_delay=10)  # only status/end/kind changes cut entries here
    w.output("stdout", b"a\n")
    w.output("stdout", b"b\n")
    w.status("half way")
    w.output("stderr", b"oops\n")
    w.output("stdout", b"c\n")
    w.end(JobEnd(state=JobState.succeeded, exit_code=0))
    assert logs.read(JOB)[-1][1].kind == LogKind.end  # end() waits until it is written
    w.close()
    got = [(e.kind.value, e.body) for _, e in logs.read(JOB)]
    assert got[:-1] == [("stdout", "a\nb\n"), ("status", "half way"), ("stderr", "oops\n"), ("stdout", "c\n")]


def test_a_utf8_character_split_across_writes_stays_whole(logs):
    text = "naïve café – 日本語 😀 done\n"
    data = text.encode()
    w = LogWriter(logs, JOB, max_delay=0)
    for i in range(len(data)):  # one byte at a time, flushing after each
        w.output("stdout", data[i:i + 1])
        w.flush()
        if i == 2:  # stderr in the middle of stdout's "ï" (its first byte is written, not its second)
            w.output("stderr", "é\n".encode())
            w.flush()
    w.close()
    entries = [e for _, e in logs.read(JOB, count=10_000)]
    assert all("\ufffd" not in e.body for e in entries)
    assert output_of(entries) == [("stdout", "na"), ("stderr", "é\n"), ("stdout", text[2:])]


def test_max_bytes_never_splits_a_character(logs):
    data = ("€" * 10_000).encode()  # 3 bytes each, no newline: cuts must fall between characters
    w = LogWriter(logs, JOB, max_bytes=1000)
    w.output("stdout", data)
    w.close()
    bodies = [e.body for _, e in logs.read(JOB, count=10_000)]
    assert all("\ufffd" not in b and 0 < len(b.encode()) <= 1000 for b in bodies)
    assert "".join(bodies) == "€" * 10_000


def test_invalid_utf8_becomes_replacement_characters(logs):
    w = LogWriter(logs, JOB)
    w.output("stdout", b"ok \xff\xfe bad\n")
    w.output("stdout", b"cut \xe2\x82")  # an incomplete character at the very end
    w.close()
    body = "".join(e.body for _, e in logs.read(JOB))
    assert body == "ok \ufffd\ufffd bad\ncut \ufffd"


def test_trimming_keeps_the_stream_bounded(redis_client):
    logs = RedisLogStream(redis_client, max_entries=100)
    for i in range(20):
        logs.append(JOB, [out(f"{i}.{j}\n") for j in range(50)])
    n = logs.length(JOB)
    assert 100 <= n < 300  # approximate trimming (whole stream nodes), far from the 1000 written
    last = logs.read(JOB, after="0", count=10_000)[-1][1]
    assert last.body == "19.49\n"  # the newest are kept


def test_expire_sets_a_ttl(logs, redis_client):
    logs.append(JOB, [out("x\n"), end_entry()])
    assert redis_client.ttl(logs.key(JOB)) == -1
    logs.expire(JOB, 3600)
    assert 3590 <= redis_client.ttl(logs.key(JOB)) <= 3600
    assert 0 < redis_client.ttl(logs.seq_key(JOB)) <= 3600
    logs.expire(JOB, 0.2)
    wait_until(lambda: not redis_client.exists(logs.key(JOB)), timeout=5, what="the stream to expire")


def test_a_retried_append_is_not_written_twice(logs):
    # What a retry after a lost reply sends: the same batch number from the same writer.
    keys = [logs.key(JOB), logs.seq_key(JOB)]
    args = ["writer-1", 7, 1000, out("once\n").to_json()]
    first = logs._append(keys=keys, args=args)
    again = logs._append(keys=keys, args=args)
    assert first == again and logs.length(JOB) == 1
    logs._append(keys=keys, args=["writer-1", 8, 1000, out("next\n").to_json()])
    assert logs.length(JOB) == 2


@pytest.mark.parametrize("client_retries", [True, False], ids=["redis-py-retries", "no-client-retries"])
def test_follow_survives_a_client_kill(redis_url, redis_client, client_retries):
    retry = {} if client_retries else {"retry": Retry(NoBackoff(), 0)}
    follower_client = redis.Redis.from_url(redis_url, client_name="rai-follower", **retry)
    writer = RedisLogStream(redis_client)
    follower = RedisLogStream(follower_client)
    got: list[LogEntry] = []
    t = threading.Thread(target=lambda: got.extend(follower.follow(JOB, idle=20)), daemon=True)
    t.start()
    writer.append(JOB, [out(f"{i}\n") for i in range(10)])
    wait_until(lambda: len(got) == 10, what="the first ten entries")
    blocked = wait_until(
        lambda: [c for c in redis_client.client_list() if c.get("name") == "rai-follower" and c.get("cmd") == "xread"],
        what="the follower blocked in XREAD",
    )
    for c in blocked:
        redis_client.client_kill_filter(_id=c["id"])
    writer.append(JOB, [out(f"{i}\n") for i in range(10, 20)])
    writer.append(JOB, [end_entry()])
    t.join(20)
    assert not t.is_alive()
    assert [e.body for e in got[:-1]] == [f"{i}\n" for i in range(20)]  # nothing twice, nothing skipped
    assert got[-1].kind == LogKind.end
    follower_client.close()


def test_writer_rides_out_a_redis_restart(tmp_path):
    server = start_redis(tmp_path / "redis", appendonly=True)
    # no client-side retries, so the writer's own retrying is what gets the output through
    client = redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5)
    try:
        logs = RedisLogStream(client, retry_for=0.1)
        w = LogWriter(logs, JOB, max_bytes=1024, max_delay=0.01, retry_for=30)
        lines = [f"line {i}\n".encode() for i in range(3000)]
        for line in lines[:1000]:
            w.output("stdout", line)
        w.flush()
        server.stop()  # Redis goes away while the job keeps printing
        for line in lines[1000:2000]:
            w.output("stdout", line)
        wait_until(lambda: w.failed_writes >= 2, what="the writer to fail and retry")
        server.start()
        for line in lines[2000:]:
            w.output("stdout", line)
        w.end(JobEnd(state=JobState.succeeded, exit_code=0))
        w.close()
        assert w.lost_bytes == 0 and w.error is not None
        entries = [e for _, e in logs.read(JOB, count=100_000)]
        assert output_of(entries) == [("stdout", b"".join(lines).decode())]
        assert entries[-1].kind == LogKind.end
    finally:
        client.close()
        server.stop()


def test_writer_reports_output_it_could_not_write(tmp_path):
    server = start_redis(tmp_path / "redis")
    client = redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5)
    logs = RedisLogStream(client, retry_for=0.1)
    w = LogWriter(logs, JOB, max_bytes=1024, retry_for=0.3, max_pending=8192)
    try:
        server.stop()
        w.output("stdout", b"lost\n")
        with pytest.raises(ServiceUnavailable):
            w.flush()
        assert w.lost_bytes == 5
        # while it is down, output neither blocks the job nor piles up in memory
        started = time.monotonic()
        for i in range(2000):
            w.output("stdout", f"also lost {i}\n".encode())
        assert time.monotonic() - started < 5
        assert w._ready_bytes <= 8192 + 1024
        assert w.lost_bytes > 10_000
        server.start()  # back (empty: it had no persistence)
        w.output("stdout", b"kept\n")
        w.end(JobEnd(state=JobState.succeeded, exit_code=0))
        entries = [e for _, e in logs.read(JOB, count=10_000)]
        notes = [e.body for e in entries if e.kind == LogKind.status]
        assert notes and "bytes of output were lost" in notes[0]
        assert entries[-1].kind == LogKind.end
        assert "kept\n" in "".join(e.body for e in entries)
    finally:
        w.close()
        client.close()
        server.stop()


def test_end_raises_when_its_entry_cannot_be_written(tmp_path):
    server = start_redis(tmp_path / "redis")
    client = redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5)
    w = LogWriter(RedisLogStream(client, retry_for=0.1), JOB, retry_for=0.3)
    try:
        server.stop()
        with pytest.raises(ServiceUnavailable):
            w.end(JobEnd(state=JobState.error))
    finally:
        w.close()
        client.close()
        server.stop()


def test_append_retries_until_redis_is_back_and_gives_up_after_retry_for(tmp_path):
    server = start_redis(tmp_path / "redis", appendonly=True)
    client = redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5)
    try:
        logs = RedisLogStream(client, retry_for=30)
        server.stop()
        done: list[str] = []
        t = threading.Thread(target=lambda: done.append(logs.append(JOB, [LogEntry(kind=LogKind.stdout, body="a\n")])))
        t.start()
        time.sleep(0.3)  # the append is retrying against a stopped Redis (it cannot finish before the restart)
        assert not done
        server.start()
        t.join(30)
        assert done and [e.body for _, e in logs.read(JOB)] == ["a\n"]  # written once
        server.stop()
        bounded = RedisLogStream(client, retry_for=0.5)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="cannot write the log"):
            bounded.append(JOB, [LogEntry(kind=LogKind.stdout, body="b\n")])
        assert time.monotonic() - started < 0.5 + 2 * 1.5  # retry_for, plus one last wait and connect timeout
    finally:
        client.close()
        server.stop()
