"""Hashing many passwords at once keeps each hash with its own password."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable

import pytest
from werkzeug import security
from werkzeug.security import SALT_CHARS, check_password_hash, generate_password_hash

from webapp.core import passwords
from webapp.core.passwords import (
    SALT_LENGTH,
    hash_password,
    hash_passwords,
    hash_with_salt,
    salts,
    verify_password,
)

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

    def recording(password: str, salt: str, method: str) -> str:
        used.add(threading.get_ident())
        return hash_with_salt(password, salt, method)

    monkeypatch.setattr(passwords, "hash_with_salt", recording)

    hash_passwords([f"password-{n}" for n in range(16)], method)

    assert (len(used) > 1) is spread


@pytest.mark.parametrize("method", [CHEAP, "pbkdf2:sha512:3", "pbkdf2", "scrypt:1024:8:1"])
def test_a_hash_is_werkzeugs_hash_of_the_same_salt(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    monkeypatch.setattr(security, "gen_salt", lambda length: "a" * length)

    assert hash_with_salt("secret-password", "a" * SALT_LENGTH, method) == generate_password_hash(
        "secret-password", method=method
    )


def test_hashes_of_a_batch_are_verified_by_werkzeug_and_salted_apart() -> None:
    hashes = hash_passwords(["same-password"] * 200, CHEAP)

    assert all(check_password_hash(hashed, "same-password") for hashed in hashes)
    salted = [hashed.split("$")[1] for hashed in hashes]
    assert len(set(salted)) == len(salted)
    assert all(len(salt) == SALT_LENGTH and set(salt) <= set(SALT_CHARS) for salt in salted)


def test_salts_use_every_salt_character_and_no_other() -> None:
    drawn = "".join(salts(2000))

    assert len(drawn) == 2000 * SALT_LENGTH
    assert set(drawn) == set(SALT_CHARS)


def test_a_batch_reads_the_system_random_source_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []

    def counting(read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        def urandom(size: int) -> bytes:
            reads.append(size)
            return read(size)

        return urandom

    # secrets.choice (werkzeug's gen_salt) reads through random's own reference to urandom.
    monkeypatch.setattr(os, "urandom", counting(os.urandom))
    monkeypatch.setattr(random, "_urandom", counting(random._urandom))  # type: ignore[attr-defined]

    hash_passwords([f"password-{n}" for n in range(100)], CHEAP)

    # The first hash is timed alone (to choose threads or not), then the rest in one batch.
    assert len(reads) <= 3


def test_a_single_hash_is_verified_by_werkzeug() -> None:
    assert check_password_hash(hash_password("secret-password", CHEAP), "secret-password")
