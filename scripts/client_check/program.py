"""A consumer's program against the client generated from /openapi.json: type-checked, then run.

When writes need a bearer token, build an AuthenticatedClient(base_url, token=...) in main().
"""

from __future__ import annotations

import sys
from http import HTTPStatus

from webapp_client import Client
from webapp_client.api.health import get_health
from webapp_client.api.posts import create_user_post, get_post
from webapp_client.api.users import (
    bulk_create_users,
    create_user,
    delete_user,
    get_user,
    list_users,
    update_user,
)
from webapp_client.models import Problem, User, UserBulkCreate, UserCreate, UserPostCreate, UserUpdate
from webapp_client.types import UNSET


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"client-check failed: {what}")


def main(base_url: str) -> None:
    client = Client(base_url=base_url, raise_on_unexpected_status=True)

    health = get_health.sync(client=client)
    check(health is not None and health.status == "ok", "health")

    created = create_user.sync_detailed(
        client=client,
        body=UserCreate(email="Ada@Example.com", full_name="Ada Lovelace", password="pass-word-1"),
    )
    user = created.parsed
    check(created.status_code == HTTPStatus.CREATED and isinstance(user, User), "create_user")
    assert isinstance(user, User)
    etag = created.headers["ETag"]
    check(user.email == "ada@example.com" and user.version == 1, "email normalised, version 1")

    fetched = get_user.sync(user.id, client=client)
    check(isinstance(fetched, User) and fetched.full_name == "Ada Lovelace", "get_user")
    unchanged = get_user.sync_detailed(user.id, client=client, if_none_match=etag)
    check(unchanged.status_code == HTTPStatus.NOT_MODIFIED and unchanged.parsed is None, "304")

    more = [
        UserCreate(email=f"user{n}@example.com", full_name=f"User {n}", password="pass-word-1")
        for n in range(5)
    ]
    bulk = bulk_create_users.sync(client=client, body=UserBulkCreate(items=more))
    check(not isinstance(bulk, Problem) and bulk is not None and len(bulk.items) == 5, "bulk_create_users")

    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = list_users.sync(client=client, per_page=2, sort="id", cursor=cursor if cursor else UNSET)
        check(page is not None and not isinstance(page, Problem), "list_users")
        assert page is not None
        assert not isinstance(page, Problem)
        seen.extend(item.id for item in page.items)
        if page.meta.next_cursor is None:
            break
        cursor = page.meta.next_cursor
    check(seen == sorted(seen) and len(seen) == 6, f"walked every user once: {seen}")

    changed = update_user.sync_detailed(
        user.id, client=client, body=UserUpdate(full_name="Ada King"), if_match=etag
    )
    check(isinstance(changed.parsed, User) and changed.parsed.version == 2, "update_user with If-Match")
    stale = update_user.sync(user.id, client=client, body=UserUpdate(full_name="Late"), if_match=etag)
    check(isinstance(stale, Problem) and stale.type_ == "/problems/precondition-failed", "412 problem type")

    post = create_user_post.sync(
        user.id, client=client, body=UserPostCreate(title="Notes", content="On the Engine")
    )
    check(post is not None and not isinstance(post, Problem), "create_user_post")
    assert post is not None
    assert not isinstance(post, Problem)
    again = get_post.sync(post.id, client=client)
    check(
        not isinstance(again, Problem) and again is not None and again.author.full_name == "Ada King",
        "author",
    )

    gone = delete_user.sync_detailed(user.id, client=client, if_match=changed.headers["ETag"])
    check(gone.status_code == HTTPStatus.NO_CONTENT, "delete_user")
    check(isinstance(get_user.sync(user.id, client=client), Problem), "deleted user is a 404 problem")
    print(f"client-check: {len(seen)} users listed, every call typed and answered as documented")


if __name__ == "__main__":
    main(sys.argv[1])
