"""Password hashes and API keys, with the standard library only.

Passwords are low-entropy, so they get a slow, salted hash (scrypt). API keys are 32 random
characters, so a fast sha256 is enough to store them: nobody can guess a key from its hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
# Stored parameters larger than this are refused, so a tampered hash cannot exhaust memory.
_MAX_N = 2**20

API_KEY_PREFIX = "d2a_"
API_KEY_RANDOM_CHARS = 32
#: Characters of a key kept in clear to tell keys apart in lists: "d2a_" and 8 random ones.
API_KEY_SHOWN_CHARS = len(API_KEY_PREFIX) + 8


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = HASH_BYTES) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r + (1 << 20), dklen=dklen)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` with a fresh random salt (base64 salt and hash)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; False for a wrong password or a malformed hash."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = encoded.split("$")
        n_i, r_i, p_i = int(n), int(r), int(p)
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
        if scheme != "scrypt" or not expected or not (1 < n_i <= _MAX_N and 0 < r_i <= 32 and 0 < p_i <= 16):
            return False
        actual = _scrypt(password, salt, n_i, r_i, p_i, dklen=len(expected))
    except ValueError:  # not six fields, not numbers, not base64, or parameters scrypt refuses
        return False
    return hmac.compare_digest(actual, expected)


def hash_api_key(plain_key: str) -> str:
    """The stored form of an API key: its sha256, in hex."""
    return hashlib.sha256(plain_key.encode("utf-8")).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """A fresh key as ``(plain_key, prefix, key_hash)``; show ``plain_key`` once, store the rest."""
    random_part = secrets.token_urlsafe(API_KEY_RANDOM_CHARS)[:API_KEY_RANDOM_CHARS]
    plain_key = API_KEY_PREFIX + random_part
    return plain_key, plain_key[:API_KEY_SHOWN_CHARS], hash_api_key(plain_key)
