"""What the client says when rai-server refuses a request or cannot be reached: the server's own message
and hint, and an exit code by the answer's status (rai/client/cli.py's list). Shared by both ways the client
talks to the server (rai/client/api.py on httpx, rai/client/channel.py on the standard library)."""

from __future__ import annotations

from rai.errors import AuthError, NotFound, ServiceUnavailable, UserError


class Conflict(UserError):
    """The request conflicts with the job's state (it already ended, the id exists)."""

    exit_code = 1


class RateLimited(UserError):
    exit_code = 3

    def __init__(self, message: str, hint: str | None, retry_after: float):
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


def refusal(status: int, data: object, retry_after: str | None = None) -> UserError:
    """The error a refused request raises, from the answer's status, its JSON body (a Problem: error and
    hint) and its Retry-After header."""
    data = data if isinstance(data, dict) else {}
    message, hint = data.get("error"), data.get("hint")
    if message is None and isinstance(data.get("detail"), list):  # the API's own validation of a request
        message = "the server refused the request: " + "; ".join(
            f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}" for d in data["detail"])
    message = message or f"the rai server answered {status}"
    if status == 401:
        return AuthError(message, hint=hint)
    if status == 404:
        return NotFound(message, hint=hint)
    if status == 409:
        return Conflict(message, hint=hint)
    if status == 429:
        try:
            retry = float(retry_after or 60)
        except ValueError:
            retry = 60.0
        return RateLimited(message, hint or f"try again in {retry:.0f}s", retry)
    if status >= 500:
        return ServiceUnavailable(message, hint=hint or "try again in a minute; if it lasts, tell your course staff")
    return UserError(message, hint=hint, exit_code=2)


def unreachable(base: str, text: str, timed_out: bool, timeout: float) -> ServiceUnavailable:
    """The error of a request that got no answer: a certificate rai does not trust, no answer in time, or
    no connection at all."""
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
        return ServiceUnavailable(f"the rai server at {base} did not show a certificate rai trusts",
                                  hint="if your course uses its own certificate authority, set server.ca_bundle "
                                       "in your config to the PEM file they give you")
    if timed_out:
        return ServiceUnavailable(f"the rai server at {base} did not answer within {timeout:.0f}s",
                                  hint="try again; check your network connection")
    return ServiceUnavailable(f"cannot reach the rai server at {base} ({text})",
                              hint="check server.url in your config and your network connection")
