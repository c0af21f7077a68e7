"""The audit: an append-only log of reads of personal data, refusals, keys and publishes.

Rows are only ever added: a trigger refuses every UPDATE, and every DELETE
except ``gridmap audit prune``'s (which sets ``gridmap.audit_prune`` for its
transaction), and TRUNCATE; the scoped role may only insert and read.

Revision ID: 0009_audit
Revises: 0008_key_scopes
Create Date: 2026-12-06 23:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009_audit"
down_revision = "0008_key_scopes"
branch_labels = None
depends_on = None

ROLE = "gridmap_scoped"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("key_prefix", sa.String(length=16), nullable=True),
        sa.Column("area_code", sa.String(length=40), nullable=True),
        sa.Column("client", sa.Text(), nullable=True),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("households", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("matters", postgresql.ARRAY(sa.BigInteger()), nullable=True),
        sa.Column("n", sa.Integer(), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('read', 'refused', 'capped', 'key_created', 'key_revoked', "
            "'key_expired', 'publish')",
            name="kind_known",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_key_id", "audit_log", ["key_id"])
    op.execute(
        "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN IF TG_OP = 'DELETE' AND "
        "current_setting('gridmap.audit_prune', true) = 'on' THEN RETURN OLD; END IF; "
        "RAISE EXCEPTION 'the audit is append-only (% refused)', TG_OP "
        "USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC, {ROLE}")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
