"""`flask accounts purge`: expired account tokens go, live ones stay."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.resources.accounts.conftest import Mailing
from webapp.core.db import Database
from webapp.core.db.mixins import utcnow
from webapp.resources.accounts.model import AccountToken, Purpose


def test_purge_deletes_expired_account_tokens_only(
    app: Flask, mail: Mailing, database: Database, db_session: Session
) -> None:
    user = mail.sign_up("ada@example.com")
    now = utcnow()
    with database.new_session() as session:
        for hours, digit in ((-1, "a"), (1, "b")):
            session.add(
                AccountToken(
                    user_id=user["id"],
                    purpose=Purpose.RESET_PASSWORD,
                    token_hash=digit * 64,
                    email="ada@example.com",
                    expires_at=now + timedelta(hours=hours),
                )
            )
        session.commit()

    result = app.test_cli_runner().invoke(args=["accounts", "purge"])

    assert result.exit_code == 0, result.output
    assert "Purged 1 expired account token(s)." in result.output
    assert db_session.scalars(select(AccountToken.token_hash)).all() == ["b" * 64]
