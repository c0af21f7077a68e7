"""When a key's expiry was written to the audit.

The API's audit writer records every key whose ``expires_at`` has passed once,
as ``key_expired``, whether or not anyone presents it afterwards; this column
says it was done (and makes concurrent server processes record it once).

Revision ID: 0011_key_expiry
Revises: 0010_person_area
Create Date: 2026-12-07 01:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_key_expiry"
down_revision = "0010_person_area"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("expiry_audited_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("api_keys", "expiry_audited_at")
