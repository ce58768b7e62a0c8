"""Password hashing, one place: the method is a setting (see docs/architecture.md)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from werkzeug.security import check_password_hash, generate_password_hash

# Werkzeug's default, scrypt N=2^15 r=8 p=1: ~50 ms and 32 MiB per hash here. OWASP
# asks N>=2^17, which would make every create/login cost 4x; raise it in production
# through PASSWORD_HASH_METHOD if that trade is right for you.
DEFAULT_METHOD = "scrypt:32768:8:1"


def hash_password(password: str, method: str = DEFAULT_METHOD) -> str:
    """``method$salt$hash``, as werkzeug makes and verifies it."""
    return generate_password_hash(password, method=method)


# A hash quicker than this is mostly Python holding the GIL (the salt is drawn one
# secrets.choice per character); threads then only add their own cost.
_WORTH_THREADS_SECONDS = 0.001


def hash_passwords(passwords: Sequence[str], method: str = DEFAULT_METHOD) -> list[str]:
    """Many hashes on every core: hashlib's scrypt and pbkdf2 release the GIL, and a
    thousand scrypt hashes are most of a minute of CPU. One task per thread, not per
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
    return [hash_password(password, method) for password in passwords]


def verify_password(hashed: str, password: str) -> bool:
    return check_password_hash(hashed, password)
