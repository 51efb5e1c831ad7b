"""Mailgun through its official Python SDK (`mailgun`): the messages API, with the HTTP status checked.

The address is checked before anything is sent. 429 and 5xx answers (and connection failures) are
retried by tenacity with exponential backoff, honouring a `Retry-After` header, up to
MAIL_ATTEMPTS; 401/403 and other 4xx fail at once with the reason. The SDK's own retries are off
(one policy, one bound). The API key goes in the Basic-auth header only: it never appears in a
message, an exception or a log line. `email.base_url` points the client at another API base (the
EU region, a test server).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import requests
from mailgun.client import Client
from mailgun.config import RetryPolicy
from mailgun.handlers.error_handler import ApiError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rai.backends.mail import Mail, MailError, check_recipient
from rai.backends.outbox_mail import content_type
from rai.config import EmailConfig
from rai.errors import UserError
from rai.retrying import RetryLater, retry_after_seconds, wait_retry_after

log = logging.getLogger("rai.mail")

DEFAULT_BASE_URL = "https://api.mailgun.net"
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAIL_ATTEMPTS = 5  # tries per mail, the first included
MAIL_BACKOFF = 1.0  # seconds before the second try, doubling after
MAIL_MAX_WAIT = 60.0  # seconds at most between two tries, whatever Retry-After says


def _api_url(base_url: str) -> str:
    """The SDK wants the host; `email.base_url` was documented with the version (…/v3)."""
    url = base_url.rstrip("/")
    return url[: -len("/v3")] if url.endswith("/v3") else url


class MailgunMailer:
    def __init__(self, config: EmailConfig, *, attempts: int = MAIL_ATTEMPTS, backoff: float = MAIL_BACKOFF,
                 max_wait: float = MAIL_MAX_WAIT, timeout: float = 30.0,
                 sleep: Callable[[float], None] | None = None):
        if not config.domain or not config.api_key:
            raise UserError("the mailgun mail provider needs email.domain and email.api_key in the config",
                            hint="or use `email: {provider: outbox}` to write .eml files instead")
        self.domain = config.domain
        self.sender = config.sender
        self._key = config.api_key
        try:
            self._client = Client(auth=("api", config.api_key), api_url=_api_url(config.base_url or DEFAULT_BASE_URL),
                                  timeout=(min(timeout, 10.0), timeout), retry_policy=RetryPolicy(max_retries=0))
        except ValueError as e:  # the SDK refuses plain http except to localhost
            raise UserError(f"email.base_url: {e}", hint="use an https:// URL") from None
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep or time.sleep

    def send(self, mail: Mail) -> None:
        check_recipient(mail)
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_retry_after(wait_exponential(multiplier=self.backoff, max=self.max_wait), cap=self.max_wait),
            retry=retry_if_exception_type(RetryLater), sleep=self._sleep, reraise=True,
            before_sleep=lambda state: log.warning(
                "mail to %s: %s; retrying in %.1fs (attempt %d of %d)", mail.to,
                state.outcome.exception() if state.outcome else None, state.next_action.sleep if state.next_action
                else 0.0, state.attempt_number + 1, self.attempts))
        try:
            retrying(self._send_once, mail)
        except RetryLater as e:
            raise MailError(f"{e.reason}; gave up after {self.attempts} attempts") from None

    def _send_once(self, mail: Mail) -> None:
        data = {"from": self.sender, "to": mail.to, "subject": mail.subject, "text": mail.text}
        files = [("attachment", (name, content, content_type(name))) for name, content in mail.attachments]
        try:
            resp = self._client.messages.create(data=data, files=files or None, domain=self.domain)
        except (ApiError, requests.RequestException) as e:
            cause = e.__cause__ or e
            raise RetryLater(f"Mailgun could not be reached ({type(cause).__name__})") from None
        if 200 <= resp.status_code < 300:
            return
        reason = self._reason(resp)
        if resp.status_code in RETRY_STATUSES:
            raise RetryLater(reason, retry_after_seconds(resp.headers.get("Retry-After")))
        raise MailError(reason)

    def _reason(self, resp: requests.Response) -> str:
        code = resp.status_code
        if code in (401, 403):
            return f"Mailgun refused the API key ({code}): check email.api_key and email.domain in the config"
        if code == 404:
            return f"Mailgun does not know the domain {self.domain} (404): check email.domain"
        if code == 429:
            return "Mailgun is rate limiting (429)"
        if code >= 500:
            return f"Mailgun failed ({code})"
        try:
            detail = str(resp.json().get("message", ""))
        except ValueError:
            detail = resp.text
        detail = self._scrub(" ".join(detail.split())[:200])
        return f"Mailgun refused the mail ({code}): {detail}" if detail else f"Mailgun refused the mail ({code})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def __repr__(self) -> str:  # never the key
        return f"MailgunMailer(domain={self.domain!r})"
