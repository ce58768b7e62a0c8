"""jobs.trace_context: the W3C trace context of the span that enqueued a job.

When the app traces, each run of the job is a span under that context (the request that
enqueued it), whichever runner claims it. Nullable: jobs enqueued outside a trace, or
before this column, have none. ADD COLUMN without a default is in place on both
databases.

Revision ID: 8d472ca3f423
Revises: 5d1e0a7c3b92
Create Date: 2026-12-07 23:23:17.675927+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "8d472ca3f423"
down_revision = "5d1e0a7c3b92"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("trace_context", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ has it), no batch rebuild of the table.
    op.drop_column("jobs", "trace_context")
