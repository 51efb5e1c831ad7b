"""A job's log as Server-Sent Events: `GET /v1/jobs/{id}/log`.

Each event is one entry of the job's Redis Stream: `id` the stream entry id, `event` its kind (stdout,
stderr, status, end), `data` the LogEntry JSON. A client that reconnects with `Last-Event-ID` resumes
right after the last entry it got: nothing lost, nothing twice. Without it the log replays from its
first entry. While the job waits in its queue, `waiting` events (no id) carry its place whenever it
changes. The stream closes after the end entry; a comment every 15 s keeps idle proxies from cutting it.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import AsyncIterator
from typing import Annotated

import redis
import redis.asyncio
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from rai.backends.log_writer import ENTRY_MAX_BYTES
from rai.backends.redis_logs import read_rows
from rai.domain.models import JobEnd, JobRecord, JobState, LogEntry, LogKind
from raiserver.jobs import JobId, own_job
from raiserver.problems import Refusal
from raiserver.state import ServerState
from raiserver.wire import Waiting

log = logging.getLogger("raiserver.logs")

QUIET_MS = 2000  # a quiet log is looked at (place in the queue, an end already gone) this often
BATCH = 500  # most entries read per round trip
# bytes aimed at per round trip: the count follows the entries' size, from FIRST_COUNT on. 500 entries of
# 64 KiB (32 MiB, held whole per follower) take in much slower than 32 replies of 1 MiB
READ_BYTES = 1 << 20
FIRST_COUNT = max(1, READ_BYTES // ENTRY_MAX_BYTES)  # a flood's full entries: the first reply is no bigger either
PING = 15  # seconds between keep-alive comments
# lines end in LF alone (one of the three the SSE spec allows): a client's line splitter then need not
# normalise CRLF first, a copy or two of every 64 KiB event (httpx-sse does) for nothing
SEP = "\n"
# a stream entry id, MS-SEQ (or MS), each part a 64-bit number to Redis: 19 digits always fit, and a
# bigger one would be Redis's error mid-stream instead of a refusal up front
ENTRY_ID = re.compile(r"^[0-9]{1,19}(-[0-9]{1,19})?$")
_KIND = b'"kind":"'
# optional, but a string when given: typed `str` (not `str | None`) so the document does not offer null,
# which a header or query cannot carry
EntryId = Annotated[str, Query(description="resume after this entry id", pattern=ENTRY_ID.pattern)]

EVENT_SCHEMA = {  # one Server-Sent Event, as OpenAPI 3.2's itemSchema describes it
    "type": "object", "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": [*(k.value for k in LogKind), "waiting"]},
        "id": {"type": "string", "pattern": ENTRY_ID.pattern, "description": "the entry's id (none on `waiting`)"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "the LogEntry JSON; on `waiting`, {ahead, on_queue}"},
        "retry": {"type": "integer"},
    },
}


def entry_kind(raw: bytes) -> str:
    """The kind of a LogEntry's JSON without parsing its (up to 64 KiB) body: `kind` precedes `body`, and a
    quote inside a body is always escaped, so the first `"kind":"` is the field itself."""
    i = raw.find(_KIND)
    if i < 0:
        return LogKind.status.value
    i += len(_KIND)
    return raw[i:raw.find(b'"', i)].decode()


def next_count(entries: int, size: int) -> int:
    """Entries to ask for next, after a reply of `entries` entries and `size` bytes: about READ_BYTES."""
    return max(1, min(BATCH, READ_BYTES * entries // max(size, 1)))


def sse_event(**kw) -> ServerSentEvent:
    return ServerSentEvent(sep=SEP, **kw)


def entry_event(entry_id: bytes, kind: str, raw: bytes) -> bytes | ServerSentEvent:
    """One entry as its encoded event. A LogEntry's JSON has no line breaks (JSON escapes them in strings),
    so it is one `data:` line as it is: no decoding, splitting and re-encoding of up to 64 KiB per event
    (what ServerSentEvent.encode does, most of the server's time on a long log)."""
    if b"\n" in raw or b"\r" in raw:  # not what raid writes; let the library split it into data: lines
        return sse_event(id=entry_id.decode(), event=kind, data=raw.decode("utf-8", "replace"))
    return b"".join((b"id: ", entry_id, b"\nevent: ", kind.encode(), b"\ndata: ", raw, b"\n\n"))


def router(state: ServerState) -> APIRouter:
    api = APIRouter(prefix="/v1")

    @api.get("/jobs/{job_id}/log", summary="The job's log as Server-Sent Events, from the first entry or "
             "after Last-Event-ID, live until its end",
             response_class=EventSourceResponse,
             responses={200: {"description": "one event per log entry (and `waiting` events while it waits)",
                              "content": {"text/event-stream": {"itemSchema": EVENT_SCHEMA}}}})
    async def follow(job_id: JobId, request: Request,
                     after: EntryId = None,  # type: ignore[assignment]  # `str`: see EntryId
                     live: Annotated[bool, Query(description="false: what there is now, then close")] = True,
                     last_event_id: Annotated[str, Header(pattern=ENTRY_ID.pattern,
                                                          description="resume after this entry id")
                                        ] = None,  # type: ignore[assignment]  # `str`: see EntryId
                     ) -> EventSourceResponse:
        account = await state.auth(request)
        await run_in_threadpool(own_job, state, account, job_id)
        start = last_event_id or after or "0"
        if not ENTRY_ID.match(start):
            raise Refusal(400, f"{start!r} is not a log entry id", hint="send the id of an event you received")
        return EventSourceResponse(_events(state, job_id, start, live), ping=PING, sep=SEP,
                                   headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return api


async def _events(state: ServerState, job_id: str, after: str, live: bool = True
                  ) -> AsyncIterator[ServerSentEvent | bytes]:
    r = state.follow_redis
    key = state.b.live.keys.log(job_id)
    last = after
    shown_place = None
    count = FIRST_COUNT
    # followers that connected together (a class at a deadline) would all look at their queues together
    quiet_ms = int(QUIET_MS * random.uniform(0.8, 1.2))
    while True:
        try:
            reply = await r.xread({key: last}, count=count, block=quiet_ms if live else None)
            if not reply:
                record, place = await _quiet_look(r, state, job_id)
        except redis.exceptions.RedisError as e:
            log.warning("following %s: %s", job_id, e)
            yield sse_event(event="status", data=LogEntry(kind=LogKind.status, body=(
                "the server lost its connection to the log store; reconnect to read on")).to_json())
            return  # the client reconnects with Last-Event-ID and reads on from there
        if reply:
            rows = read_rows(reply)
            size, out, ended = 0, [], False
            for entry_id, fields in rows:
                last = entry_id.decode()
                raw = fields.get(b"e")
                if raw is None:
                    continue
                size += len(raw)
                kind = entry_kind(raw)
                out.append(entry_event(entry_id, kind, raw))
                if kind == LogKind.end.value:
                    ended = True
                    break
            # one write for the reply's events (each still its own event, with its own entry's id): a
            # send per event costs the server a cancel scope and a transport write, the client an HTTP chunk
            if out:
                yield b"".join(e if isinstance(e, bytes) else e.encode() for e in out)
            if ended:
                return
            count = next_count(len(rows), size)
            continue
        if place is not None:
            if place != shown_place:
                shown_place = place
                yield sse_event(event="waiting", data=place.model_dump_json(exclude_none=True))
        elif (record is None or record.state.finished) and not await r.exists(key):
            # the log has expired (or never was): end it from the record so the client is not left waiting
            record = record or await run_in_threadpool(state.b.db.get_job, job_id)
            if record is not None:
                end = JobEnd(state=record.state, exit_code=record.exit_code, duration=record.duration or 0.0,
                             output_key=record.output_key, message=record.message)
                yield sse_event(event="end", data=LogEntry(kind=LogKind.end, end=end).to_json())
            return
        if not live:
            return


async def _quiet_look(r: redis.asyncio.Redis, state: ServerState, job_id: str
                      ) -> tuple[JobRecord | None, Waiting | None]:
    """The job's live record and, while it waits, its place and ETA: LiveBoard's get_job on the followers'
    asyncio client, the place from the PlaceBoard (a thread only when a queue's order is a second old).
    Hundreds of quiet followers look every QUIET_MS; in threads they would queue up before every other
    request's threads (the pool holds 40)."""
    keys = state.b.live.keys
    raw = await r.get(keys.job(job_id))
    record = JobRecord.from_json(raw) if raw else None
    if record is None or record.state != JobState.queued or not record.queue:
        return record, None
    cached = state.places.cached(record.queue, job_id)
    if isinstance(cached, bool):  # False: the queue's order is stale
        place = await run_in_threadpool(state.places.place, record.queue, job_id)
    else:
        place = cached
    if place is not None:
        return record, place
    async with r.pipeline(transaction=False) as pipe:  # claimed, not started yet: its place by submission
        pipe.zrank(keys.waiting(record.queue), job_id)
        pipe.zcard(keys.waiting(record.queue))
        rank, total = await pipe.execute()
    return record, None if rank is None else Waiting(ahead=int(rank), on_queue=int(total))
