"""The ASGI app: versioned JSON under /v1/, its OpenAPI document at /openapi.json, `GET /healthz`."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from rai import __version__
from rai.backends import Backends
from rai.config import Config
from rai.errors import UserError
from raiserver import jobs, logs, questions
from raiserver.metrics import CONTENT_TYPE
from raiserver.problems import Refusal, from_user_error
from raiserver.state import ServerState
from raiserver.wire import Health, Problem

log = logging.getLogger("raiserver")

PROBLEMS: dict[int | str, dict[str, Any]] = {status: {"model": Problem, "description": what} for status, what in [
    (400, "bad input: the message says what to fix"), (401, "not signed, stale, replayed, or an unknown/revoked key"),
    (403, "not allowed for this account"), (404, "no such job (or not yours)"), (409, "conflicts with the job's state"),
    (413, "the upload is over the server's limit"), (429, "too many submissions; see Retry-After"),
    (503, "a service behind the server does not answer")]}


# long: the app's error answers and top-level routes, each a few lines, in the order a request meets them
def create_app(config: Config, backends: Backends | None = None) -> FastAPI:
    state = ServerState(backends or Backends(config))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await state.close()

    app = FastAPI(title="rai-server", version=__version__, lifespan=lifespan, responses=PROBLEMS,
                  description="The API the `rai` client talks to. Every /v1 request is signed with the user's "
                              "secret key (see rai/domain/signing.py).")
    app.state.rai = state

    @app.exception_handler(Refusal)
    async def refused(_request: Request, e: Refusal) -> JSONResponse:
        return JSONResponse(Problem(error=e.error, hint=e.hint).model_dump(), status_code=e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, e: HTTPException) -> JSONResponse:
        # the framework's own refusals (no such route, a method it does not take, a body that is not JSON)
        # answer like every other refusal: a Problem, not {"detail": ...}
        return JSONResponse(Problem(error=str(e.detail)).model_dump(), status_code=e.status_code,
                            headers=e.headers)

    @app.exception_handler(UserError)
    async def user_error(request: Request, e: UserError) -> JSONResponse:
        if e.exit_code == 3:
            log.warning("%s %s: %s", request.method, request.url.path, e)
        return await refused(request, from_user_error(e))

    @app.exception_handler(redis.exceptions.RedisError)
    async def redis_down(request: Request, e: redis.exceptions.RedisError) -> JSONResponse:
        log.warning("%s %s: Redis: %s", request.method, request.url.path, e)
        return await refused(request, Refusal(503, "a service behind rai-server does not answer right now",
                                              hint="try again in a minute; if it lasts, tell your course staff"))

    @app.exception_handler(Exception)
    async def crashed(request: Request, e: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(Problem(error="the server failed answering this request",
                                    hint="try again; if it lasts, tell your course staff").model_dump(),
                            status_code=500)

    @app.get("/healthz", response_model=Health, summary="Whether the server and its Redis answer")
    async def healthz() -> JSONResponse:
        try:
            await run_in_threadpool(state.b.redis.ping)
            return JSONResponse(Health(ok=True, redis="ok", version=__version__).model_dump())
        except Exception:  # noqa: BLE001 - health says what it can, it never fails
            return JSONResponse(Health(ok=False, redis="not answering", version=__version__).model_dump(),
                                status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if not state.metrics.allowed(request.headers.get("authorization")):
            return JSONResponse(Problem(error="/metrics needs the operators' token",
                                        hint="send Authorization: Bearer <server.metrics_token>").model_dump(),
                                status_code=401)
        return Response(await run_in_threadpool(state.metrics.scrape), media_type=CONTENT_TYPE)

    app.include_router(jobs.router(state))
    app.include_router(logs.router(state))
    app.include_router(questions.router(state))
    return app
