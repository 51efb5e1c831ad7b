"""Refusals as HTTP answers: a status, a message written for the user, and what to do."""

from __future__ import annotations

from rai.errors import AuthError, NotFound, ServiceUnavailable, UserError


class Refusal(Exception):
    def __init__(self, status: int, error: str, hint: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.hint = hint
        self.headers = headers or {}


def from_user_error(e: UserError) -> Refusal:
    status = 400
    if isinstance(e, AuthError):
        status = 401
    elif isinstance(e, NotFound):
        status = 404
    elif isinstance(e, ServiceUnavailable):  # its details name hosts and ports: for raid's log, not the student
        return Refusal(503, "a service behind rai-server does not answer right now",
                       hint="try again in a minute; if it lasts, tell your course staff")
    return Refusal(status, e.message, e.hint)


def no_job(job_id: str) -> Refusal:
    """Someone else's job answers exactly like one that does not exist, so ids cannot be probed."""
    return Refusal(404, f"no job {job_id}", hint="check the id; jobs are kept for the retention period")
