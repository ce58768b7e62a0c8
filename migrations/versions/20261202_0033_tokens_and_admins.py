"""Tokens and admins: access_tokens (hashes only), users.is_admin, users.token_generation.

A token is valid while its generation equals its user's token_generation: a password
change, a deactivation or a delete bumps the user's counter and so revokes every token
of theirs in the same UPDATE.

Revision ID: 46c63cbf136f
Revises: 0054e81ef398
Create Date: 2026-12-02 00:33:47.680624+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "46c63cbf136f"
down_revision = "0054e81ef398"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_access_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_access_tokens_token_hash")),
    )
    op.create_index(op.f("ix_access_tokens_expires_at"), "access_tokens", ["expires_at"])
    op.create_index(op.f("ix_access_tokens_user_id"), "access_tokens", ["user_id"])
    # ADD COLUMN with a constant default is in place on both databases (no table rewrite).
    op.add_column(
        "users", sa.Column("is_admin", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.add_column(
        "users", sa.Column("token_generation", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ has it): a batch rebuild of users would lose the
    # expression index on lower(email) on SQLite.
    op.drop_column("users", "token_generation")
    op.drop_column("users", "is_admin")
    op.drop_index(op.f("ix_access_tokens_user_id"), table_name="access_tokens")
    op.drop_index(op.f("ix_access_tokens_expires_at"), table_name="access_tokens")
    op.drop_table("access_tokens")
