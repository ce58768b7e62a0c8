"""Demo data: plausible, valid for the API's schemas, and reproducible by seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from webapp.demo.data import DemoData, ascii_slug
from webapp.resources.users.schemas import UserCreateSchema

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_the_same_seed_gives_the_same_people_and_posts() -> None:
    first, second = DemoData(42, now=NOW), DemoData(42, now=NOW)

    people = [first.user() for _ in range(5)], [second.user() for _ in range(5)]
    posts = [first.post(people[0][0]) for _ in range(3)], [second.post(people[1][0]) for _ in range(3)]

    assert people[0] == people[1]
    assert posts[0] == posts[1]


def test_names_become_ascii_email_slugs() -> None:
    assert ascii_slug("Zoë") == "zoe"
    assert ascii_slug("O'Brien") == "obrien"
    assert ascii_slug("van Rossum") == "vanrossum"
    assert ascii_slug("Fernández") == "fernandez"


def test_generated_users_pass_the_apis_own_validation() -> None:
    demo = DemoData(1, now=NOW)
    schema = UserCreateSchema()

    for number in range(1, 200):
        person = demo.user()
        email = demo.email(person, number, tag=".a1b2c3" if number % 2 else "")
        loaded = schema.load({"email": email, "full_name": person.full_name, "password": "demo-password"})
        assert loaded["email"] == email  # already normalised: lower case, no spaces


def test_posts_are_written_after_their_author_joined_and_not_in_the_future() -> None:
    demo = DemoData(5, now=NOW, history_days=30)

    for _ in range(100):
        author = demo.user()
        post = demo.post(author)
        assert NOW - timedelta(days=30) <= author.created_at <= post.created_at <= NOW
        assert 1 <= len(post.title) <= 200
        assert post.content.count("\n\n") <= 3
