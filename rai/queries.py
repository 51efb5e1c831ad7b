"""Signed queries: how a student reads the leaderboard, their history and their team's submissions
without any database credentials.

1. `rai` XADDs a `Query` (query id, access key, username, what, time, HMAC signature with the user's
   secret key) to the Redis Stream `rai:queries` and waits (BLPOP) on `rai:reply:<query id>`.
2. One raid node (every node runs a `raid.queries.QueryServer` in the consumer group `raid`) takes it,
   checks it as it checks a job (known, unrevoked key of that user; valid signature; fresh), and answers
   only what that account may see: the leaderboard with other teams anonymised, the user's own jobs,
   their team's submissions. The team is the account's, on the server; nothing in the query sets it.
3. The answer is sealed with AES-GCM under a key derived from the user's secret key (HKDF, the query
   id as salt and associated data): others reading Redis learn nothing, not even job ids. Refusals
   travel in clear and say why. Replies expire after a minute.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import redis
from pydantic import BaseModel, ConfigDict, Field

from rai.crypto import seal_for, unseal_for
from rai.errors import AuthError, ServiceUnavailable, UserError
from rai.models import Query
from rai.signing import sign

QUERIES = "rai:queries"  # Redis Stream of signed queries
GROUP = "raid"  # the consumer group every raid node reads it in
REPLY = "rai:reply:"  # + query id: a list holding the one reply
REPLY_TTL = 60  # seconds a reply waits for its client
MAX_QUERY_AGE = 120.0  # seconds; an older query (or one dated further ahead) is not answered
STREAM_MAXLEN = 10_000  # queries kept in the stream (approximate trim)
TIMEOUT = 15.0  # seconds the client waits for an answer
_INFO = b"rai query reply v1"


def seal(secret_key: str, query_id: str, plain: bytes) -> str:
    return seal_for(secret_key, query_id, plain, _INFO)


def unseal(secret_key: str, query_id: str, box: str) -> bytes:
    plain = unseal_for(secret_key, query_id, box, _INFO)
    if plain is None:
        raise AuthError("the server's answer could not be opened with your key",
                        hint="is your profile current? ask your course staff")
    return plain


# --- answers ----------------------------------------------------------------------------------

class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LeaderRow(_Answer):
    rank: int
    team: str  # your team's real name; any other team's anonymous label
    yours: bool = False
    value: float
    at: datetime | None = None  # when the counting result was recorded
    valid_results: int = 1


class Leaderboard(_Answer):
    project: str
    kind: str
    kinds: list[str] = Field(default_factory=list)  # the project's kinds, for the next question
    metric: str
    lower_is_better: bool = True
    counts: str = "best"
    teams: int = 0  # teams with a valid result
    rows: list[LeaderRow] = Field(default_factory=list)  # the first -n
    yours: LeaderRow | None = None  # your team's row, wherever it stands


class HistoryRow(_Answer):
    job_id: str
    state: str
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    project: str | None = None
    submission: str | None = None
    metric: str | None = None
    value: float | None = None
    valid: bool | None = None
    message: str = ""


class History(_Answer):
    username: str
    rows: list[HistoryRow] = Field(default_factory=list)


class SubmittedRow(_Answer):
    job_id: str
    username: str
    state: str
    submitted_at: datetime | None = None
    value: float | None = None
    valid: bool | None = None
    counts: bool = False  # the result that ranks for the team in this kind
    note: str = ""  # why the result is not valid, or why there is none


class SubmittedKind(_Answer):
    project: str
    kind: str
    metric: str
    counts: str = "best"
    rows: list[SubmittedRow] = Field(default_factory=list)


class Submitted(_Answer):
    team: str | None = None
    kinds: list[SubmittedKind] = Field(default_factory=list)


ANSWERS: dict[str, type[_Answer]] = {"ranking": Leaderboard, "history": History, "submitted": Submitted}


def ask(r: redis.Redis, access_key: str, username: str, secret_key: str, what: str, project: str | None = None,
        kind: str | None = None, limit: int = 10, timeout: float = TIMEOUT):
    """Ask the raid nodes; returns the answer model for `what`, or raises a UserError saying why not."""
    query = Query(access_key=access_key, username=username, what=what, project=project, kind=kind, limit=limit)
    sign(query, secret_key)
    key = REPLY + query.query_id
    try:
        entry_id = r.xadd(QUERIES, {"q": query.to_json()}, maxlen=STREAM_MAXLEN, approximate=True)
        popped = r.blpop([key], timeout=max(1, math.ceil(timeout)))
    except redis.exceptions.RedisError as e:
        raise ServiceUnavailable(f"asking the rai servers failed: Redis does not answer ({e})",
                                 hint="check pubsub.url in the config") from None
    if not popped:
        try:
            r.xdel(QUERIES, entry_id)  # nobody took it: don't leave it for a node that starts later
        except redis.exceptions.RedisError:
            pass
        raise ServiceUnavailable(f"no rai server answered within {timeout:.0f}s",
                                 hint="no raid node may be running; try again later or ask your course staff")
    reply = json.loads(popped[1])
    if not reply.get("ok"):
        error = UserError(reply.get("error") or "the server refused the question", hint=reply.get("hint"))
        if reply.get("auth"):
            error = AuthError(error.message, hint=error.hint)
        raise error
    return ANSWERS[what].model_validate_json(unseal(secret_key, query.query_id, reply["box"]))
