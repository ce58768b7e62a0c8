"""Hashing many passwords at once keeps each hash with its own password."""

from __future__ import annotations

import os
import threading

import pytest
from werkzeug.security import SALT_CHARS, check_password_hash

from webapp.core import passwords
from webapp.core.passwords import hash_password, hash_passwords, verify_password

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

    real = passwords.hash_password

    def recording(password: str, method: str) -> str:
        used.add(threading.get_ident())
        return real(password, method)

    monkeypatch.setattr(passwords, "hash_password", recording)

    hash_passwords([f"password-{n}" for n in range(16)], method)

    assert (len(used) > 1) is spread


# Stored by earlier releases, which drew salts themselves: the format is werkzeug's.
STORED = [
    "pbkdf2:sha256:1000$abcdefghijklmnop$a30f40a7b92ab484e399133edb242a4a87a32143c2c778987aa4b459781b2462",
    "scrypt:1024:8:1$abcdefghijklmnop$e6720b88fbcc6b8d12777f3059d6f3aa7cacd0990c42a33c45ac7330c71b6925"
    "d672de463045e91866fbd4711d73d556ab6e4cfd3c37ac782e3363135853d417",
]


@pytest.mark.parametrize("stored", STORED)
def test_hashes_stored_before_still_verify(stored: str) -> None:
    assert verify_password(stored, "secret-password")
    assert not verify_password(stored, "secret-passwore")


def test_hashes_of_a_batch_are_verified_by_werkzeug_and_salted_apart() -> None:
    hashes = hash_passwords(["same-password"] * 200, CHEAP)

    assert all(check_password_hash(hashed, "same-password") for hashed in hashes)
    salted = [hashed.split("$")[1] for hashed in hashes]
    assert len(set(salted)) == len(salted)
    assert all(len(salt) == 16 and set(salt) <= set(SALT_CHARS) for salt in salted)


def test_a_single_hash_is_verified_by_werkzeug() -> None:
    assert check_password_hash(hash_password("secret-password", CHEAP), "secret-password")
