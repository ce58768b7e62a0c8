<%!
    def literal(value):
        # repr() quotes with ', ruff format with ": write what the linter would.
        return repr(value).replace("'", '"')
%>"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${literal(up_revision)}
down_revision = ${literal(down_revision)}
branch_labels = ${literal(branch_labels)}
depends_on = ${literal(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
