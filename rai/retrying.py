"""The one retry policy of the project: tenacity, with a `Retry-After` a server sends honoured.

Each caller names its own bound in a constant beside the call (attempts, or seconds in all) and
raises `RetryLater` for what is worth retrying; everything else goes through at once.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_before_delay, wait_exponential
from tenacity.stop import StopBaseT
from tenacity.wait import wait_base


class RetryLater(Exception):
    """A transient failure: `reason` for the log and the final message, `after` what the server asked for."""

    def __init__(self, reason: str, after: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.after = after


class wait_retry_after(wait_base):  # noqa: N801 - tenacity's naming for waits
    """`fallback`'s wait, or longer when the server said `Retry-After`; never over `cap` seconds."""

    def __init__(self, fallback: wait_base, cap: float):
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self.fallback(retry_state)
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(error, RetryLater):
            wait = max(wait, error.after)
        return min(wait, self.cap)


def backoff(within: float, first_wait: float, max_wait: float,
            retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
            before_sleep: Callable[[RetryCallState], None] | None = None,
            give_up: Callable[[RetryCallState], bool] | None = None) -> Retrying:
    """Try again after `first_wait` seconds, doubling up to `max_wait`, while what fails is a `retry_on`, until
    the next wait would end past `within` seconds since the first try or `give_up` says so; then the last
    error is raised. The loop of every stream that rides out a blip (a log's writes and follows)."""
    stop: StopBaseT = stop_before_delay(within)
    if give_up is not None:
        stop = _either(stop, give_up)
    return Retrying(stop=stop, wait=wait_exponential(multiplier=first_wait, max=max_wait),
                    retry=retry_if_exception_type(retry_on), before_sleep=before_sleep, reraise=True)


def _either(a: StopBaseT, b: StopBaseT) -> StopBaseT:
    return lambda state: a(state) or b(state)


def retry_after_seconds(value: str | None) -> float:
    """A `Retry-After` header in seconds (0 when absent or an HTTP date, which rai's peers do not send)."""
    try:
        return max(0.0, float(value or 0))
    except ValueError:
        return 0.0
