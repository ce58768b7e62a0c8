"""`flask shell`: a session, every model and the resources' repositories, committed on request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from webapp.core.db import Base
from webapp.resources.users.model import User
from webapp.resources.users.repository import UserRepository


@pytest.fixture
def shell(app: Flask) -> Iterator[dict[str, Any]]:
    namespace = app.make_shell_context()
    yield namespace
    namespace["session"].close()


def _user(email: str) -> User:
    return User(email=email, full_name="Shell User", hashed_password="x")


def test_the_shell_offers_every_mapped_model(shell: dict[str, Any]) -> None:
    for mapper in Base.registry.mappers:
        assert shell[mapper.class_.__name__] is mapper.class_


def test_the_shell_repositories_share_its_session(shell: dict[str, Any]) -> None:
    repository = shell["user_repository"]
    assert isinstance(repository, UserRepository)
    assert repository.session is shell["session"]
    assert "post_repository" in shell
    assert "comment_repository" in shell  # found through the base class, never listed


def test_shell_changes_are_kept_only_after_session_commit(shell: dict[str, Any], db_session: Session) -> None:
    session = shell["session"]
    session.add(_user("kept@example.com"))
    session.commit()
    session.add(_user("uncommitted@example.com"))
    session.flush()
    session.close()  # what leaving the shell does

    stored = set(db_session.scalars(select(User.email)))
    assert stored == {"kept@example.com"}


@pytest.mark.postgres_only(reason="the idle-in-transaction timeout is PostgreSQL's")
def test_a_shell_transaction_is_not_ended_by_the_idle_timeout(shell: dict[str, Any]) -> None:
    session = shell["session"]
    assert session.scalar(text("SHOW idle_in_transaction_session_timeout")) == "0"
