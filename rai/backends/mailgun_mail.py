"""Mailgun through the mailgun2 package: the messages API, with the HTTP status checked.

429 and 5xx answers (and connection failures) are retried with exponential backoff, honouring a
`Retry-After` header; 401/403 and other 4xx fail at once with the reason. The API key goes in the
Basic-auth header only: it never appears in a message, an exception or a log line.
`email.base_url` points the client at another API base (the EU region, a test server).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import requests
from mailgun2 import Mailgun

from rai.backends.mail import Mail, MailError
from rai.backends.outbox_mail import content_type
from rai.config import EmailConfig
from rai.errors import UserError

log = logging.getLogger("rai.mail")

DEFAULT_BASE_URL = "https://api.mailgun.net/v3"
RETRY_STATUSES = {429, 500, 502, 503, 504}


class _Client(Mailgun):
    """mailgun2's client with a configurable base URL and a request timeout (it has neither)."""

    def __init__(self, domain: str, api_key: str, base_url: str, timeout: float):
        super().__init__(domain, api_key, None)
        self.api_base = base_url.rstrip("/")
        self.base_url = f"{self.api_base}/{domain}"
        self.timeout = timeout

    def post(self, path, data, files=None, include_domain=True, auth=None):
        url = self.base_url if include_domain else self.api_base
        # mailgun2 sends every field, empty ones too; an empty `html` could become an empty HTML part.
        data = {k: v for k, v in data.items() if v not in ("", [], None)}
        return requests.post(url + path, auth=auth or self.auth, data=data, files=files or None,
                             timeout=self.timeout)


class MailgunMailer:
    def __init__(self, config: EmailConfig, *, attempts: int = 5, backoff: float = 1.0, max_wait: float = 60.0,
                 timeout: float = 30.0, sleep: Callable[[float], None] | None = None):
        if not config.domain or not config.api_key:
            raise UserError("the mailgun mail provider needs email.domain and email.api_key in the config",
                            hint="or use `email: {provider: outbox}` to write .eml files instead")
        self.domain = config.domain
        self.sender = config.sender
        self._key = config.api_key
        self._client = _Client(config.domain, config.api_key, config.base_url or DEFAULT_BASE_URL, timeout)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep or time.sleep

    def send(self, mail: Mail) -> None:
        attachments = [(name, content_type(name), content) for name, content in mail.attachments]
        for attempt in range(1, self.attempts + 1):
            wait = min(self.max_wait, self.backoff * 2 ** (attempt - 1))
            try:
                resp = self._client.send_message(self.sender, mail.to, subject=mail.subject, text=mail.text,
                                                  attachments=attachments)
            except requests.RequestException as e:
                reason = f"Mailgun could not be reached ({type(e).__name__})"
            else:
                if 200 <= resp.status_code < 300:
                    return
                reason = self._reason(resp)
                if resp.status_code not in RETRY_STATUSES:
                    raise MailError(reason)
                wait = min(self.max_wait, max(wait, _retry_after(resp)))
            if attempt == self.attempts:
                raise MailError(f"{reason}; gave up after {self.attempts} attempts")
            log.warning("mail to %s: %s; retrying in %.1fs (attempt %d of %d)",
                        mail.to, reason, wait, attempt + 1, self.attempts)
            self._sleep(wait)

    def _reason(self, resp: requests.Response) -> str:
        code = resp.status_code
        if code in (401, 403):
            return f"Mailgun refused the API key ({code}): check email.api_key and email.domain in the config"
        if code == 404:
            return f"Mailgun does not know the domain {self.domain} (404): check email.domain"
        try:
            detail = str(resp.json().get("message", ""))
        except ValueError:
            detail = resp.text
        detail = self._scrub(" ".join(detail.split())[:200])
        if code == 429:
            return "Mailgun is rate limiting (429)"
        if code >= 500:
            return f"Mailgun failed ({code})"
        return f"Mailgun refused the mail ({code}): {detail}" if detail else f"Mailgun refused the mail ({code})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def __repr__(self) -> str:  # never the key
        return f"MailgunMailer(domain={self.domain!r})"


def _retry_after(resp: requests.Response) -> float:
    try:
        return max(0.0, float(resp.headers.get("Retry-After", 0)))
    except ValueError:
        return 0.0
