"""Accounts in an Auth0 tenant, through auth0-python's Management API client.

One Auth0 user per rai account, in the database connection `auth.connection`:
- user id `auth0|<access key>` (as in the original RAI, the access key is the Auth0 user id), so
  raid's per-job key check is a direct `GET /users/{id}`: consistent, never a stale search;
- `blocked` is revocation: blocking (here or in the Auth0 dashboard) stops the next job at once,
  since nothing is cached;
- role, team, names, keys and dates in `app_metadata.rai` (the Account as JSON; the secret key
  encrypted with the app secret when one is set), which users cannot edit.
Lookups by username, role or team use Auth0's user search, which is eventually consistent (a
just-created account may take a few seconds to be found) and pages through at most 1000 users.
"""

from __future__ import annotations

import secrets
import threading
import time
from urllib.parse import urlsplit

import httpx
import requests
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error, RateLimitError
from auth0.management import Auth0
from auth0.management.core.api_error import ApiError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rai.config import AuthConfig
from rai.crypto import PREFIX, decrypt, encrypt
from rai.domain.models import Account
from rai.errors import AuthError, NotFound, ServiceUnavailable, UserError
from rai.retrying import RetryLater, retry_after_seconds, wait_retry_after

PER_PAGE = 100
SEARCH_LIMIT = 1000  # Auth0 pages through the first 1000 matches only
# The SDK's own retries are off (they retry 409, which for users means "taken" and never changes): `_call`
# waits out the rate limit (429, which a roster of 300 accounts meets) with tenacity, Retry-After honoured.
NO_SDK_RETRIES = {"max_retries": 0}  # per request: auth0-python < 6 has no client-wide setting
RATE_LIMIT_ATTEMPTS = 5  # tries per call, the first included
RATE_LIMIT_BACKOFF = 1.0  # seconds before the second try, doubling after
RATE_LIMIT_MAX_WAIT = 30.0  # seconds at most between two tries, whatever Retry-After says


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ClientCredentialsToken:
    """A Management API token from the client-credentials grant (the SDK's `GetToken`), renewed a
    minute before it expires."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, audience: str):
        parts = urlsplit(token_url)
        self.token_url, self.audience = token_url, audience
        # `protocol` lets the tests' fake Auth0 speak plain http on 127.0.0.1; a tenant is https.
        self._get_token = GetToken(parts.netloc, client_id, client_secret, timeout=15.0,
                                   protocol=parts.scheme or "https")
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires - 60:
                try:
                    data = self._get_token.client_credentials(self.audience)
                except requests.RequestException as e:
                    raise ServiceUnavailable(f"Auth0 does not answer at {self.token_url}: {type(e).__name__}",
                                             hint="check auth.domain / auth.base_url") from None
                except RateLimitError as e:  # retried by the `_call` around the request that needed the token
                    raise RetryLater("rate limited", retry_after_seconds(_header(e.headers, "Retry-After"))) from None
                except Auth0Error as e:
                    raise AuthError(f"Auth0 refused the Management API client credentials ({e.status_code})",
                                    hint="check auth.client_id and auth.client_secret, and that the application "
                                         "is authorised for the Management API") from None
                self._token, self._expires = data["access_token"], time.time() + float(data.get("expires_in", 3600))
            return self._token


class Auth0Accounts:
    """The Accounts port on Auth0 users."""

    def __init__(self, cfg: AuthConfig, app_secret: str | None = None, client: Auth0 | None = None):
        if not (cfg.domain or cfg.base_url):
            raise UserError("auth.provider is auth0 but neither auth.domain nor auth.base_url is set")
        self.cfg = cfg
        self.app_secret = app_secret
        self.rate_limit_attempts = RATE_LIMIT_ATTEMPTS
        self.rate_limit_backoff = RATE_LIMIT_BACKOFF
        self.sleep = time.sleep
        base_url = (cfg.base_url or f"https://{cfg.domain}/api/v2").rstrip("/")
        token: str | ClientCredentialsToken | None = cfg.token
        if not token:
            if not (cfg.client_id and cfg.client_secret):
                raise UserError("auth0 needs auth.token or auth.client_id and auth.client_secret",
                                hint="create a Machine-to-Machine application authorised for the Management API")
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(base_url))
            audience = cfg.audience or f"https://{cfg.domain or urlsplit(base_url).netloc}/api/v2/"
            token = ClientCredentialsToken(origin + "/oauth/token", cfg.client_id, cfg.client_secret, audience)
        self.api = client or Auth0(base_url=base_url, token=token or "", timeout=15)

    # --- mapping
    def _user_id(self, access_key: str) -> str:
        return f"auth0|{access_key}"

    def _metadata(self, account: Account) -> dict:
        data = account.model_dump(mode="json")
        if self.app_secret:
            data["secret_key"] = encrypt(self.app_secret, account.secret_key)
        return data

    def _account(self, user) -> Account | None:
        meta = (_get(user, "app_metadata") or {}).get("rai")
        if not isinstance(meta, dict):
            return None  # an Auth0 user that is not a rai account
        meta = dict(meta)
        if str(meta.get("secret_key", "")).startswith(PREFIX):
            if not self.app_secret:
                raise UserError("the Auth0 accounts' keys are encrypted but no app secret is set",
                                hint="set RAI_APP_SECRET (or app.secret)")
            meta["secret_key"] = decrypt(self.app_secret, meta["secret_key"])
        meta["revoked"] = bool(_get(user, "blocked"))  # Auth0's block is the truth, wherever it was set
        if not meta["revoked"]:
            meta["revoked_at"] = None
        return Account.model_validate(meta)

    def _call(self, what: str, fn, *args, **kwargs):
        retrying = Retrying(
            stop=stop_after_attempt(self.rate_limit_attempts), retry=retry_if_exception_type(RetryLater),
            wait=wait_retry_after(wait_exponential(multiplier=self.rate_limit_backoff, max=RATE_LIMIT_MAX_WAIT),
                                  cap=RATE_LIMIT_MAX_WAIT),
            sleep=self.sleep, reraise=True)
        try:
            return retrying(self._call_once, what, fn, *args, **kwargs)
        except RetryLater:
            raise ServiceUnavailable(f"{what}: Auth0's rate limit was reached; try again in a minute") from None

    def _call_once(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, request_options=NO_SDK_RETRIES, **kwargs)
        except ApiError as e:
            if e.status_code == 404:
                return None
            body = e.body if isinstance(e.body, dict) else {}
            message = body.get("message") or str(e.body)
            if e.status_code == 409:
                raise UserError("an account with this email or access key already exists") from None
            if e.status_code in (401, 403):
                raise AuthError(f"{what}: Auth0 refused the Management API token ({e.status_code}: {message})",
                                hint="check auth.token, or the client's grants (read:users, create:users, "
                                     "update:users, delete:users)") from None
            if e.status_code == 429:
                raise RetryLater("rate limited", retry_after_seconds(_header(e.headers, "Retry-After"))) from None
            raise ServiceUnavailable(f"{what}: Auth0 answered {e.status_code}: {message}") from None
        except httpx.HTTPError as e:
            raise ServiceUnavailable(f"{what}: Auth0 does not answer ({e})",
                                     hint="check auth.domain / auth.base_url and the network") from None

    def _search(self, what: str, q: str) -> list[Account]:
        out: list[Account] = []
        for page in range(SEARCH_LIMIT // PER_PAGE):
            reply = self._call(what, self.api.users.list, q=q, page=page, per_page=PER_PAGE, include_totals=True,
                               search_engine="v3")
            users = list(reply.items or []) if reply is not None else []
            out += [a for a in (self._account(u) for u in users) if a is not None]
            if len(users) < PER_PAGE:
                break
        return out

    # --- the port
    def add(self, account: Account) -> None:
        if self.get(account.username) is not None:
            raise UserError("an account with this username already exists")
        names = {k: v for k, v in (("given_name", account.firstname), ("family_name", account.lastname)) if v}
        password = secrets.token_urlsafe(24) + "aA1!"  # nobody logs in with it; rai uses the keys
        self._call(f"creating {account.username}", self.api.users.create,
                   connection=self.cfg.connection, user_id=account.access_key, email=account.email,
                   email_verified=True, verify_email=False, password=password, blocked=account.revoked,
                   nickname=account.username, app_metadata={"rai": self._metadata(account)}, **names)

    def get(self, username: str) -> Account | None:
        found = self._search(f"looking up {username}", f"app_metadata.rai.username:{_quote(username)}")
        return next((a for a in found if a.username == username), None)

    def by_access_key(self, access_key: str) -> Account | None:
        if not access_key or "/" in access_key:
            return None
        user = self._call("checking an access key", self.api.users.get, self._user_id(access_key))
        return None if user is None else self._account(user)

    def by_email(self, email: str) -> Account | None:
        users = self._call(f"looking up {email}", self.api.users.list_users_by_email, email=email.lower()) or []
        return next((a for a in (self._account(u) for u in users) if a is not None), None)

    def update(self, account: Account) -> None:
        uid = self._user_id(account.access_key)
        current = self._call(f"updating {account.username}", self.api.users.get, uid)
        if current is None:
            if self.get(account.username) is not None:
                raise UserError("an Auth0 account keeps its access key (it is the Auth0 user id)",
                                hint="delete the account and create it again for a new access key")
            raise NotFound(f"no account named {account.username}")
        changes: dict = {"blocked": account.revoked, "app_metadata": {"rai": self._metadata(account)},
                         "nickname": account.username}
        if account.firstname:
            changes["given_name"] = account.firstname
        if account.lastname:
            changes["family_name"] = account.lastname
        if (_get(current, "email") or "").lower() != account.email.lower():
            changes["email"] = account.email
        self._call(f"updating {account.username}", self.api.users.update, uid, **changes)

    def delete(self, username: str) -> None:
        account = self.get(username)
        if account is not None:
            self._call(f"deleting {username}", self.api.users.delete, self._user_id(account.access_key))

    def list(self, role: str | None = None, team: str | None = None) -> list[Account]:
        terms = ["_exists_:app_metadata.rai.username"]
        if role:
            terms.append(f"app_metadata.rai.role:{_quote(role)}")
        if team:
            terms.append(f"app_metadata.rai.team:{_quote(team)}")
        found = self._search("listing accounts", " AND ".join(terms))
        found = [a for a in found if (role is None or a.role == role) and (team is None or a.team == team)]
        return sorted(found, key=lambda a: a.username)


def _header(headers: dict | None, name: str) -> str | None:
    return next((v for k, v in (headers or {}).items() if k.lower() == name.lower()), None)


def _get(obj, name: str):
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)
