"""Demo data for ``flask seed``: realistic users and posts, bulk-inserted in one unit of work."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webapp.core.db import unit_of_work
from webapp.core.db.mixins import utcnow
from webapp.core.observability import sql_stats_scope
from webapp.demo.data import DemoData, DemoUser
from webapp.resources.posts.repository import PostRepository
from webapp.resources.users.repository import UserRepository

DEMO_PASSWORD = "demo-password"


class EmailsExhausted(Exception):
    """Every generated address was taken, try after try."""


@dataclass(frozen=True)
class SeedResult:
    users: int
    posts: int
    seconds: float
    statements: int
    sql_seconds: float
    # One seeded user's email: with the demo password, a login to try the API with.
    demo_email: str | None = None


def seed(
    user_count: int,
    posts_per_user: int,
    *,
    hashed_password: str,
    random_seed: int | None = None,
    batch_size: int = 1000,
    on_batch: Callable[[int], None] | None = None,
) -> SeedResult:
    """Insert demo users and their posts: all of them are committed, or none.

    ``hashed_password`` is computed once by the caller and shared by every demo user:
    scrypt costs ~50 ms a hash, so 10,000 distinct hashes would take minutes.
    """
    started = time.perf_counter()
    demo = DemoData(random_seed, now=utcnow())
    posts_written = 0
    demo_email: str | None = None
    with sql_stats_scope(warn_slow=False) as stats, unit_of_work() as uow:
        users, posts_repository = UserRepository(uow.session), PostRepository(uow.session)
        for first in range(0, user_count, batch_size):
            people = [demo.user() for _ in range(min(batch_size, user_count - first))]
            emails = _free_emails(users, demo, people, first_number=first + 1)
            user_ids = users.bulk_insert_rows(_user_rows(people, emails, hashed_password))
            demo_email = demo_email or (emails[0] if emails else None)
            posts = [
                _post_row(user_id, demo, person)
                for user_id, person in zip(user_ids, people, strict=True)
                for _ in range(posts_per_user)
            ]
            posts_repository.bulk_insert_rows_without_ids(posts)
            posts_written += len(posts)
            if on_batch is not None:
                on_batch(len(people))
    return SeedResult(
        users=user_count,
        posts=posts_written,
        seconds=time.perf_counter() - started,
        statements=stats.count,
        sql_seconds=stats.seconds,
        demo_email=demo_email,
    )


# Plain rows, not objects: the repositories' bulk insert skips the per-object bookkeeping
# that made add_all cost 3x the CPU. Timestamps are the demo's (backdated), not now.
def _user_rows(people: list[DemoUser], emails: list[str], hashed_password: str) -> list[dict[str, Any]]:
    return [
        {
            "email": email,
            "full_name": person.full_name,
            "hashed_password": hashed_password,
            "is_active": True,
            "created_at": person.created_at,
            "updated_at": person.created_at,
        }
        for person, email in zip(people, emails, strict=True)
    ]


def _post_row(user_id: int, demo: DemoData, author: DemoUser) -> dict[str, Any]:
    post = demo.post(author)
    return {
        "user_id": user_id,
        "title": post.title,
        "content": post.content,
        "created_at": post.created_at,
        "updated_at": post.created_at,
    }


def _free_emails(
    users: UserRepository, demo: DemoData, people: list[DemoUser], first_number: int
) -> list[str]:
    """Addresses no live user has (unique index on lower(email)): one query per try."""
    emails = [demo.email(person, first_number + index) for index, person in enumerate(people)]
    for _ in range(5):
        taken = users.emails_taken(emails)
        if not taken:
            return emails
        # An earlier seed (or a real user) has the address: a random tag makes it new.
        tag = "." + secrets.token_hex(3)
        emails = [
            demo.email(person, first_number + index, tag) if email in taken else email
            for index, (person, email) in enumerate(zip(people, emails, strict=True))
        ]
    raise EmailsExhausted("no free demo email addresses after 5 tries")
