"""Authenticated encryption of secrets in config files, keyed by the app secret.

Encrypted values look like `==AESGCM==<base64 nonce+ciphertext>`; unlike the original's
`==AES32==` (AES-CFB, no authentication, crashed past 32 bytes) any secret length works and a
tampered value is refused.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rai.errors import UserError

PREFIX = "==AESGCM=="
_CONTEXT = b"rai config secret v1"


def _key(app_secret: str) -> bytes:
    if not app_secret:
        raise UserError("no app secret", hint="set app.secret in the config or RAI_APP_SECRET")
    return hashlib.pbkdf2_hmac("sha256", app_secret.encode(), _CONTEXT, 100_000)


_key_cache: dict[str, bytes] = {}


def _cached_key(app_secret: str) -> bytes:
    if app_secret not in _key_cache:
        _key_cache[app_secret] = _key(app_secret)
    return _key_cache[app_secret]


def encrypt(app_secret: str, plaintext: str) -> str:
    nonce = os.urandom(12)
    ct = AESGCM(_cached_key(app_secret)).encrypt(nonce, plaintext.encode(), _CONTEXT)
    return PREFIX + base64.b64encode(nonce + ct).decode()


def decrypt(app_secret: str, value: str) -> str:
    """The plaintext of `value`; a value without the prefix is returned as it is."""
    if not value.startswith(PREFIX):
        return value
    try:
        blob = base64.b64decode(value[len(PREFIX) :], validate=True)
        return AESGCM(_cached_key(app_secret)).decrypt(blob[:12], blob[12:], _CONTEXT).decode()
    except (InvalidTag, ValueError, UnicodeDecodeError):
        raise UserError(
            "an encrypted value could not be decrypted: wrong app secret or a damaged value",
            hint="re-encrypt it with `rai-crypto encrypt -s SECRET TEXT`",
        ) from None


def decrypt_tree(tree: Any, app_secret: str | None) -> Any:
    """Decrypt every `==AESGCM==` string inside a parsed config."""
    if isinstance(tree, dict):
        return {k: decrypt_tree(v, app_secret) for k, v in tree.items()}
    if isinstance(tree, list):
        return [decrypt_tree(v, app_secret) for v in tree]
    if isinstance(tree, str) and tree.startswith(PREFIX):
        if not app_secret:
            raise UserError(
                "the config holds encrypted values but no app secret is set",
                hint="set RAI_APP_SECRET (or app.secret) to the secret they were encrypted with",
            )
        return decrypt(app_secret, tree)
    return tree
