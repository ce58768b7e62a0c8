"""Lists of users and posts: sorting, offset and cursor pages, filters, and their cost."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from sqlalchemy.orm import Session

from tests.support.auth import KNOWN_PASSWORD, CreatedUser, known_password_hash, sign_in
from tests.support.factories import make_posts, make_users
from tests.support.statements import count_statements
from webapp.core.db import Database
from webapp.core.lists.http import make_cursor
from webapp.resources.posts.repository import PostReadRepository
from webapp.resources.users.model import User

# Few distinct values, so most rows tie on the sort key and only the id breaks ties.
# One timestamp has no microseconds: its ISO form has no fraction, the stored one does.
BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TIMESTAMPS = [BASE, BASE + timedelta(microseconds=250), BASE - timedelta(days=3, microseconds=1)]
TITLES = ["gamma", "alpha", "beta", "alpha"]
NAMES = ["grace", "ada", "ada", "barbara"]

POST_SORTS = [
    "id",
    "title",
    "created_at",
    "title,created_at",
    "title,-created_at",
    "created_at,-title",
    "title,-id",
]
USER_SORTS = ["id", "email", "full_name", "created_at", "full_name,-created_at", "created_at,email,-id"]


def _reverse(spec: str) -> str:
    return ",".join(key[1:] if key.startswith("-") else f"-{key}" for key in spec.split(","))


def _both_directions(specs: list[str]) -> list[str]:
    return [variant for spec in specs for variant in (spec, _reverse(spec))]


def _ordered(items: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    """What the API promises: sorted by the keys, then by id in the last key's direction."""
    keys = spec.split(",")
    if not any(key.lstrip("-") == "id" for key in keys):
        keys.append("-id" if keys[-1].startswith("-") else "id")
    result = list(items)
    # Stable sorts applied from the last key to the first give the multi-key order.
    # created_at compares correctly as text: every value is UTC with six fraction digits.
    for key in reversed(keys):
        name = key.lstrip("-")
        result.sort(key=lambda item: item[name], reverse=key.startswith("-"))
    return result


def walk(
    client: FlaskClient,
    url: str,
    per_page: int,
    between_pages: Callable[[dict[str, Any]], None] | None = None,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every item of a list, following next_cursor from the first page to the last."""
    separator = "&" if "?" in url else "?"
    response = client.get(f"{url}{separator}per_page={per_page}", headers=headers)
    items: list[dict[str, Any]] = []
    for _ in range(1000):
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert len(body["items"]) <= per_page
        items.extend(body["items"])
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return items
        assert len(body["items"]) == per_page
        if between_pages is not None:
            between_pages(body)
        response = client.get(f"{url}{separator}per_page={per_page}&cursor={quote(cursor)}", headers=headers)
        assert response.get_json()["meta"]["page"] is None
        assert response.get_json()["meta"]["total"] is None
    raise AssertionError("the walk did not end")


@pytest.fixture
def tied_posts(writer: Session, client: FlaskClient) -> list[dict[str, Any]]:
    authors = make_users(writer, 3)
    make_posts(writer, authors, 23, titles=TITLES, created=TIMESTAMPS)
    return walk(client, "/api/v1/posts", 100)


@pytest.fixture
def tied_users(writer: Session, client: FlaskClient, admin_user: CreatedUser) -> list[dict[str, Any]]:
    """The 19 tied users and the admin, as an admin lists them (emails are theirs to see)."""
    for index in range(19):
        writer.add(
            User(
                email=f"u{(index * 7) % 19:02d}@example.com",
                full_name=NAMES[index % len(NAMES)],
                hashed_password="x",
                created_at=TIMESTAMPS[index % len(TIMESTAMPS)],
            )
        )
    writer.commit()
    return walk(client, "/api/v1/users", 100, headers=admin_user.auth)


# -- cursor walks -------------------------------------------------------------------


@pytest.mark.parametrize("spec", _both_directions(POST_SORTS))
def test_cursor_walk_visits_every_post_once_in_order(
    client: FlaskClient, tied_posts: list[dict[str, Any]], spec: str
) -> None:
    visited = walk(client, f"/api/v1/posts?sort={spec}", 4)

    assert len(tied_posts) == 23
    assert [item["id"] for item in visited] == [item["id"] for item in _ordered(tied_posts, spec)]


@pytest.mark.parametrize("spec", _both_directions(USER_SORTS))
def test_cursor_walk_visits_every_user_once_in_order(
    client: FlaskClient, tied_users: list[dict[str, Any]], admin_user: CreatedUser, spec: str
) -> None:
    visited = walk(client, f"/api/v1/users?sort={spec}", 4, headers=admin_user.auth)

    assert len(tied_users) == 20  # the 19 and the admin
    assert [item["id"] for item in visited] == [item["id"] for item in _ordered(tied_users, spec)]


@pytest.mark.parametrize("spec", ["-created_at", "created_at", "title", "-title,created_at", "-id"])
def test_cursor_walk_is_exact_while_rows_are_inserted_between_pages(
    client: FlaskClient, tied_posts: list[dict[str, Any]], writer: Session, spec: str
) -> None:
    author = make_users(writer, 1)
    inserted: list[tuple[int, list[int]]] = []  # (id of the cursor row, ids inserted then)

    def insert_around_the_cursor(page: dict[str, Any]) -> None:
        last = page["items"][-1]
        # A row tied with the cursor row on every key but the id, and rows far on either side.
        titles = [last["title"], "aaaa", "zzzz"]
        created = [
            datetime.fromisoformat(last["created_at"]),
            BASE - timedelta(days=30),
            BASE + timedelta(days=30),
        ]
        posts = make_posts(writer, author, 3, titles=titles, created=created)
        inserted.append((last["id"], [post.id for post in posts]))

    visited = walk(client, f"/api/v1/posts?sort={spec}", 5, between_pages=insert_around_the_cursor)

    ids = [item["id"] for item in visited]
    assert len(ids) == len(set(ids)), "a row was visited twice"
    assert visited == _ordered(visited, spec), "the walk left the sort order"
    # Exactly the rows that existed throughout, plus each inserted row that sorts after
    # the position the cursor had when it was inserted; none that sorts before it.
    final = [item["id"] for item in walk(client, f"/api/v1/posts?sort={spec}", 100)]
    position = {post_id: index for index, post_id in enumerate(final)}
    ahead = {
        post_id
        for cursor_id, new_ids in inserted
        for post_id in new_ids
        if position[post_id] > position[cursor_id]
    }
    assert len(inserted) >= 4
    assert set(ids) == {item["id"] for item in tied_posts} | ahead


def test_next_cursor_of_an_offset_page_continues_with_the_next_rows(
    client: FlaskClient, tied_posts: list[dict[str, Any]]
) -> None:
    first = client.get("/api/v1/posts?sort=-title&per_page=5").get_json()
    second_by_offset = client.get("/api/v1/posts?sort=-title&per_page=5&page=2").get_json()

    cursor = quote(first["meta"]["next_cursor"])
    second_by_cursor = client.get(f"/api/v1/posts?per_page=5&cursor={cursor}").get_json()

    assert second_by_cursor["items"] == second_by_offset["items"]
    assert second_by_cursor["meta"]["page"] is None
    assert second_by_cursor["meta"]["total"] is None


def test_cursor_keeps_its_sort_and_accepts_the_same_sort_again(
    client: FlaskClient, tied_posts: list[dict[str, Any]]
) -> None:
    first = client.get("/api/v1/posts?sort=-created_at&per_page=3").get_json()
    cursor = quote(first["meta"]["next_cursor"])

    implicit = client.get(f"/api/v1/posts?per_page=3&cursor={cursor}")
    explicit = client.get(f"/api/v1/posts?per_page=3&sort=-created_at,-id&cursor={cursor}")
    other = client.get(f"/api/v1/posts?per_page=3&sort=title&cursor={cursor}")

    assert implicit.status_code == 200
    assert explicit.get_json() == implicit.get_json()
    assert other.status_code == 400


# -- offset pages -------------------------------------------------------------------


def test_offset_pages_partition_the_list(client: FlaskClient, tied_posts: list[dict[str, Any]]) -> None:
    pages = [client.get(f"/api/v1/posts?sort=title&per_page=10&page={n}").get_json() for n in (1, 2, 3, 4)]

    assert [page["meta"]["total"] for page in pages] == [23, 23, 23, 23]
    assert [page["meta"]["page"] for page in pages] == [1, 2, 3, 4]
    assert [len(page["items"]) for page in pages] == [10, 10, 3, 0]
    visited = [item for page in pages for item in page["items"]]
    assert visited == _ordered(tied_posts, "title")
    assert pages[2]["meta"]["next_cursor"] is None


def test_per_page_defaults_to_20_and_allows_100(client: FlaskClient, writer: Session) -> None:
    make_posts(writer, make_users(writer, 1), 101)

    default = client.get("/api/v1/posts").get_json()
    largest = client.get("/api/v1/posts?per_page=100").get_json()

    assert len(default["items"]) == 20
    assert default["meta"]["per_page"] == 20
    assert len(largest["items"]) == 100
    assert largest["meta"]["total"] == 101


# -- bad list parameters ------------------------------------------------------------


@pytest.mark.parametrize("resource", ["users", "posts"])
@pytest.mark.parametrize(
    "query",
    [
        "per_page=101",
        "per_page=0",
        "per_page=-1",
        "per_page=abc",
        "per_page=1.5",
        "per_page=%EF%BC%95",  # a full-width digit
        "page=0",
        "page=-1",
        "page=x",
        "page=99999999999999999999",
        "page=1&page=2",
        "sort=id&sort=-id",
        "page=1&cursor=abc",
        "cursor=",
        "cursor=abc",
        "cursor=%00",
        "cursor=%C3%A9.%C3%A9",
    ],
)
def test_bad_list_parameters_are_400_problems(client: FlaskClient, resource: str, query: str) -> None:
    response = client.get(f"/api/v1/{resource}?{query}")

    assert response.status_code == 400, response.get_json()
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("resource", "bad", "allowed"),
    [
        ("posts", "content", "id, title, created_at"),
        ("posts", "user_id", "id, title, created_at"),
        ("posts", "deleted_at", "id, title, created_at"),
        ("users", "hashed_password", "id, email, full_name, created_at"),
        ("users", "is_active", "id, email, full_name, created_at"),
        ("users", "id;drop table users", "id, email, full_name, created_at"),
    ],
)
def test_sort_outside_the_allowlist_is_400_naming_the_allowed_keys(
    client: FlaskClient, resource: str, bad: str, allowed: str
) -> None:
    response = client.get(f"/api/v1/{resource}?sort={quote(bad)}")

    assert response.status_code == 400
    assert allowed in response.get_json()["detail"]
    assert "errors" not in response.get_json()  # the contract: only on 422


@pytest.mark.parametrize("spec", ["title,title", "-title,title", ",", "-", "title,", "--id", "ID"])
def test_malformed_sort_is_400(client: FlaskClient, spec: str) -> None:
    response = client.get(f"/api/v1/posts?sort={quote(spec)}")

    assert response.status_code == 400
    assert response.content_type == "application/problem+json"


# -- cursors that are not ours ------------------------------------------------------


@pytest.fixture
def post_cursor(client: FlaskClient, tied_posts: list[dict[str, Any]]) -> str:
    cursor: str = client.get("/api/v1/posts?per_page=2").get_json()["meta"]["next_cursor"]
    return cursor


def _assert_bad_cursor(client: FlaskClient, url: str, cursor: str) -> None:
    separator = "&" if "?" in url else "?"
    response = client.get(f"{url}{separator}cursor={quote(cursor)}")
    assert response.status_code == 400, response.get_json()
    assert response.content_type == "application/problem+json"
    assert "cursor" in response.get_json()["detail"].lower()


def test_tampered_cursor_is_400(client: FlaskClient, post_cursor: str) -> None:
    payload, _, signature = post_cursor.rpartition(".")
    for index in range(0, len(payload), 3):
        replacement = "A" if payload[index] != "A" else "B"
        tampered = payload[:index] + replacement + payload[index + 1 :]
        _assert_bad_cursor(client, "/api/v1/posts", f"{tampered}.{signature}")
    _assert_bad_cursor(client, "/api/v1/posts", f"{payload}.{signature[::-1]}")


def test_truncated_cursor_is_400(client: FlaskClient, post_cursor: str) -> None:
    for length in (1, len(post_cursor) // 2, len(post_cursor) - 1):
        _assert_bad_cursor(client, "/api/v1/posts", post_cursor[:length])


def test_a_users_cursor_sent_to_posts_is_400(client: FlaskClient, writer: Session, post_cursor: str) -> None:
    make_users(writer, 3)
    users_cursor = client.get("/api/v1/users?per_page=1").get_json()["meta"]["next_cursor"]

    _assert_bad_cursor(client, "/api/v1/posts", users_cursor)
    _assert_bad_cursor(client, "/api/v1/users", post_cursor)


def test_a_cursor_is_bound_to_its_filters_and_path(
    client: FlaskClient, writer: Session, tied_posts: list[dict[str, Any]]
) -> None:
    author_id = tied_posts[0]["user_id"]
    other_id = next(item["user_id"] for item in tied_posts if item["user_id"] != author_id)
    filtered = client.get("/api/v1/posts?q=a&per_page=1").get_json()["meta"]["next_cursor"]
    nested = client.get(f"/api/v1/users/{author_id}/posts?per_page=1").get_json()["meta"]["next_cursor"]

    _assert_bad_cursor(client, "/api/v1/posts?q=b", filtered)
    _assert_bad_cursor(client, "/api/v1/posts", filtered)
    _assert_bad_cursor(client, f"/api/v1/users/{other_id}/posts", nested)
    assert client.get(f"/api/v1/posts?q=a&cursor={quote(filtered)}").status_code == 200
    assert client.get(f"/api/v1/users/{author_id}/posts?cursor={quote(nested)}").status_code == 200


def test_a_cursor_signed_with_another_secret_is_400(client: FlaskClient, app: Flask) -> None:
    with app.test_request_context("/api/v1/posts"):
        genuine = make_cursor("posts", PostReadRepository.lister, "id", (1,))
    payload = genuine.rpartition(".")[0]
    forged = URLSafeSerializer("not-the-secret", salt="cursor:posts").dumps({"s": "id", "k": [0], "f": "x"})

    _assert_bad_cursor(client, "/api/v1/posts", forged)
    assert client.get(f"/api/v1/posts?cursor={quote(genuine)}").status_code == 200
    _assert_bad_cursor(client, "/api/v1/posts", payload)


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("id", ["1"]),
        ("id", [True]),
        ("id", [1, 2]),
        ("created_at", ["yesterday"]),
        ("created_at", [12]),
        ("title", [None]),
        ("title", [3]),
    ],
)
def test_a_signed_cursor_with_a_malformed_key_is_400(
    client: FlaskClient, app: Flask, sort: str, key: list[Any]
) -> None:
    # A cursor of an older or buggy release: correctly signed, wrong content.
    with app.test_request_context("/api/v1/posts"):
        genuine = make_cursor("posts", PostReadRepository.lister, "id", (1,))
    serializer = URLSafeSerializer(app.secret_key or "", salt="cursor:posts")
    payload = serializer.loads(genuine)
    spec = f"{sort},id" if sort != "id" else "id"
    cursor = serializer.dumps({**payload, "s": spec, "k": key if sort == "id" else [*key, 1]})

    response = client.get(f"/api/v1/posts?cursor={quote(cursor)}")

    assert response.status_code == 400
    assert response.content_type == "application/problem+json"


# -- the users post_title filter (a semi-join) --------------------------------------


def test_post_title_filter_lists_each_matching_user_once(client: FlaskClient, writer: Session) -> None:
    prolific, single, none = make_users(writer, 3)
    [deleted_only] = make_users(writer, 1, hashed_password=known_password_hash())
    make_posts(writer, [prolific], 5, titles=["Engine notes", "ENGINE design", "Engines"])
    make_posts(writer, [single], 2, titles=["On the engine", "Poetry"])
    make_posts(writer, [none], 2, titles=["Poetry"])
    gone = make_posts(writer, [deleted_only], 1, titles=["Engine"])
    # Its author deletes it.
    writing = {**sign_in(client, deleted_only.email, KNOWN_PASSWORD), "If-Match": f'"{gone[0].version}"'}
    assert client.delete(f"/api/v1/posts/{gone[0].id}", headers=writing).status_code == 204

    body = client.get("/api/v1/users?post_title=engine&per_page=1").get_json()
    visited = walk(client, "/api/v1/users?post_title=engine", 1)

    assert body["meta"]["total"] == 2
    assert [user["id"] for user in visited] == [prolific.id, single.id]


def test_post_title_filter_treats_wildcards_literally_and_combines(
    client: FlaskClient, writer: Session, admin_user: CreatedUser
) -> None:
    percent, other = make_users(writer, 2)
    make_posts(writer, [percent], 1, titles=["100% done"])
    make_posts(writer, [other], 1, titles=["100 done"])

    def ids(query: str) -> list[int]:
        # As an admin: the email filter is theirs only (the admin has no posts to match).
        response = client.get(f"/api/v1/users?{query}", headers=admin_user.auth)
        return [user["id"] for user in response.get_json()["items"]]

    assert ids("post_title=%25") == [percent.id]
    assert ids("post_title=done&sort=-id") == [other.id, percent.id]
    assert ids(f"post_title=done&email={other.email}") == [other.id]


# -- cost: a constant number of statements -------------------------------------------


def _statements(client: FlaskClient, database: Database, url: str) -> int:
    with count_statements(database) as log:
        response = client.get(url)
    assert response.status_code == 200, response.get_json()
    return log.count


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", 2), ("?sort=-created_at&per_page=100", 2), ("?sort=title&per_page=100&cursor=", 1)],
)
def test_a_posts_list_costs_the_same_statements_for_1_and_100_items(
    client: FlaskClient, database: Database, writer: Session, query: str, expected: int
) -> None:
    # Every post by a different author: a lazy author load would show as 100 more.
    make_posts(writer, make_users(writer, 1), 1)

    def url() -> str:
        if not query.endswith("cursor="):
            return f"/api/v1/posts{query}"
        # A cursor before every row: the first page in cursor mode.
        with client.application.test_request_context("/api/v1/posts?sort=title&per_page=100"):
            cursor = make_cursor("posts", PostReadRepository.lister, "title,id", ("", 0))
        return f"/api/v1/posts{query}{quote(cursor)}"

    with_one = _statements(client, database, url())
    make_posts(writer, make_users(writer, 120), 120)
    with_many = _statements(client, database, url())
    listed = client.get(url()).get_json()["items"]

    assert len(listed) in (20, 100)
    assert all(item["author"]["full_name"] for item in listed)
    assert with_one == with_many == expected


def test_a_users_posts_list_costs_the_same_statements_for_1_and_100_items(
    client: FlaskClient, database: Database, writer: Session
) -> None:
    (author,) = make_users(writer, 1)
    make_posts(writer, [author], 1)
    url = f"/api/v1/users/{author.id}/posts?per_page=100"

    with_one = _statements(client, database, url)
    make_posts(writer, [author], 120)
    with_many = _statements(client, database, url)

    # The user's existence check, the COUNT and the page.
    assert with_one == with_many == 3


@pytest.mark.parametrize("query", ["per_page=100", "per_page=100&sort=-full_name&post_title=post"])
def test_a_users_list_costs_the_same_statements_for_1_and_100_items(
    client: FlaskClient, database: Database, writer: Session, query: str
) -> None:
    make_posts(writer, make_users(writer, 1), 1)
    with_one = _statements(client, database, f"/api/v1/users?{query}")
    make_posts(writer, make_users(writer, 120), 120)

    with_many = _statements(client, database, f"/api/v1/users?{query}")
    first = client.get(f"/api/v1/users?{query}").get_json()
    cursor = quote(first["meta"]["next_cursor"])
    in_cursor_mode = _statements(client, database, f"/api/v1/users?{query}&cursor={cursor}")

    assert first["meta"]["total"] == 121
    assert len(first["items"]) == 100
    assert with_one == with_many == 2
    assert in_cursor_mode == 1


# -- Link: rel="next" ---------------------------------------------------------------

_LINK_NEXT = re.compile(r'^<(/[^>]*)>; rel="next"$')


def walk_links(client: FlaskClient, url: str) -> list[dict[str, Any]]:
    """Every item of a list, following only the Link header, as a generic HTTP client would."""
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    for _ in range(1000):
        if next_url is None:
            return items
        response = client.get(next_url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        items.extend(body["items"])
        link = response.headers.get("Link")
        assert (link is None) == (body["meta"]["next_cursor"] is None)
        if link is None:
            return items
        match = _LINK_NEXT.match(link)
        assert match, link
        next_url = match.group(1)
    raise AssertionError("the walk did not end")


def test_following_the_link_header_walks_every_post_once_in_order(
    tied_posts: list[dict[str, Any]], client: FlaskClient
) -> None:
    walked = walk_links(client, "/api/v1/posts?sort=title,-created_at&per_page=4&page=1")

    assert [post["id"] for post in walked] == [
        post["id"] for post in _ordered(tied_posts, "title,-created_at")
    ]


def test_the_link_keeps_filters_and_encodes_them(writer: Session, client: FlaskClient) -> None:
    authors = make_users(writer, 1)
    make_posts(writer, authors, 7, titles=["a & b; <c>, d+e"], created=TIMESTAMPS)
    url = f"/api/v1/users/{authors[0].id}/posts?q={quote('&', safe='')}+b%3B&per_page=2"

    walked = walk_links(client, url)

    assert len(walked) == 7
    link = client.get(url).headers["Link"]
    path, query = _LINK_NEXT.match(link).group(1).split("?", 1)  # type: ignore[union-attr]
    assert path == f"/api/v1/users/{authors[0].id}/posts"
    assert parse_qs(query)["q"] == ["& b;"]
    assert parse_qs(query)["per_page"] == ["2"]
    assert not {" ", ";", ",", "<", ">"} & set(query)


def test_the_last_page_has_no_link(writer: Session, client: FlaskClient) -> None:
    make_posts(writer, make_users(writer, 1), 3, titles=TITLES, created=TIMESTAMPS)

    response = client.get("/api/v1/posts?per_page=3")

    assert response.get_json()["meta"]["next_cursor"] is None
    assert "Link" not in response.headers
