"""The indexes the list sorts and filters rely on exist, with the shape docs/indexes.md describes."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from webapp.core.db.indexes import TRIGRAM_PENDING_LIST_LIMIT_KB

SORT_INDEXES = {
    "ix_posts_user_id_created_at_id_live": "user_id, created_at, id",
    "ix_posts_created_at_id_live": "created_at, id",
    "ix_posts_title_id_live": "title, id",
    "ix_users_email_id_live": "email, id",
    "ix_users_full_name_id_live": "full_name, id",
    "ix_users_created_at_id_live": "created_at, id",
}
# The indexes the title searches scan end with lower(title), for their filters to read.
LOWERED_TITLE = {"ix_posts_user_id_created_at_id_live", "ix_posts_title_id_live"}
TRIGRAM_INDEXES = {
    "ix_posts_title_lower_trgm_live": "title",
    "ix_users_email_lower_trgm_live": "email",
    "ix_users_full_name_lower_trgm_live": "full_name",
}


def _definitions(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
            )
        else:
            rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
        return {str(name): " ".join(str(sql or "").lower().split()) for name, sql in rows}


def test_sort_indexes_cover_live_rows_with_the_id_tie_breaker(
    app: Flask, engine: Engine, is_postgres: bool
) -> None:
    definitions = _definitions(engine)
    lowered = "lower((title)::text)" if is_postgres else "lower(title)"

    for name, columns in SORT_INDEXES.items():
        keys = f"({columns}, {lowered})" if name in LOWERED_TITLE else f"({columns})"
        assert keys in definitions[name], name
        assert (
            "where (deleted_at is null)" in definitions[name]
            or "where deleted_at is null" in definitions[name]
        )
    assert "where" not in definitions["ix_posts_user_id"]  # the foreign key needs a total index


def test_trigram_indexes_exist_on_postgresql_only(app: Flask, engine: Engine, is_postgres: bool) -> None:
    definitions = _definitions(engine)

    for name, column in TRIGRAM_INDEXES.items():
        if is_postgres:
            assert f"using gin (lower(({column})::text) gin_trgm_ops)" in definitions[name], name
            assert "where (deleted_at is null)" in definitions[name]
        else:
            assert name not in definitions


@pytest.mark.postgres_only(reason="autovacuum and GIN storage parameters are PostgreSQL's")
def test_vacuum_follows_inserts_and_trigram_pending_lists_stay_small(app: Flask, engine: Engine) -> None:
    with engine.connect() as connection:
        options: dict[str, str] = dict(
            connection.execute(
                text(
                    "SELECT relname, array_to_string(reloptions, ',') FROM pg_class "
                    "WHERE relnamespace = 'public'::regnamespace AND reloptions IS NOT NULL"
                )
            ).all()
        )

    for table in ("users", "posts", "comments"):
        assert "autovacuum_vacuum_insert_scale_factor=0.01" in options[table], table
    for name in TRIGRAM_INDEXES:
        assert f"gin_pending_list_limit={TRIGRAM_PENDING_LIST_LIMIT_KB}" in options[name], name


@pytest.mark.postgres_only(reason="extended statistics are PostgreSQL's")
def test_the_searched_expressions_have_statistics_of_their_own(app: Flask, engine: Engine) -> None:
    with engine.connect() as connection:
        found = {
            row.stxname: (row.relname, row.expressions, row.stxstattarget)
            for row in connection.execute(
                text(
                    "SELECT s.stxname, c.relname, pg_get_statisticsobjdef_expressions(s.oid)::text "
                    "AS expressions, s.stxstattarget FROM pg_statistic_ext s "
                    "JOIN pg_class c ON c.oid = s.stxrelid"
                )
            )
        }

    assert found == {
        "st_posts_title_lower": ("posts", "{lower((title)::text)}", 1000),
        "st_users_email_lower": ("users", "{lower((email)::text)}", 1000),
        "st_users_full_name_lower": ("users", "{lower((full_name)::text)}", 1000),
    }


def test_a_users_posts_index_carries_the_titles_on_postgresql(
    app: Flask, engine: Engine, is_postgres: bool
) -> None:
    definition = _definitions(engine)["ix_posts_user_id_created_at_id_live"]

    # post_title's check of a user's posts reads the index alone (docs/database-settings.md).
    assert ("include (title)" in definition) is is_postgres
