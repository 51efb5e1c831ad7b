"""A job's log capped at `max_log_bytes` (pubsub.max_log_bytes): head and tail kept, the middle left out
and said so, on a real redis-server; and once end to end through raid and `rai submit`."""

from __future__ import annotations

import random
import re
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rai.backends.log_writer import ENTRY_MAX_BYTES, HELD_ALIGN, LogWriter
from rai.backends.redis_logs import RedisLogStream
from rai.domain.models import JobEnd, JobState, LogKind
from rai.errors import ServiceUnavailable
from tests.fixtures.redis import start_redis

JOB = "20260101000000-0123456789ab"
MIB = 1024 * 1024


@pytest.fixture
def logs(redis_client):
    return RedisLogStream(redis_client)


def done() -> JobEnd:
    return JobEnd(state=JobState.succeeded, exit_code=0, duration=1.0)


def numbered_lines(total: int, rng: random.Random, text: str = "x") -> bytes:
    out, size, i = [], 0, 0
    while size < total:
        line = f"line {i:08d} {text * rng.randrange(0, 120)}\n".encode()
        out.append(line)
        size += len(line)
        i += 1
    return b"".join(out)


def feed(w: LogWriter, kind: str, data: bytes, rng: random.Random, biggest: int = 9000) -> int:
    """`data` in pieces cut anywhere, as a pipe delivers them; the most bytes held back meanwhile."""
    most = pos = 0
    while pos < len(data):
        n = rng.randrange(1, biggest)
        w.output(kind, data[pos:pos + n])
        pos += n
        most = max(most, w.held_bytes)
    return most


def entries_of(logs) -> list:
    return [e for _, e in logs.read(JOB, count=1_000_000)]


def output_text(entries) -> str:
    return "".join(e.body for e in entries if e.kind in (LogKind.stdout, LogKind.stderr))


def split_at_notes(entries):
    """(head entries, status entries in the middle, tail entries, end entry) of a capped log."""
    assert entries[-1].kind == LogKind.end, "the end entry is last"
    kinds = [e.kind for e in entries]
    first_note = kinds.index(LogKind.status)
    last_note = len(kinds) - 1 - kinds[::-1].index(LogKind.status)
    return entries[:first_note], entries[first_note:last_note + 1], entries[last_note + 1:-1], entries[-1]


def test_a_10mib_flood_keeps_1mib_head_and_tail_and_says_what_was_left_out(logs, redis_client):
    rng = random.Random(1)
    data = numbered_lines(10 * MIB, rng)
    text = data.decode()
    w = LogWriter(logs, JOB, max_log_bytes=MIB)
    most_held = feed(w, "stdout", data, rng)
    assert most_held <= MIB // 2  # memory stays bounded during the flood
    w.end(done())
    w.close()
    entries = entries_of(logs)
    assert len(entries) == logs.length(JOB)

    head, notes, tail, end = split_at_notes(entries)
    assert end.end.state == JobState.succeeded
    assert all(e.kind == LogKind.stdout for e in head + tail)
    assert all(e.kind == LogKind.status for e in notes) and len(notes) == 2
    head_text, tail_text = output_text(head), output_text(tail)
    kept = len(head_text) + len(tail_text)
    assert kept == len(output_text(entries)) <= MIB  # the stream's body bytes: at most the cap
    assert all(len(e.body.encode()) <= ENTRY_MAX_BYTES for e in head + tail)

    # the head: the first lines, whole and in order, ending at a line's end
    assert text.startswith(head_text) and head_text.endswith("\n")
    assert MIB // 2 - 200 <= len(head_text) <= MIB // 2
    assert head_text.startswith("line 00000000 ")
    # the tail: the last lines, whole and in order, starting at a line's start
    assert text.endswith(tail_text) and text[-len(tail_text) - 1] == "\n"
    assert MIB // 2 - HELD_ALIGN <= len(tail_text) <= MIB // 2
    assert tail_text.splitlines()[-1] == text.splitlines()[-1]

    # the notes: where the head ends, and (at the end) exactly how much was left out
    left = len(data) - kept
    lines = text[len(head_text):len(text) - len(tail_text)].count("\n")
    assert w.left_out_bytes == left and w.left_out_lines == lines and w.output_bytes == len(data)
    assert "passed 512.0KiB" in notes[0].body and "1.0MiB" in notes[0].body and "job keeps running" in notes[0].body
    assert f"({left} bytes, about {lines} lines) left out here" in notes[1].body
    assert "9." in notes[1].body and "MiB of output" in notes[1].body

    # Redis holds about the cap, not the flood
    usage = redis_client.memory_usage(logs.key(JOB), samples=0)
    assert usage <= 2 * MIB, usage

    # close() after end() writes nothing more
    w.close()
    assert logs.length(JOB) == len(entries)


def test_stdout_and_stderr_keep_their_order_and_apart_in_head_and_tail(logs):
    rng = random.Random(2)
    pieces: list[tuple[str, bytes]] = []  # runs of lines of one kind, cut anywhere
    kind, size = "stdout", 0
    for i in range(60_000):
        if rng.random() < 0.02:
            kind = "stderr" if kind == "stdout" else "stdout"
        line = f"{kind} {i} {'y' * rng.randrange(0, 60)}\n".encode()
        pieces.append((kind, line))
        size += len(line)
    w = LogWriter(logs, JOB, max_log_bytes=256 * 1024, max_bytes=4096)
    for kind, line in pieces:
        w.output(kind, line)
        assert w.held_bytes <= 128 * 1024
    w.end(done())
    head, notes, tail, _ = split_at_notes(entries_of(logs))

    def kinded(entries):
        return [(e.kind.value, e.body) for e in entries]

    def expected(start: int, stop: int):  # what the job wrote from byte `start` to `stop`, merged by kind
        out, pos = [], 0
        for kind, line in pieces:
            a, b = max(start, pos), min(stop, pos + len(line))
            if a < b:
                part = line[a - pos:b - pos].decode()
                if out and out[-1][0] == kind:
                    out[-1] = (kind, out[-1][1] + part)
                else:
                    out.append((kind, part))
            pos += len(line)
        return out

    def merged(items):
        out = []
        for kind, body in items:
            if out and out[-1][0] == kind:
                out[-1] = (kind, out[-1][1] + body)
            else:
                out.append((kind, body))
        return out

    head_len = len(output_text(head).encode())
    tail_len = len(output_text(tail).encode())
    assert merged(kinded(head)) == expected(0, head_len)
    assert merged(kinded(tail)) == expected(size - tail_len, size)
    assert head_len + tail_len + w.left_out_bytes == size
    assert f"({w.left_out_bytes} bytes," in notes[-1].body


def test_utf8_characters_stay_whole_at_the_seams(logs):
    rng = random.Random(3)
    data = numbered_lines(3 * MIB, rng, text="€😀ï")
    w = LogWriter(logs, JOB, max_log_bytes=MIB // 2 + 1)  # an odd cap: the seams fall anywhere
    feed(w, "stdout", data, rng, biggest=5000)
    w.end(done())
    head, _notes, tail, _ = split_at_notes(entries_of(logs))
    head_text, tail_text = output_text(head), output_text(tail)
    assert "\ufffd" not in head_text + tail_text
    text = data.decode()
    assert text.startswith(head_text) and text.endswith(tail_text)
    assert len(head_text.encode()) + len(tail_text.encode()) + w.left_out_bytes == len(data)


def test_one_write_bigger_than_the_cap(logs):
    data = b"".join(f"{i}\n".encode() for i in range(1_000_000))  # 6.9 MB in one call
    w = LogWriter(logs, JOB, max_log_bytes=100_000)
    w.output("stdout", data)
    assert w.held_bytes <= 50_000
    w.end(done())
    head, _notes, tail, _ = split_at_notes(entries_of(logs))
    text, head_text, tail_text = data.decode(), output_text(head), output_text(tail)
    assert text.startswith(head_text) and head_text.endswith("\n")
    assert text.endswith(tail_text) and tail_text.startswith(f"{1_000_000 - len(tail_text.splitlines())}\n")
    assert len(head_text) + len(tail_text) + w.left_out_bytes == len(data)


def test_below_half_the_cap_nothing_changes(logs):
    rng = random.Random(4)
    data = numbered_lines(400 * 1024, rng)
    capped = LogWriter(logs, JOB, max_log_bytes=MIB, max_delay=10)
    plain = LogWriter(logs, JOB + "x", max_delay=10)
    for w in (capped, plain):
        feed(w, "stdout", data, random.Random(5))
        w.status("$ next")
        w.output("stderr", b"err\n")
        w.end(done())
    got = [(e.kind, e.body) for e in entries_of(logs)]
    assert got == [(e.kind, e.body) for _, e in logs.read(JOB + "x", count=100_000)]
    assert output_text(entries_of(logs)) == data.decode() + "err\n"
    assert [b for k, b in got if k == LogKind.status] == ["$ next"]
    assert capped.left_out_bytes == 0 and capped.held_bytes == 0


def test_between_half_and_the_whole_cap_every_byte_is_kept(logs):
    rng = random.Random(6)
    data = numbered_lines(900 * 1024, rng)
    w = LogWriter(logs, JOB, max_log_bytes=MIB)
    feed(w, "stdout", data, rng)
    w.end(done())
    entries = entries_of(logs)
    assert output_text(entries) == data.decode()
    notes = [e.body for e in entries if e.kind == LogKind.status]
    assert len(notes) == 2 and "nothing was left out" in notes[1]
    assert w.left_out_bytes == 0


def test_status_lines_keep_their_place_among_held_output(logs):
    w = LogWriter(logs, JOB, max_log_bytes=64 * 1024)
    w.output("stdout", b"a" * 40_000 + b"\n")  # past the head: held from here
    w.status("$ step two")
    w.output("stdout", b"two\n")
    w.end(done())
    got = [(e.kind.value, e.body) for e in entries_of(logs)]
    assert [k for k, _ in got] == ["stdout", "status", "status", "stdout", "status", "stdout", "end"]
    assert got[1][1].startswith("log limit: the output has passed 32.0KiB")
    assert got[-2] == ("stdout", "two\n") and got[-3] == ("status", "$ step two")

    # a status line from the left-out middle comes right after the note on what was left out
    w = LogWriter(logs, JOB + "y", max_log_bytes=64 * 1024)
    w.output("stdout", b"b\n" * 20_000)
    w.status("$ step two")
    w.output("stdout", b"c\n" * 40_000)
    w.end(done())
    got = [(e.kind.value, e.body) for _, e in logs.read(JOB + "y", count=10_000)]
    statuses = [b for k, b in got if k == "status"]
    assert len(statuses) == 3 and "left out here" in statuses[1] and statuses[2] == "$ step two"
    assert "".join(b for k, b in got[got.index(("status", "$ step two")):] if k == "stdout") == "c\n" * 16_384


def test_close_without_end_writes_the_tail_too(logs):
    w = LogWriter(logs, JOB, max_log_bytes=10_000)
    w.output("stdout", b"".join(f"{i}\n".encode() for i in range(10_000)))
    w.status("node is shutting down")
    w.close()
    entries = entries_of(logs)
    assert entries[-1].kind == LogKind.status and entries[-1].body == "node is shutting down"
    assert output_text(entries).endswith("9999\n")
    assert any("left out here" in e.body for e in entries if e.kind == LogKind.status)


def test_tiny_writes_of_both_kinds_stay_bounded(logs):
    w = LogWriter(logs, JOB, max_log_bytes=64 * 1024)
    for i in range(100_000):
        w.output("stdout" if i % 2 else "stderr", b"z")
        assert len(w._tail.items) <= w._tail.max_chunks and w.held_bytes <= 32 * 1024
    w.end(done())
    entries = entries_of(logs)
    assert entries[-1].kind == LogKind.end
    assert len(output_text(entries)) + w.left_out_bytes == 100_000


def test_held_output_rides_out_a_redis_restart_and_nothing_is_written_twice(tmp_path):
    server = start_redis(tmp_path / "redis", appendonly=True)
    client = redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5)
    try:
        logs = RedisLogStream(client, retry_for=0.1)
        w = LogWriter(logs, JOB, max_bytes=1024, max_delay=0.01, retry_for=30, max_log_bytes=64 * 1024)
        data = b"".join(f"{i}\n".encode() for i in range(100_000))
        w.output("stdout", data[:20_000])
        w.flush()
        server.stop()  # Redis goes away while the job floods past the head
        w.output("stdout", data[20_000:])
        restart = threading.Timer(1.0, server.start)
        restart.start()
        w.end(done())  # the tail waits for Redis, and the end entry after it
        restart.join()
        w.close()
        assert w.lost_bytes == 0 and w.error is not None
        entries = entries_of(logs)
        head, notes, tail, end = split_at_notes(entries)
        text = data.decode()
        assert text.startswith(output_text(head)) and text.endswith(output_text(tail))
        assert len(output_text(entries)) + w.left_out_bytes == len(data)
        assert len(notes) == 2 and end.kind == LogKind.end
    finally:
        client.close()
        server.stop()


def test_the_end_of_a_capped_log_still_says_when_redis_is_gone(tmp_path):
    server = start_redis(tmp_path / "redis")
    client = redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5)
    w = LogWriter(RedisLogStream(client, retry_for=0.1), JOB, retry_for=0.3, max_log_bytes=64 * 1024,
                  max_pending=8192, max_bytes=1024)
    try:
        server.stop()
        started = time.monotonic()
        w.output("stdout", b"q\n" * 500_000)
        assert w.held_bytes <= 32 * 1024 and w._ready_bytes <= 8192 + 1024
        with pytest.raises(ServiceUnavailable):
            w.end(done())
        assert time.monotonic() - started < 20
    finally:
        w.close()
        client.close()
        server.stop()


def test_a_flood_through_raid_is_capped_and_the_job_goes_on(rai_env):
    env = rai_env
    env.settings["pubsub"]["max_log_bytes"] = "1m"
    env.write_config()
    env.start_raid()
    ada = env.account("ada")
    proj = env.project(["sh -c 'yes flood | head -c 20000000'", "echo after-the-flood"])
    r = env.rai(ada, "submit", "-p", str(proj), timeout=180)
    assert r.returncode == 0, r.stderr[-3000:] + env.raid_output()[-2000:]
    assert r.stdout.endswith("after-the-flood\n")
    assert r.stdout.startswith("flood\nflood\n")
    assert len(r.stdout) <= MIB
    errs = " ".join(r.stderr.split())
    m = re.search(r"\((\d+) bytes, about (\d+) lines\) left out here", errs)
    assert m, errs[-3000:]
    assert int(m.group(1)) == 20_000_000 + len("after-the-flood\n") - len(r.stdout)
    assert "succeeded" in errs
