"""Account lifecycle: account_tokens (hashes only), users.email_verified, users.pending_email.

An account token is mailed to an address and proves it, once, before it expires: a
verification of the email (or of a pending new one), or a password reset. Only its
sha256 is stored. Existing users start unverified.

Revision ID: 741215c4f3a0
Revises: 3128e38fef2b
Create Date: 2026-12-07 18:15:00.000000+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "741215c4f3a0"
down_revision = "3128e38fef2b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_account_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )
    op.create_index(op.f("ix_account_tokens_expires_at"), "account_tokens", ["expires_at"])
    op.create_index(op.f("ix_account_tokens_user_id"), "account_tokens", ["user_id"])
    # ADD COLUMN with a constant default (or none) is in place on both databases.
    op.add_column(
        "users", sa.Column("email_verified", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.add_column("users", sa.Column("pending_email", sa.String(length=320), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ has it): a batch rebuild of users would lose the
    # expression index on lower(email) on SQLite.
    op.drop_column("users", "pending_email")
    op.drop_column("users", "email_verified")
    op.drop_index(op.f("ix_account_tokens_user_id"), table_name="account_tokens")
    op.drop_index(op.f("ix_account_tokens_expires_at"), table_name="account_tokens")
    op.drop_table("account_tokens")
