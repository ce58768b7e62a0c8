"""Hashing many passwords at once keeps each hash with its own password."""

from __future__ import annotations

import pytest

from webapp.core.passwords import hash_passwords, verify_password

CHEAP = "pbkdf2:sha256:1"


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 33])
def test_each_hash_belongs_to_the_password_at_its_position(count: int) -> None:
    passwords = [f"password-{n}" for n in range(count)]

    hashes = hash_passwords(passwords, CHEAP)

    assert len(hashes) == count
    assert all(verify_password(hashed, password) for hashed, password in zip(hashes, passwords, strict=True))
    if count > 1:
        assert not verify_password(hashes[0], passwords[1])
