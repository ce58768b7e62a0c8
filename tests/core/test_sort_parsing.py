"""The list mechanism's parts that need no database: sort parsing and the Lister's guards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from webapp.core.errors import InvalidRequest
from webapp.core.lists import Lister, SortKey, parse_sort
from webapp.resources.posts.repository import PostReadRepository, posts

ALLOWED = ("id", "title", "created_at")


def test_sort_defaults_to_the_primary_key() -> None:
    assert parse_sort(None, ALLOWED) == (SortKey("id", False),)
    assert parse_sort("", ALLOWED) == (SortKey("id", False),)


def test_the_primary_key_ends_every_order_in_the_last_keys_direction() -> None:
    assert parse_sort("-created_at", ALLOWED) == (SortKey("created_at", True), SortKey("id", True))
    assert parse_sort("title,-created_at", ALLOWED)[-1] == SortKey("id", True)
    assert parse_sort("-title,created_at", ALLOWED)[-1] == SortKey("id", False)


def test_an_explicit_primary_key_is_kept_where_it_is_given() -> None:
    assert parse_sort("-id,title", ALLOWED) == (SortKey("id", True), SortKey("title", False))


def test_an_unknown_sort_key_names_the_allowed_ones() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_sort("content", ALLOWED)

    assert "id, title, created_at" in raised.value.detail
    assert raised.value.errors is not None
    assert "sort" in raised.value.errors


def test_a_lister_refuses_a_nullable_sort_column() -> None:
    with pytest.raises(ValueError, match="NOT NULL"):
        Lister({"id": posts.id, "deleted_at": posts.deleted_at})


def test_a_lister_requires_the_primary_key() -> None:
    with pytest.raises(ValueError, match="primary key"):
        Lister({"title": posts.title})


def test_keys_survive_the_cursor_round_trip() -> None:
    lister = PostReadRepository.lister
    sort = parse_sort("-created_at,title", lister.allowed)
    key = (datetime(2026, 1, 1, 12, 0, tzinfo=UTC), "Notes", 7)

    assert lister.decode_key(sort, lister.encode_key(key)) == key
