"""Optimistic concurrency rules shared by every versioned resource (users, posts)."""

from __future__ import annotations

from collections.abc import Collection

from webapp.core.errors import PreconditionFailed


def check_precondition(version: int, if_match: Collection[int] | None) -> None:
    """If-Match semantics: None (``*``) accepts any version; otherwise the version must be listed.

    This only refuses a client that saw an older version. Two requests that both saw
    the current one are told apart by the ORM's ``version_id_col`` at flush (StaleDataError,
    a 409), so a check-then-write race cannot overwrite a change.
    """
    if if_match is not None and version not in if_match:
        raise PreconditionFailed(
            f"The resource is at version {version}; the request's If-Match does not match it."
        )
