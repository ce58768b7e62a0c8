"""A consumer's program against the client generated from /openapi.json: type-checked, then run.

Sign-up is open; every other write goes through an AuthenticatedClient with the token
that create_token answers.
"""

from __future__ import annotations

import sys
from http import HTTPStatus

from webapp_client import AuthenticatedClient, Client
from webapp_client.api.comments import create_comment, list_post_comments
from webapp_client.api.health import get_health
from webapp_client.api.posts import create_user_post, get_post
from webapp_client.api.tokens import create_token, delete_current_token
from webapp_client.api.users import (
    bulk_create_users,
    create_user,
    delete_user,
    get_user,
    list_users,
    update_user,
)
from webapp_client.models import (
    CommentCreate,
    Problem,
    Token,
    TokenCreate,
    User,
    UserBulkCreate,
    UserCreate,
    UserPostCreate,
    UserUpdate,
)
from webapp_client.types import UNSET


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"client-check failed: {what}")


def main(base_url: str) -> None:  # noqa: PLR0915 -- one consumer's session, read top to bottom
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

    signed_in = create_token.sync(
        client=client, body=TokenCreate(email="ada@example.com", password="pass-word-1")
    )
    check(isinstance(signed_in, Token) and signed_in.token_type == "Bearer", "create_token")
    assert isinstance(signed_in, Token)
    ada = AuthenticatedClient(
        base_url=client._base_url, token=signed_in.token, raise_on_unexpected_status=True
    )

    fetched = get_user.sync(user.id, client=client)
    check(isinstance(fetched, User) and fetched.full_name == "Ada Lovelace", "get_user")
    unchanged = get_user.sync_detailed(user.id, client=client, if_none_match=etag)
    check(unchanged.status_code == HTTPStatus.NOT_MODIFIED and unchanged.parsed is None, "304")

    mine = get_user.sync(user.id, client=ada)
    check(isinstance(mine, User) and mine.email == "ada@example.com", "the owner sees the email")
    check(isinstance(fetched, User) and isinstance(fetched.email, type(UNSET)), "others do not")

    for n in range(5):
        body = UserCreate(email=f"user{n}@example.com", full_name=f"User {n}", password="pass-word-1")
        check(isinstance(create_user.sync(client=client, body=body), User), f"create_user {n}")
    more = [UserCreate(email="bulk@example.com", full_name="Bulk", password="pass-word-1")]
    bulk = bulk_create_users.sync(client=ada, body=UserBulkCreate(items=more))
    check(isinstance(bulk, Problem) and bulk.type_ == "/problems/forbidden", "bulk create is for admins")

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

    # A write with the anonymous client does not type-check: the document says it needs a token.
    changed = update_user.sync_detailed(
        user.id, client=ada, body=UserUpdate(full_name="Ada King"), if_match=etag
    )
    check(isinstance(changed.parsed, User) and changed.parsed.version == 2, "update_user with If-Match")
    stale = update_user.sync(user.id, client=ada, body=UserUpdate(full_name="Late"), if_match=etag)
    check(isinstance(stale, Problem) and stale.type_ == "/problems/precondition-failed", "412 problem type")

    post = create_user_post.sync(
        user.id, client=ada, body=UserPostCreate(title="Notes", content="On the Engine")
    )
    check(post is not None and not isinstance(post, Problem), "create_user_post")
    assert post is not None
    assert not isinstance(post, Problem)
    again = get_post.sync(post.id, client=client)
    check(
        not isinstance(again, Problem) and again is not None and again.author.full_name == "Ada King",
        "author",
    )
    comment = create_comment.sync(post.id, client=ada, body=CommentCreate(body="Nice."))
    check(comment is not None and not isinstance(comment, Problem), "create_comment")
    comments = list_post_comments.sync(post.id, client=client)
    check(comments is not None and not isinstance(comments, Problem) and len(comments.items) == 1, "comments")

    gone = delete_user.sync_detailed(user.id, client=ada, if_match=changed.headers["ETag"])
    check(gone.status_code == HTTPStatus.NO_CONTENT, "delete_user")
    revoked = delete_current_token.sync_detailed(client=ada)
    check(revoked.status_code == HTTPStatus.UNAUTHORIZED, "a deleted user's token is dead")
    check(isinstance(get_user.sync(user.id, client=client), Problem), "deleted user is a 404 problem")
    print(f"client-check: {len(seen)} users listed, every call typed and answered as documented")


if __name__ == "__main__":
    main(sys.argv[1])
