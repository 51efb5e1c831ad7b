"""What a user may read beyond their jobs: who they are, the ranked projects, the leaderboard (other
teams anonymised), their history, their team's submissions (`rai.domain.answers`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from rai.domain.answers import MAX_LIMIT, Answers, History, Leaderboard, Submitted
from rai.errors import UserError
from rai.live.published_projects import published_projects
from raiserver.problems import from_user_error
from raiserver.state import ServerState
from raiserver.wire import Whoami

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Name = Annotated[str | None, Query(max_length=200)]


def router(state: ServerState) -> APIRouter:
    api = APIRouter(prefix="/v1")
    answers = Answers(state.config, state.b.db)

    def ask(account, what, **kw):
        try:
            return answers.answer(account, what, **kw)
        except UserError as e:
            raise from_user_error(e) from None

    @api.get("/whoami", response_model=Whoami, summary="Your account as the server knows it, and what it accepts")
    async def whoami(request: Request) -> Whoami:
        account = await state.auth(request)
        projects = await run_in_threadpool(published_projects, state.b.redis, state.config.projects)
        return Whoami(username=account.username, team=account.team, role=account.role,
                      default_queue=state.config.broker.queue, projects=projects,
                      max_upload=state.config.server.max_upload)

    @api.get("/ranking", response_model=Leaderboard, summary="The leaderboard: your team named, others anonymised")
    async def ranking(request: Request, project: Name = None, kind: Name = None, limit: Limit = 10) -> Leaderboard:
        account = await state.auth(request)
        return await run_in_threadpool(ask, account, "ranking", project=project, kind=kind, limit=limit)

    @api.get("/history", response_model=History, summary="Your recent jobs")
    async def history(request: Request, limit: Limit = 10) -> History:
        account = await state.auth(request)
        return await run_in_threadpool(ask, account, "history", limit=limit)

    @api.get("/submitted", response_model=Submitted, summary="Your team's ranked submissions per kind")
    async def submitted(request: Request, project: Name = None, kind: Name = None, limit: Limit = 5) -> Submitted:
        account = await state.auth(request)
        return await run_in_threadpool(ask, account, "submitted", project=project, kind=kind, limit=limit)

    return api
