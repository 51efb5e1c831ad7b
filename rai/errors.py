"""Errors a user can cause: each carries a message saying what to do and an exit code."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unreachable service; the CLIs print it without a traceback."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")


class ServiceUnavailable(UserError):
    """A backend (Redis, the database, the container engine) does not answer."""

    exit_code = 3


class NotFound(UserError):
    exit_code = 4


class AuthError(UserError):
    """The request's credentials are unknown, revoked, forged or stale."""

    exit_code = 5
