"""flask seed: realistic demo data, in one transaction, never colliding with real users."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import make_app
from webapp.core.passwords import verify_password
from webapp.demo.data import DemoData
from webapp.demo.seeding import DEMO_PASSWORD, seed
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User


def _count(session: Session, model: type[User] | type[Post]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_seeding_a_database_that_was_never_migrated_says_to_migrate_first(tmp_path: Path) -> None:
    fresh = make_app(f"sqlite:///{tmp_path / 'fresh.db'}")

    with fresh.app_context():  # over the suite's own, which the command would otherwise use
        result = fresh.test_cli_runner().invoke(args=["seed", "--users", "1"])

    fresh.extensions["database"].dispose()
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "db-upgrade" in result.output
    assert "Traceback" not in result.output


def test_seed_creates_users_each_with_their_posts(app: Flask, db_session: Session) -> None:
    result = app.test_cli_runner().invoke(
        args=["seed", "--users", "25", "--posts-per-user", "3", "--batch-size", "10"]
    )

    assert result.exit_code == 0, result.output
    assert "Created 25 users and 75 posts" in result.output
    assert _count(db_session, User) == 25
    posts_per_author = db_session.execute(select(Post.user_id, func.count()).group_by(Post.user_id)).all()
    assert len(posts_per_author) == 25
    assert {count for _, count in posts_per_author} == {3}


def test_seeded_rows_look_like_what_the_api_writes(app: Flask, db_session: Session) -> None:
    assert app.test_cli_runner().invoke(args=["seed", "--users", "5", "--posts-per-user", "2"]).exit_code == 0

    users = list(db_session.scalars(select(User)))
    assert all(user.email == user.email.lower() and user.email.isascii() for user in users)
    assert all(" " in user.full_name for user in users)
    assert all(user.version == 1 and user.is_active and user.deleted_at is None for user in users)
    posts = list(db_session.scalars(select(Post)))
    assert all(post.title and len(post.title) <= 200 and post.content for post in posts)
    authors = {user.id: user for user in users}
    assert all(post.created_at >= authors[post.user_id].created_at for post in posts)


def test_every_demo_user_shares_one_hash_of_the_demo_password(app: Flask, db_session: Session) -> None:
    assert app.test_cli_runner().invoke(args=["seed", "--users", "4", "--posts-per-user", "0"]).exit_code == 0

    hashes = set(db_session.scalars(select(User.hashed_password)))
    assert len(hashes) == 1
    assert verify_password(hashes.pop(), DEMO_PASSWORD)


def test_seeded_users_are_served_by_the_api(app: Flask, client: FlaskClient) -> None:
    assert (
        app.test_cli_runner().invoke(args=["seed", "--users", "30", "--posts-per-user", "1"]).exit_code == 0
    )

    body = client.get("/api/v1/users?per_page=5").get_json()

    assert body["meta"]["total"] == 30
    assert len(body["items"]) == 5


def test_seed_never_takes_the_email_of_an_existing_user(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    # The address the seed would give its first user, taken beforehand (in another case).
    demo = DemoData(3, now=datetime.now(UTC))
    taken = demo.email(demo.user(), 1)
    response = client.post(
        "/api/v1/users", json={"email": taken.upper(), "full_name": "Real Person", "password": "password123"}
    )
    assert response.status_code == 201

    result = app.test_cli_runner().invoke(
        args=["seed", "--users", "3", "--posts-per-user", "0", "--seed", "3"]
    )

    assert result.exit_code == 0, result.output
    assert _count(db_session, User) == 4
    assert db_session.scalar(select(func.count()).where(func.lower(User.email) == taken)) == 1


def test_seeding_twice_with_the_same_seed_adds_new_users(app: Flask, db_session: Session) -> None:
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["seed", "--users", "6", "--posts-per-user", "1", "--seed", "9"])
        assert result.exit_code == 0, result.output

    emails = list(db_session.scalars(select(User.email)))
    assert len(emails) == len(set(emails)) == 12


def test_a_seed_that_fails_midway_writes_nothing(app: Flask, db_session: Session) -> None:
    batches: list[int] = []

    def fail_after_first_batch(size: int) -> None:
        batches.append(size)
        if len(batches) == 2:
            raise RuntimeError("interrupted")

    with app.app_context(), pytest.raises(RuntimeError, match="interrupted"):
        seed(30, 2, hashed_password="x", batch_size=10, on_batch=fail_after_first_batch)

    assert batches == [10, 10]
    assert _count(db_session, User) == 0
    assert _count(db_session, Post) == 0


def test_a_password_shorter_than_the_apis_minimum_is_refused(app: Flask, db_session: Session) -> None:
    result = app.test_cli_runner().invoke(args=["seed", "--users", "1", "--password", "short"])

    assert result.exit_code == 2
    assert "--password" in result.output
    assert _count(db_session, User) == 0


def test_the_printed_demo_login_signs_in(app: Flask, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["seed", "--users", "3", "--posts-per-user", "1"])
    line = next(line for line in result.output.splitlines() if line.startswith("Demo login: "))
    email, password = line.removeprefix("Demo login: ").split(" (")[0].split(" / ")

    response = client.post("/api/v1/tokens", json={"email": email, "password": password})

    assert response.status_code == 201
    assert password == DEMO_PASSWORD
