"""Idempotency-Key parsing, request fingerprints and lock ids (no database)."""

from __future__ import annotations

import pytest
from flask import Flask

from webapp.core.errors import InvalidRequest
from webapp.core.idempotency.http import parse_key, request_fingerprint
from webapp.core.idempotency.repository import advisory_lock_id


@pytest.fixture
def bare_app() -> Flask:
    return Flask(__name__)


def _fingerprint(app: Flask, path: str, body: bytes, method: str = "POST") -> str:
    with app.test_request_context(path, method=method, data=body):
        return request_fingerprint()


def test_a_key_is_kept_as_sent_inside_its_surrounding_whitespace() -> None:
    assert parse_key(' \t"quoted"  key~ ') == '"quoted"  key~'


@pytest.mark.parametrize(
    "raw", ["", "   ", " \t ", "a" * 256, "new\nline", "in\tside", "\x00", "\u00e9", "\x7f"]
)
def test_malformed_keys_are_invalid_requests(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_key(raw)


def test_the_fingerprint_covers_method_path_query_and_body(bare_app: Flask) -> None:
    base = _fingerprint(bare_app, "/a?x=1", b"{}")

    assert _fingerprint(bare_app, "/a?x=1", b"{}") == base
    assert _fingerprint(bare_app, "/a?x=1", b"{}", method="PUT") != base
    assert _fingerprint(bare_app, "/b?x=1", b"{}") != base
    assert _fingerprint(bare_app, "/a?x=2", b"{}") != base
    assert _fingerprint(bare_app, "/a?x=1", b"{ }") != base


def test_fingerprint_parts_cannot_run_into_each_other(bare_app: Flask) -> None:
    # Without length prefixes, path "/ab" + body "c" and path "/a" + body "bc" would hash alike.
    assert _fingerprint(bare_app, "/ab", b"c") != _fingerprint(bare_app, "/a", b"bc")


def test_lock_ids_are_stable_signed_64_bit_numbers() -> None:
    ids = {advisory_lock_id(f"key-{n}") for n in range(1000)}

    assert len(ids) == 1000
    assert all(-(2**63) <= value < 2**63 for value in ids)
    assert advisory_lock_id("key-1") == advisory_lock_id("key-1")
