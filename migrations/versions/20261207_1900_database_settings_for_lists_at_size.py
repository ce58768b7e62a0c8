"""Settings that keep list queries' plans at size: vacuum after inserts, bounded trigram
pending lists, statistics on the searched expressions.

docs/database-settings.md has the measurements behind each.
- autovacuum_vacuum_insert_scale_factor on users, posts and comments: PostgreSQL's
  default (0.2) lets a fifth of a table's rows pile up unvacuumed before an insert
  triggers a vacuum; until then their pages are not all-visible, and every index-only
  COUNT over them (a user's posts, a capped total) visits the heap for each such row.
- gin_pending_list_limit on the trigram indexes: new entries wait in the index's pending
  list (4 MB by default) until a vacuum merges them, and every search reads the whole list.
- ix_posts_user_id_created_at_id_live includes the title: the users list's post_title
  filter, for a common word, checks each listed user's posts for the word, and with the
  title in the index that check reads no table rows (an index-only scan).
- Statistics on lower(title), lower(email), lower(full_name): the searches filter on these
  expressions, and without statistics of their own PostgreSQL guesses a substring's
  frequency from its length, so a word in 5% of posts and a word in 7 posts get the same
  plan. With a histogram of the values, ANALYZE lets it tell them apart.

PostgreSQL only: SQLite has neither autovacuum nor GIN indexes. A per-table storage
parameter travels with the table (dumps, replicas, managed servers), unlike a server
setting.

Revision ID: 5d1e0a7c3b92
Revises: 741215c4f3a0
Create Date: 2026-12-07 19:00:00.000000+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "5d1e0a7c3b92"
down_revision = "741215c4f3a0"
branch_labels = None
depends_on = None

TABLES = ("users", "posts", "comments")
INSERT_SCALE_FACTOR = 0.01
TRIGRAM_INDEXES = (
    "ix_posts_title_lower_trgm_live",
    "ix_users_email_lower_trgm_live",
    "ix_users_full_name_lower_trgm_live",
)
# In kB, as PostgreSQL takes it; keep in step with webapp/core/db/indexes.py.
PENDING_LIST_LIMIT_KB = 512
EXPRESSION_STATISTICS = (
    ("st_posts_title_lower", "posts", "title"),
    ("st_users_email_lower", "users", "email"),
    ("st_users_full_name_lower", "users", "full_name"),
)
# A histogram of 1,000 values (PostgreSQL's default is 100): a substring's frequency is
# read from the share of histogram values that contain it, to a tenth of a percent.
STATISTICS_TARGET = 1000


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


USER_POSTS_INDEX = ("ix_posts_user_id_created_at_id_live", "posts", ["user_id", "created_at", "id"])
LIVE = sa.text("deleted_at IS NULL")


def _user_posts_index(include: list[str]) -> None:
    name, table, columns = USER_POSTS_INDEX
    op.drop_index(name, table_name=table)
    op.create_index(name, table, columns, postgresql_where=LIVE, postgresql_include=include)


def upgrade() -> None:
    if not _is_postgresql():
        return
    _user_posts_index(include=["title"])
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (autovacuum_vacuum_insert_scale_factor = {INSERT_SCALE_FACTOR})")
    for index in TRIGRAM_INDEXES:
        op.execute(f"ALTER INDEX {index} SET (gin_pending_list_limit = {PENDING_LIST_LIMIT_KB})")
    for name, table, column in EXPRESSION_STATISTICS:
        op.execute(f"CREATE STATISTICS {name} ON (lower({column})) FROM {table}")
        op.execute(f"ALTER STATISTICS {name} SET STATISTICS {STATISTICS_TARGET}")


def downgrade() -> None:
    if not _is_postgresql():
        return
    for name, _table, _column in EXPRESSION_STATISTICS:
        op.execute(f"DROP STATISTICS {name}")
    _user_posts_index(include=[])
    for index in TRIGRAM_INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (gin_pending_list_limit)")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (autovacuum_vacuum_insert_scale_factor)")
