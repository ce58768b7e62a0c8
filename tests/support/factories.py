"""Rows written straight through the ORM, for tests that need many of them quickly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import count
from typing import Any

from sqlalchemy.orm import Session

from webapp.resources.posts.model import Post
from webapp.resources.users.model import User

_numbers = count(1)


def make_users(session: Session, number: int, **fields: Any) -> list[User]:
    """``number`` live users (one INSERT batch); ``fields`` override the defaults."""
    users = []
    for _ in range(number):
        n = next(_numbers)
        values = {"email": f"seed{n}@example.com", "full_name": f"Seed {n}", "hashed_password": "x"}
        users.append(User(**{**values, **fields}))
    session.add_all(users)
    session.commit()
    return users


def make_posts(
    session: Session,
    authors: Sequence[User],
    number: int,
    *,
    titles: Sequence[str] | None = None,
    created: Sequence[datetime] | None = None,
) -> list[Post]:
    """``number`` posts, authors taken in turn; titles and created_at cycle when given."""
    posts = []
    for index in range(number):
        post = Post(
            user_id=authors[index % len(authors)].id,
            title=titles[index % len(titles)] if titles else f"Post {index}",
            content=f"Body {index}",
        )
        if created:
            post.created_at = created[index % len(created)]
        posts.append(post)
    session.add_all(posts)
    session.commit()
    return posts
