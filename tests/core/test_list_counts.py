"""Counting and depth: totals exact up to LIST_COUNT_CAP, offset pages that end there,
cursors that go on, and searches that find the same users whichever plan serves them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from config import Config
from tests.core.test_lists import walk
from tests.support.factories import make_posts, make_users
from tests.support.statements import count_statements
from webapp.resources.users.repository import POST_TITLE_HITS

CAP = 5


@pytest.fixture
def capped(make_own_app: Callable[..., Flask]) -> Flask:
    """The app with a count cap small enough to cross in a test."""
    return make_own_app(LIST_COUNT_CAP=CAP)


def _meta(client: FlaskClient, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, response.get_json()
    meta: dict[str, Any] = response.get_json()["meta"]
    return meta


@pytest.mark.parametrize(("posts", "total", "capped_total"), [(CAP - 1, CAP - 1, False), (CAP, CAP, False)])
def test_a_total_up_to_the_cap_is_exact(
    capped: Flask, writer: Session, posts: int, total: int, capped_total: bool
) -> None:
    make_posts(writer, make_users(writer, 1), posts)

    meta = _meta(capped.test_client(), "/api/v1/posts")

    assert (meta["total"], meta["total_capped"]) == (total, capped_total)


@pytest.mark.parametrize("posts", [CAP + 1, CAP + 7])
def test_a_total_beyond_the_cap_is_the_cap_and_says_so(capped: Flask, writer: Session, posts: int) -> None:
    make_posts(writer, make_users(writer, 1), posts)

    meta = _meta(capped.test_client(), "/api/v1/posts")

    assert (meta["total"], meta["total_capped"]) == (CAP, True)


def test_filtered_and_nested_lists_cap_their_totals_too(capped: Flask, writer: Session) -> None:
    (author,) = make_users(writer, 1)
    make_posts(writer, [author], CAP + 2, titles=["engine"])
    client = capped.test_client()

    assert _meta(client, "/api/v1/posts?q=engine")["total_capped"] is True
    assert _meta(client, f"/api/v1/users/{author.id}/posts")["total"] == CAP
    assert _meta(client, "/api/v1/users?post_title=engine")["total_capped"] is False


def test_the_default_cap_is_ten_thousand(client: FlaskClient, writer: Session) -> None:
    make_posts(writer, make_users(writer, 1), 3)

    meta = _meta(client, "/api/v1/posts")

    assert client.application.config["LIST_COUNT_CAP"] == 10_000
    assert (meta["total"], meta["total_capped"]) == (3, False)


def test_cursor_pages_have_no_total_and_no_cap(capped: Flask, writer: Session) -> None:
    make_posts(writer, make_users(writer, 1), CAP * 3)
    client = capped.test_client()
    first = client.get("/api/v1/posts?per_page=2").get_json()

    meta = _meta(client, f"/api/v1/posts?per_page=2&cursor={quote(first['meta']['next_cursor'])}")
    every_post = walk(client, "/api/v1/posts", 2)

    assert (meta["page"], meta["total"], meta["total_capped"]) == (None, None, None)
    assert len(every_post) == CAP * 3  # past the cap, to the end


def test_an_offset_page_may_start_at_the_last_counted_row(capped: Flask, writer: Session) -> None:
    make_posts(writer, make_users(writer, 1), CAP * 3)

    # per_page=2: page 3 starts at row 5, the cap.
    body = capped.test_client().get(f"/api/v1/posts?per_page=2&page={CAP // 2 + 1}").get_json()

    assert len(body["items"]) == 2
    assert body["meta"]["next_cursor"] is not None


@pytest.mark.parametrize("posts", [0, CAP * 3])
def test_an_offset_page_past_the_cap_is_a_400_pointing_to_cursors(
    capped: Flask, writer: Session, posts: int
) -> None:
    if posts:
        make_posts(writer, make_users(writer, 1), posts)
    client = capped.test_client()

    with count_statements(capped.extensions["database"]) as log:
        response = client.get("/api/v1/posts?per_page=2&page=4")  # starts at row 7

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"].endswith("/problems/page-beyond-count")
    assert "next_cursor" in problem["detail"]
    assert log.count == 0  # refused before reading anything


def test_an_offset_past_the_default_cap_is_refused_on_every_list(client: FlaskClient) -> None:
    for path in ("/api/v1/posts", "/api/v1/users", "/api/v1/users/1/posts", "/api/v1/posts/1/comments"):
        response = client.get(f"{path}?per_page=100&page=101")

        assert response.status_code == 400, path
        assert response.get_json()["type"].endswith("/problems/page-beyond-count")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/api/v1/posts", 2),
        ("/api/v1/posts?q=engine&sort=-created_at", 2),
        ("/api/v1/users?post_title=engine", 2),
    ],
)
def test_a_capped_count_is_still_one_statement(
    capped: Flask, writer: Session, url: str, expected: int
) -> None:
    make_posts(writer, make_users(writer, CAP + 2), CAP * 3, titles=["engine"])
    client = capped.test_client()
    client.get(url)  # the app's engines exist from its first request on

    with count_statements(capped.extensions["database"]) as log:
        meta = _meta(client, url)

    assert meta["total_capped"] is True
    assert log.count == expected


def _count_plan(app: Flask, url: str, *settings: str) -> dict[str, Any]:
    """The executed plan (EXPLAIN ANALYZE) of the count statement that ``url`` sends, run
    after ``settings`` (``SET LOCAL ...``) in the same transaction."""
    database = app.extensions["database"]
    captured: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        captured.append((statement, parameters))

    client = app.test_client()
    client.get(url)  # the engines exist once a request has run
    for engine in database.engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        assert _meta(client, url)["total_capped"] is True
    finally:
        for engine in database.engines:
            event.remove(engine, "before_cursor_execute", record)
    (statement, parameters), _page = captured  # an offset page counts first
    with database.engine.connect() as connection:
        for setting in settings:
            connection.exec_driver_sql(setting)
        plan: dict[str, Any] = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters
        ).scalar_one()[0]["Plan"]
        connection.rollback()
    return plan


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(found for child in node.get("Plans", []) for found in _nodes(child))]


def _rows_read(node: dict[str, Any]) -> int:
    """The rows a scan node passed up, over all its executions."""
    return int(node["Actual Rows"]) * int(node["Actual Loops"])


@pytest.mark.postgres_only(reason="reads the plan's row counts")
@pytest.mark.parametrize("url", ["/api/v1/posts", "/api/v1/posts?q=engine"])
def test_the_count_reads_at_most_the_cap_and_one_rows(capped: Flask, writer: Session, url: str) -> None:
    make_posts(writer, make_users(writer, 1), CAP * 20, titles=["Steam engine", "Loom"])

    plan = _count_plan(capped, url)

    # A bitmap index scan passes up no rows but the addresses of every candidate: the
    # table rows are read by the bitmap heap scan above it, which the LIMIT stops.
    scans = [node for node in _nodes(plan) if "Scan" in node["Node Type"]]
    rows = [_rows_read(node) for node in scans if node["Node Type"] != "Bitmap Index Scan"]
    assert rows
    assert max(rows) <= CAP + 1


# -- post_title: the same users whichever way they are found ----------------------------


def _expected_users(matching: list[Any], spec: str) -> list[int]:
    descending = spec.startswith("-")
    name = spec.lstrip("-")
    ordered = sorted(matching, key=lambda user: (getattr(user, name), user.id), reverse=descending)
    return [user.id for user in ordered]


@pytest.mark.parametrize("matches", [3, POST_TITLE_HITS + 5])
@pytest.mark.parametrize("sort", ["id", "-full_name"])
def test_post_title_lists_the_same_users_with_few_or_many_matching_posts(
    client: FlaskClient, writer: Session, matches: int, sort: str
) -> None:
    authors = make_users(writer, 40)
    for index, author in enumerate(authors):
        author.full_name = f"Author {index % 7}"  # ties, broken by the id
    writer.commit()
    # Every third author writes the matching posts, in turn; everyone writes others; one
    # author's only match comes last, beyond the first POST_TITLE_HITS of them.
    *writers, late = authors[1::3][:matches]
    make_posts(writer, writers, matches - 1, titles=["Steam engine", "ENGINES"])
    make_posts(writer, authors, 60, titles=["poetry"])
    make_posts(writer, [late], 1, titles=["engine"])
    expected = _expected_users([*writers, late], sort)

    by_cursor = walk(client, f"/api/v1/users?post_title=engine&sort={sort}", 4)
    page_two = client.get(f"/api/v1/users?post_title=engine&sort={sort}&per_page=4&page=2").get_json()

    assert [user["id"] for user in by_cursor] == expected
    assert [user["id"] for user in page_two["items"]] == expected[4:8]
    assert page_two["meta"]["total"] == len(expected)


@pytest.mark.parametrize("matches", [3, POST_TITLE_HITS + 5])
def test_post_title_keeps_the_other_filters(
    client: FlaskClient, writer: Session, matches: int, admin_user: Any
) -> None:
    authors = make_users(writer, 6)
    make_posts(writer, authors, matches, titles=["engine"])
    wanted = authors[2]

    body = client.get(
        f"/api/v1/users?post_title=engine&email={wanted.email}", headers=admin_user.auth
    ).get_json()

    assert [user["id"] for user in body["items"]] == [wanted.id]
    assert body["meta"]["total"] == 1


def _post_title_shape(writer: Session, shape: str) -> int:
    """Users and more than POST_TITLE_HITS posts titled "engine", written by users in one of
    three shapes; how many users wrote them."""
    matching_posts = POST_TITLE_HITS + 40
    if shape == "spread":  # most users have a match: the count walks users to the cap
        authors = make_users(writer, 30)
        make_users(writer, 6)
    elif shape == "concentrated":  # a few prolific users among many: the count joins the posts
        authors = make_users(writer, 2)
        make_users(writer, 40)
    else:  # every user has a match, but fewer users than the cap: the join, again
        authors = make_users(writer, CAP - 2)
    make_posts(writer, authors, matching_posts, titles=["Steam engine", "ENGINES"])
    return len(authors)


@pytest.mark.parametrize("shape", ["spread", "concentrated", "few_users"])
def test_post_title_totals_are_exact_up_to_the_cap_whichever_way_they_are_counted(
    capped: Flask, writer: Session, shape: str
) -> None:
    authors = _post_title_shape(writer, shape)
    client = capped.test_client()

    meta = _meta(client, "/api/v1/users?post_title=engine")
    every_author = walk(client, "/api/v1/users?post_title=engine", 7)

    assert (meta["total"], meta["total_capped"]) == (min(authors, CAP), authors > CAP)
    assert len(every_author) == authors


def test_a_common_post_title_is_counted_under_a_cap_beyond_32_bit_arithmetic(
    make_own_app: Callable[..., Flask], writer: Session
) -> None:
    # The walk's test multiplies the cap: PostgreSQL types a literal below 2**31 as a
    # 32-bit integer, and the product must not overflow it.
    app = make_own_app(LIST_COUNT_CAP=1_000_000_000)
    authors = _post_title_shape(writer, "spread")

    meta = _meta(app.test_client(), "/api/v1/users?post_title=engine")

    assert (meta["total"], meta["total_capped"]) == (authors, False)


@pytest.mark.postgres_only(reason="reads the plan's row counts")
def test_a_common_post_title_is_counted_to_the_cap_without_reading_every_match(
    capped: Flask, writer: Session
) -> None:
    matching_posts = POST_TITLE_HITS + 40
    _post_title_shape(writer, "spread")

    # Joins by nested loop stop at each user's first match as the walk does; at this size
    # PostgreSQL may choose one, at a million posts it hashes every match (or merges
    # through a prolific author's posts). Without them, only the walk stops early.
    plan = _count_plan(
        capped,
        "/api/v1/users?post_title=engine",
        "SET LOCAL enable_nestloop = off",
        "SET LOCAL enable_mergejoin = off",
    )

    # The first POST_TITLE_HITS + 1 matching posts (to tell a common word from a rare one),
    # then at most one post per user checked: never every matching post, as a join would.
    hits, *checks = sorted(
        (node for node in _nodes(plan) if node.get("Relation Name") == "posts" and node["Actual Loops"]),
        key=_rows_read,
        reverse=True,
    )
    assert _rows_read(hits) == POST_TITLE_HITS + 1 < matching_posts
    assert checks
    assert all(node["Actual Rows"] <= 1 for node in checks)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_count_cap_below_one_is_refused_at_startup(value: str) -> None:
    with pytest.raises(ValueError, match="LIST_COUNT_CAP must be at least 1"):
        Config({"LIST_COUNT_CAP": value})
