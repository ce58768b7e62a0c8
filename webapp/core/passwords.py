"""Password hashing, one place: the method is a setting (see docs/architecture.md)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from werkzeug.security import SALT_CHARS, _hash_internal, check_password_hash

# Werkzeug's default, scrypt N=2^15 r=8 p=1: ~50 ms and 32 MiB per hash here. OWASP
# asks N>=2^17, which would make every create/login cost 4x; raise it in production
# through PASSWORD_HASH_METHOD if that trade is right for you.
DEFAULT_METHOD = "scrypt:32768:8:1"


# generate_password_hash's default salt length.
SALT_LENGTH = 16

# werkzeug's gen_salt draws each salt character with its own secrets.choice: 16 calls
# into Python's random module and 16 getrandom() syscalls per password, 80% of a
# one-iteration PBKDF2 hash. The same salts (16 of its 62 letters and digits, each
# uniform) come from one read of os.urandom: a byte below 248 = 4 * 62 maps to
# SALT_CHARS[byte % 62] (uniform, since 248 is a multiple of 62) and the rest are
# dropped, both by one bytes.translate.
_ACCEPTED = 4 * len(SALT_CHARS)
_BYTE_TO_SALT_CHAR = bytes(ord(SALT_CHARS[byte % len(SALT_CHARS)]) for byte in range(256))
_REJECTED = bytes(range(_ACCEPTED, 256))


def salts(count: int, length: int = SALT_LENGTH) -> list[str]:
    """``count`` salts as werkzeug's gen_salt(length) makes them, from one urandom read
    (another in the rare case too many bytes were dropped)."""
    needed = count * length
    chars = b""
    while len(chars) < needed:
        # 1/32 of the bytes are dropped on average; the margin makes a second read rare.
        wanted = needed - len(chars)
        chars += os.urandom(wanted + wanted // 16 + 16).translate(_BYTE_TO_SALT_CHAR, _REJECTED)
    text = chars[:needed].decode("ascii")
    return [text[start : start + length] for start in range(0, needed, length)]


def hash_with_salt(password: str, salt: str, method: str = DEFAULT_METHOD) -> str:
    """generate_password_hash's result with this salt: ``method$salt$hash``, which
    check_password_hash verifies. _hash_internal is werkzeug's own (check_password_hash
    calls it too); tests/core/test_passwords.py compares the two functions' results."""
    hashed, actual_method = _hash_internal(method, salt, password)
    return f"{actual_method}${salt}${hashed}"


def hash_password(password: str, method: str = DEFAULT_METHOD) -> str:
    return hash_with_salt(password, salts(1)[0], method)


# A hash quicker than this is mostly Python holding the GIL; threads then only add their
# own cost: 1,000 one-iteration PBKDF2 hashes took 39 ms of CPU in two threads, 23 ms
# in one (with werkzeug's salts, one secrets.choice per character).
_WORTH_THREADS_SECONDS = 0.001


def hash_passwords(passwords: Sequence[str], method: str = DEFAULT_METHOD) -> list[str]:
    """Many hashes on every core: hashlib's scrypt and pbkdf2 release the GIL (1.8x on
    2 cores), and 1,000 scrypt hashes are ~50 s of CPU. One task per thread, not per
    password: with a cheap method, 1,000 futures cost more than the hashing. The first
    hash is timed: a method too cheap for threads to pay runs in this thread."""
    if not passwords:
        return []
    started = time.perf_counter()
    first = hash_password(passwords[0], method)
    rest = passwords[1:]
    workers = min(os.cpu_count() or 1, len(passwords) // 8)
    if workers <= 1 or time.perf_counter() - started < _WORTH_THREADS_SECONDS:
        return [first, *_hash_all(rest, method)]
    chunks = [rest[start::workers] for start in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashed_chunks = list(pool.map(partial(_hash_all, method=method), chunks))
    hashed: list[str] = [""] * len(rest)
    for start, chunk in enumerate(hashed_chunks):
        hashed[start::workers] = chunk
    return [first, *hashed]


def _hash_all(passwords: Sequence[str], method: str) -> list[str]:
    return [
        hash_with_salt(password, salt, method)
        for password, salt in zip(passwords, salts(len(passwords)), strict=True)
    ]


def verify_password(hashed: str, password: str) -> bool:
    return check_password_hash(hashed, password)
