"""Hashing many passwords at once keeps each hash with its own password."""

from __future__ import annotations

import os
import threading

import pytest
from werkzeug.security import generate_password_hash

from webapp.core import passwords
from webapp.core.passwords import hash_passwords, verify_password

CHEAP = "pbkdf2:sha256:1"  # hashed in the calling thread: threads would cost more
COSTLY = "pbkdf2:sha256:100000"  # over a millisecond a hash: hashed in threads


@pytest.mark.parametrize(
    ("method", "count"),
    [(CHEAP, 0), (CHEAP, 1), (CHEAP, 7), (CHEAP, 8), (CHEAP, 9), (CHEAP, 33), (COSTLY, 9), (COSTLY, 17)],
)
def test_each_hash_belongs_to_the_password_at_its_position(method: str, count: int) -> None:
    passwords = [f"password-{n}" for n in range(count)]

    hashes = hash_passwords(passwords, method)

    assert len(hashes) == count
    assert all(verify_password(hashed, password) for hashed, password in zip(hashes, passwords, strict=True))
    if count > 1:
        assert not verify_password(hashes[0], passwords[1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: everything is hashed in the calling thread")
@pytest.mark.parametrize(("method", "spread"), [(CHEAP, False), (COSTLY, True)])
def test_only_a_costly_method_is_spread_over_threads(
    monkeypatch: pytest.MonkeyPatch, method: str, spread: bool
) -> None:
    used: set[int] = set()

    def recording(password: str, method: str) -> str:
        used.add(threading.get_ident())
        return generate_password_hash(password, method=method)

    monkeypatch.setattr(passwords, "generate_password_hash", recording)

    hash_passwords([f"password-{n}" for n in range(16)], method)

    assert (len(used) > 1) is spread
